-- Lead queue operations (queue buttons that must really do what they report, every lead status
-- accepted, everything in the ledger). Acting as real users:
-- prepare_queue row by row, capacity per day, eligibility, time zones, idempotence and every
-- refusal; set_automation holds and resumes; take_lead / release_lead; every lead_status value;
-- retry_message; and the queue_metrics / failed_messages views against a fixture with known
-- answers, under RLS. (Concurrent prepare_queue calls: tests/prepare-queue-concurrency.test.ts.)
begin;
select plan(111);

select tests.create_user('qa_owner');
select tests.create_user('qa_admin');
select tests.create_user('qa_agent');
select tests.create_user('qa_agent2');
select tests.create_user('qb_owner');
select tests.get_user_id('qa_owner') as owner_id, tests.get_user_id('qa_admin') as admin_id,
       tests.get_user_id('qa_agent') as agent_id, tests.get_user_id('qa_agent2') as agent2_id,
       tests.get_user_id('qb_owner') as b_owner_id \gset

-- prepare_queue refuses past days, so every for_date is relative to today (the workspaces below
-- that use these are in UTC).
select (now() at time zone 'UTC')::date as today, (now() at time zone 'UTC')::date + 1 as d1,
       (now() at time zone 'UTC')::date + 2 as d2, (now() at time zone 'UTC')::date + 3 as d3 \gset

/** Section - workspace A: a queue of 3 a day into a two-step sequence */
select tests.authenticate_as('qa_owner');
select create_workspace('Queue Co', 'UTC') as ws \gset
insert into workspace_members (workspace_id, user_id, role)
values (:'ws', :'admin_id', 'admin'), (:'ws', :'agent_id', 'agent'), (:'ws', :'agent2_id', 'agent');
-- Quiet hours off: herald.queue_due_messages is run below at clocks far from the wall clock.
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00' where id = :'ws';
insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
values (:'ws', 'sms', '+15005550006', 'connected', 100, true);
insert into sequences (workspace_id, name, status) values (:'ws', 'Welcome', 'active') returning id as seq \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body)
values (:'ws', :'seq', 1, '0', 'Hi {{first_name}} in {{var.city}}') returning id as step1 \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body)
values (:'ws', :'seq', 2, '2 days', 'Still there, {{first_name}}?');
insert into queue_settings (workspace_id, daily_capacity, window_start, window_end, default_sequence_id)
values (:'ws', 3, '09:00', '17:00', :'seq');

-- The ineligible leads are the oldest, so a filter that let any of them through would pick it first.
insert into contacts (workspace_id, phone, first_name, lead_status, controlled_by, deleted_at, opted_out_at, created_at) values
  (:'ws', '+14155557101', 'Carl', 'contacted', 'automation', null, null, now() - interval '30 days'),
  (:'ws', '+14155557102', 'Hana', 'new', 'human', null, null, now() - interval '29 days'),
  (:'ws', '+14155557103', 'Dora', 'new', 'automation', now() - interval '1 day', null, now() - interval '28 days'),
  (:'ws', '+14155557104', 'Otto', 'new', 'automation', null, now() - interval '1 day', now() - interval '27 days'),
  (:'ws', '+14155557105', 'Sue', 'new', 'automation', null, null, now() - interval '26 days'),
  (:'ws', '+14155557106', 'Enzo', 'new', 'automation', null, null, now() - interval '25 days'),
  (:'ws', '+14155557107', 'Enid', 'new', 'automation', null, null, now() - interval '24 days');
select id as hana from contacts where phone = '+14155557102' \gset
select id as dora from contacts where phone = '+14155557103' \gset
select id as enzo from contacts where phone = '+14155557106' \gset
select id as enid from contacts where phone = '+14155557107' \gset
-- Enzo is in the default sequence already; Enid was, and that enrollment was cancelled.
select enroll_contact(:'seq', :'enzo');
select enroll_contact(:'seq', :'enid');
select cancel_message(id) from messages where contact_id = :'enid';

insert into contacts (workspace_id, phone, first_name, timezone, created_at) values
  (:'ws', '+14155557201', 'Aiko', 'Asia/Tokyo', now() - interval '5 days'),
  (:'ws', '+14155557202', 'Luis', 'America/Los_Angeles', now() - interval '4 days'),
  (:'ws', '+14155557203', 'Una', null, now() - interval '3 days'),
  (:'ws', '+14155557204', 'Vic', null, now() - interval '2 days'),
  (:'ws', '+14155557205', 'Wes', 'Europe/Paris', now() - interval '1 day');
select id as aiko from contacts where phone = '+14155557201' \gset
select id as luis from contacts where phone = '+14155557202' \gset
select id as una from contacts where phone = '+14155557203' \gset
insert into contact_variables (workspace_id, contact_id, key, value)
values (:'ws', :'aiko', 'city', 'Kyoto'), (:'ws', :'luis', 'city', 'Oakland');

-- Sue's number is on the suppression list (an opt-out that outlived an earlier contact).
select tests.clear_authentication();
insert into suppressions (workspace_id, phone_hash, reason)
values (:'ws', herald.phone_hash(:'ws', '+14155557105'), 'opted_out');

/** Section - workspace B: another tenant with a lead of its own */
select tests.authenticate_as('qb_owner');
select create_workspace('Other Co', 'Pacific/Auckland') as ws_b \gset
insert into sequences (workspace_id, name, status) values (:'ws_b', 'B seq', 'active') returning id as seq_b \gset
insert into sequence_steps (workspace_id, sequence_id, position, body) values (:'ws_b', :'seq_b', 1, 'Hello from B');
insert into queue_settings (workspace_id, daily_capacity, default_sequence_id) values (:'ws_b', 10, :'seq_b');
insert into contacts (workspace_id, phone, first_name) values (:'ws_b', '+14155557901', 'Zed') returning id as zed \gset

/** Section - prepare_queue: the happy path, row by row */
select tests.authenticate_as('qa_admin');
select is(prepare_queue(:'ws', :'d1'), 3, 'an admin prepares a day: 3 of the 5 eligible leads (capacity 3)');

select tests.clear_authentication();
select results_eq(
  format($$ select c.first_name, q.for_date, q.sequence_id, q.actor from queue_entries q
            join contacts c on c.id = q.contact_id where q.workspace_id = %L order by c.created_at $$, :'ws'),
  format($$ values ('Aiko'::text, %1$L::date, %2$L::uuid, %3$L::text), ('Luis', %1$L, %2$L, %3$L), ('Una', %1$L, %2$L, %3$L) $$,
         :'d1', :'seq', :'admin_id'),
  'queue_entries: the three oldest eligible leads, for that day, the default sequence, the admin as actor');
select results_eq(
  format($$ select c.first_name, e.status::text, e.current_position, e.id = q.enrollment_id, e.stopped_reason
            from sequence_enrollments e join contacts c on c.id = e.contact_id
            join queue_entries q on q.workspace_id = e.workspace_id and q.contact_id = e.contact_id
            where e.workspace_id = %L and e.sequence_id = %L order by c.created_at $$, :'ws', :'seq'),
  $$ values ('Aiko'::text, 'active'::text, 1, true, null::text), ('Luis', 'active', 1, true, null), ('Una', 'active', 1, true, null) $$,
  'one active enrollment each in the default sequence, at step 1, linked from the queue entry');
select results_eq(
  format($$ select c.first_name, m.body, m.status::text, m.channel::text, m.step_id = %L, m.enrollment_id = q.enrollment_id,
                   m.send_at = q.first_send_at, m.sender_id is null, m.max_attempts, m.attempts
            from messages m join contacts c on c.id = m.contact_id
            join queue_entries q on q.workspace_id = m.workspace_id and q.contact_id = m.contact_id
            where m.workspace_id = %L order by c.created_at $$, :'step1', :'ws'),
  $$ values ('Aiko'::text, 'Hi Aiko in Kyoto'::text, 'scheduled'::text, 'sms'::text, true, true, true, true, 3, 0),
            ('Luis', 'Hi Luis in Oakland', 'scheduled', 'sms', true, true, true, true, 3, 0),
            ('Una', 'Hi Una in ', 'scheduled', 'sms', true, true, true, true, 3, 0) $$,
  'one step-1 message each, its template rendered from the contact, scheduled at the queued first send');
select results_eq(
  format($$ select first_name, lead_status::text from contacts where workspace_id = %L and first_name in
            ('Aiko', 'Luis', 'Una', 'Vic', 'Wes') order by created_at $$, :'ws'),
  $$ values ('Aiko'::text, 'queued'::text), ('Luis', 'queued'), ('Una', 'queued'), ('Vic', 'new'), ('Wes', 'new') $$,
  'the queued leads are lead_status queued; the two over capacity stay new');
select results_eq(
  format($$ select c.first_name, a.kind, a.actor, a.detail ->> 'for_date', (a.detail ->> 'sequence_id')::uuid,
                   (a.detail ->> 'first_send_at')::timestamptz = q.first_send_at
            from contact_activities a join contacts c on c.id = a.contact_id
            join queue_entries q on q.workspace_id = a.workspace_id and q.contact_id = a.contact_id
            where a.workspace_id = %L and a.kind = 'queued' order by c.created_at $$, :'ws'),
  format($$ values ('Aiko'::text, 'queued'::text, %1$L::text, %2$L::text, %3$L::uuid, true),
                   ('Luis', 'queued', %1$L, %2$L, %3$L, true), ('Una', 'queued', %1$L, %2$L, %3$L, true) $$,
         :'admin_id', :'d1', :'seq'),
  'a queued activity per lead: the day, the sequence, the first send, who did it');
select results_eq(
  format($$ select c.first_name, e.from_status::text, e.to_status::text, e.reason, e.actor
            from message_events e join messages m on m.id = e.message_id join contacts c on c.id = m.contact_id
            where e.workspace_id = %L and m.step_id = %L and c.lead_status = 'queued' order by c.created_at, e.id $$,
         :'ws', :'step1'),
  format($$ values ('Aiko'::text, null::text, 'scheduled'::text, 'prepare_queue'::text, %1$L::text),
                   ('Luis', null, 'scheduled', 'prepare_queue', %1$L), ('Una', null, 'scheduled', 'prepare_queue', %1$L) $$,
         :'admin_id'),
  'the ledger records each message''s creation with reason prepare_queue and the admin as actor');

-- Time zones: the 8-hour window holds 3 sends at its 1/6, 3/6 and 5/6 points (10:20, 13:00,
-- 15:40), each in the lead's own zone (Una has none: the workspace's UTC).
select results_eq(
  format($$ select c.first_name, to_char(date_trunc('second', (m.send_at at time zone coalesce(c.timezone, 'UTC'))
                                                             + interval '500 milliseconds'), 'YYYY-MM-DD HH24:MI:SS')
            from messages m join contacts c on c.id = m.contact_id
            where m.workspace_id = %L and m.step_id = %L and c.lead_status = 'queued' order by c.created_at $$, :'ws', :'step1'),
  format($$ values ('Aiko'::text, %1$L || ' 10:20:00'), ('Luis', %1$L || ' 13:00:00'), ('Una', %1$L || ' 15:40:00') $$, :'d1'),
  'first sends are spread over the window in each lead''s own local time on that day');
select ok(
  (select m.send_at = ((:'d1'::date + time '10:20') at time zone 'Asia/Tokyo') from messages m where m.contact_id = :'aiko'),
  'Tokyo''s 10:20 is the instant Tokyo says, not 10:20 UTC');
select isnt(
  (select send_at from messages where contact_id = :'luis') - (select send_at from messages where contact_id = :'aiko'),
  interval '02:40',
  'so Los Angeles and Tokyo leads are not simply 2h40 apart as they would be in one zone');

select is_empty(
  format($$ select c.first_name from contacts c where c.workspace_id = %L
            and c.first_name in ('Carl', 'Hana', 'Dora', 'Otto', 'Sue', 'Enzo', 'Enid')
            and (c.lead_status = 'queued' or exists (select 1 from queue_entries q where q.contact_id = c.id)
                 or (select count(*) from messages m where m.contact_id = c.id) > case when c.first_name in ('Enzo', 'Enid') then 1 else 0 end
                 or (select count(*) from sequence_enrollments e where e.contact_id = c.id) > case when c.first_name in ('Enzo', 'Enid') then 1 else 0 end) $$,
         :'ws'),
  'not new, human, deleted, opted out, suppressed, enrolled now or before: none is ever picked');

/** Section - capacity per day, another day, idempotence */
select tests.authenticate_as('qa_admin');
select is(prepare_queue(:'ws', :'d1'), 0, 'the same day again: full, nobody added');
select is((select count(*)::int from queue_entries where workspace_id = :'ws'), 3, 'still 3 queue entries');
select is(prepare_queue(:'ws', :'d2'), 2, 'another day takes the next two');
select results_eq(
  format($$ select c.first_name, q.for_date, to_char(date_trunc('second', (m.send_at at time zone coalesce(c.timezone, 'UTC'))
                                                             + interval '500 milliseconds'), 'HH24:MI:SS')
            from queue_entries q join contacts c on c.id = q.contact_id join messages m on m.contact_id = c.id
            where q.workspace_id = %L and q.for_date = %L order by c.created_at $$, :'ws', :'d2'),
  format($$ values ('Vic'::text, %1$L::date, '11:00:00'::text), ('Wes', %1$L, '15:00:00') $$, :'d2'),
  'Vic (UTC) and Wes (Paris) at the 1/4 and 3/4 points of the window, in their own zones');
select is(prepare_queue(:'ws', :'d2'), 0, 'that day again: nobody eligible is left');
select is(prepare_queue(:'ws', :'d3'), 0, 'a third day: nobody eligible is left');
select results_eq(
  format($$ select count(*)::int, count(distinct q.contact_id)::int,
                   (select count(*)::int from sequence_enrollments e where e.workspace_id = %1$L and e.sequence_id = %2$L),
                   (select count(*)::int from messages m where m.workspace_id = %1$L and m.step_id = %3$L)
            from queue_entries q where q.workspace_id = %1$L $$, :'ws', :'seq', :'step1'),
  $$ values (5, 5, 7, 7) $$,
  'five leads queued once each: five entries, and with Enzo and Enid seven enrollments and step-1 messages, no more');

/** Section - prepare_queue refusals, nothing changed */
select tests.authenticate_as('qa_owner');
select create_workspace('Unready Co', 'UTC') as ws_c \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws_c', '+14155557301', 'Cy'), (:'ws_c', '+14155557302', 'Cleo');
select throws_ok(format('select prepare_queue(%L, %L)', :'ws_c', :'d1'), '55000',
  format('workspace %s has no queue settings', :'ws_c'), 'no queue settings: refused');
insert into queue_settings (workspace_id, daily_capacity) values (:'ws_c', 5);
select throws_ok(format('select prepare_queue(%L, %L)', :'ws_c', :'d1'), '55000', 'the queue has no default sequence',
  'no default sequence: refused');
insert into sequences (workspace_id, name) values (:'ws_c', 'Drafty') returning id as seq_draft \gset
insert into sequence_steps (workspace_id, sequence_id, position, body) values (:'ws_c', :'seq_draft', 1, 'Hi');
update queue_settings set default_sequence_id = :'seq_draft' where workspace_id = :'ws_c';
select throws_ok(format('select prepare_queue(%L, %L)', :'ws_c', :'d1'), '55000', 'the default sequence "Drafty" is draft',
  'a draft default sequence: refused');
update sequences set status = 'archived' where id = :'seq_draft';
select throws_ok(format('select prepare_queue(%L, %L)', :'ws_c', :'d1'), '55000', 'the default sequence "Drafty" is archived',
  'an archived default sequence: refused');
insert into sequences (workspace_id, name, status) values (:'ws_c', 'Hollow', 'active') returning id as seq_hollow \gset
update queue_settings set default_sequence_id = :'seq_hollow' where workspace_id = :'ws_c';
select throws_ok(format('select prepare_queue(%L, %L)', :'ws_c', :'d1'), '55000', 'the default sequence "Hollow" has no steps',
  'an active default sequence without steps: refused');
select throws_ok(format('update queue_settings set default_sequence_id = %L where workspace_id = %L', :'seq', :'ws_c'),
  '23503', null, 'queue settings cannot name another workspace''s sequence');
select tests.clear_authentication();
select is_empty(
  format($$ select 'entry' from queue_entries where workspace_id = %1$L union all select 'enrollment' from sequence_enrollments where workspace_id = %1$L
            union all select 'message' from messages where workspace_id = %1$L union all select 'activity' from contact_activities where workspace_id = %1$L
            union all select 'lead' from contacts where workspace_id = %1$L and lead_status <> 'new' $$, :'ws_c'),
  'the refused calls changed nothing: no entry, enrollment, message or activity, every lead still new');

select tests.authenticate_as('qa_admin');
select throws_ok(format('select prepare_queue(%L, %L)', :'ws', :'today'::date - 1), '22023',
  format('for_date %s is in the past', :'today'::date - 1), 'a past day: refused');
select tests.authenticate_as('qa_agent');
select throws_ok(format('select prepare_queue(%L, %L)', :'ws', :'d3'), '42501', null, 'an agent cannot prepare the queue');
select tests.authenticate_as('qb_owner');
select throws_ok(format('select prepare_queue(%L, %L)', :'ws', :'d3'), 'P0002', format('workspace %s not found', :'ws'),
  'another workspace''s owner: not found');
select throws_ok(format('select prepare_queue(%L, %L)', gen_random_uuid(), :'d3'), 'P0002', null, 'an unknown workspace: not found');
select throws_ok(format('select prepare_queue(null, %L)', :'d3'), '22023', 'workspace_id is required', 'no workspace: refused');
select tests.authenticate_as_anon();
select throws_ok(format('select prepare_queue(%L, %L)', :'ws', :'d3'), '42501', null, 'anon cannot call prepare_queue');
select tests.clear_authentication();
select is((select count(*)::int from queue_entries where workspace_id = :'ws'), 5, 'and workspace A still has its 5 entries');

-- The default for_date is tomorrow in the workspace's zone (B is in Auckland, ahead of UTC).
select tests.authenticate_as('qb_owner');
select is(prepare_queue(:'ws_b'), 1, 'B''s owner queues B''s one lead');
select results_eq(
  format($$ select contact_id, for_date from queue_entries where workspace_id = %L $$, :'ws_b'),
  format($$ values (%L::uuid, (now() at time zone 'Pacific/Auckland')::date + 1) $$, :'zed'),
  'with no for_date: tomorrow in the workspace''s time zone');

/** Section - set_automation: pause holds, resume goes on */
select tests.authenticate_as('qa_owner');
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155557401', 'Pat') returning id as pat \gset
select schedule_message(:'pat', 'held, not lost', category => 'transactional') as m_pat \gset
-- Enzo's due step is marketing, queued with the real clock: his zone is one where it is day.
update contacts set timezone = tests.daytime_zone() where id = :'enzo';
select tests.authenticate_as_service_role();
select herald.queue_due_messages(20000, now());
select tests.clear_authentication();
select results_eq(
  format($$ select status::text, count(*)::int from messages where workspace_id = %L and status in ('scheduled', 'queued')
            group by status order by status $$, :'ws'),
  $$ values ('queued'::text, 2), ('scheduled', 5) $$,
  'before the pause: the 5 queued leads'' first sends scheduled, Pat''s and Enzo''s due messages queued');

select tests.authenticate_as('qa_admin');
select lives_ok(format('select set_automation(%L, false)', :'ws'), 'an admin pauses automation');
select tests.clear_authentication();
select is((select automation_enabled from workspaces where id = :'ws'), false, 'the workspace is paused');
select results_eq(
  format($$ select e.message_id, e.from_status::text, e.to_status::text, e.actor from message_events e
            where e.workspace_id = %L and e.reason = 'automation_paused' order by e.message_id $$, :'ws'),
  format($$ select id, status::text, status::text, %L::text from messages where workspace_id = %L and status in ('scheduled', 'queued')
            order by id $$, :'admin_id', :'ws'),
  'one automation_paused event per pending message, status unchanged (held), the admin as actor');
select tests.authenticate_as_service_role();
-- (That the dispatcher claims nothing of a paused workspace is claim_messages' rule: dispatch.test.sql.)
select herald.queue_due_messages(20000, :'d3'::date + time '12:00');
select tests.clear_authentication();
select results_eq(
  format($$ select status::text, count(*)::int from messages where workspace_id = %L and status <> 'cancelled'
            group by status order by status $$, :'ws'),
  $$ values ('queued'::text, 2), ('scheduled', 5) $$,
  'paused: queueing skipped the first sends even at a clock past them, and the queued stay queued');
select is((select count(*)::int from messages where workspace_id = :'ws' and status = 'cancelled'), 1,
  'paused: nothing was cancelled (the one cancelled message is Enid''s, from before)');
select tests.authenticate_as('qa_admin');
select lives_ok(format('select set_automation(%L, false)', :'ws'), 'pausing again is harmless');
select tests.clear_authentication();
select is((select count(*)::int from message_events where workspace_id = :'ws' and reason = 'automation_paused'), 7,
  'and wrote nothing');

select tests.authenticate_as('qa_agent');
select throws_ok(format('select set_automation(%L, true)', :'ws'), '42501', null, 'an agent cannot resume automation');
select tests.authenticate_as('qb_owner');
select throws_ok(format('select set_automation(%L, true)', :'ws'), 'P0002', null, 'another workspace''s owner: not found');
select tests.authenticate_as('qa_admin');
select throws_ok(format('select set_automation(%L, null)', :'ws'), '22023', 'enabled must be true or false', 'enabled must be given');
select throws_ok('select set_automation(null, true)', '22023', 'workspace_id is required', 'so must the workspace');
select tests.clear_authentication();
select is((select automation_enabled from workspaces where id = :'ws'), false, 'the refused calls left it paused');

select tests.authenticate_as('qa_admin');
select lives_ok(format('select set_automation(%L, true)', :'ws'), 'an admin resumes automation');
select tests.clear_authentication();
select is((select count(*)::int from message_events where workspace_id = :'ws' and reason = 'automation_resumed'), 7,
  'one automation_resumed event per held message');
select tests.authenticate_as_service_role();
-- 01:00 UTC the day after: 10:00 in Tokyo, 17:00 the day before in Oakland (Una and Vic have
-- no zone; their 415 numbers place them there), 02:00 in Paris.
select herald.queue_due_messages(20000, :'d3'::date + 1 + time '01:00');
select tests.clear_authentication();
select results_eq(
  format($$ select c.first_name, m.status::text from messages m join contacts c on c.id = m.contact_id
            where m.workspace_id = %L and m.step_id = %L and c.lead_status = 'queued' order by c.created_at $$, :'ws', :'step1'),
  $$ values ('Aiko'::text, 'queued'::text), ('Luis', 'queued'), ('Una', 'queued'), ('Vic', 'queued'), ('Wes', 'scheduled') $$,
  'resumed: queueing takes the held first sends where it left off; Wes''s waits for 08:00 in Paris (legal hours for marketing)');
select tests.authenticate_as('qa_admin');
select lives_ok(format('select set_automation(%L, true)', :'ws'), 'resuming again is harmless');
select tests.clear_authentication();
select is((select count(*)::int from message_events where workspace_id = :'ws' and reason in ('automation_paused', 'automation_resumed')), 14,
  'and wrote nothing');

/** Section - take_lead: 50 pending messages and 2 active enrollments */
select tests.authenticate_as('qa_owner');
insert into sequences (workspace_id, name, status) values (:'ws', 'Nurture', 'active') returning id as seq2 \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values (:'ws', :'seq2', 1, '1 hour', 'Nurture {{first_name}}');
-- Lee's first steps are marketing, queued with the real clock: Lee lives where it is day now.
insert into contacts (workspace_id, phone, first_name, timezone) values (:'ws', '+14155557501', 'Lee', tests.daytime_zone()) returning id as lee \gset
select enroll_contact(:'seq', :'lee');
select enroll_contact(:'seq2', :'lee');
select count(schedule_message(:'lee', 'later ' || g, now() + g * interval '1 hour', category => 'transactional')) from generate_series(1, 40) g;
select count(schedule_message(:'lee', 'due ' || g, category => 'transactional')) from generate_series(1, 8) g;
select schedule_message(:'lee', 'withdrawn', category => 'transactional') as m_withdrawn \gset
select cancel_message(:'m_withdrawn');
select tests.authenticate_as_service_role();
select herald.queue_due_messages(20000, now());
select tests.clear_authentication();
select results_eq(
  format($$ select status::text, count(*)::int from messages where contact_id = %L group by status order by status $$, :'lee'),
  $$ values ('cancelled'::text, 1), ('queued', 9), ('scheduled', 41) $$,
  'Lee has 50 pending messages (41 scheduled, 9 queued) and one already withdrawn');

select tests.authenticate_as('qa_agent');
select is(take_lead(:'lee'),
  jsonb_build_object('contact_id', :'lee'::uuid, 'assigned_to', :'agent_id'::uuid, 'already_taken', false,
                     'cancelled', jsonb_build_object('messages', 50, 'sequence_enrollments', 2)),
  'an agent takes the lead: 50 messages and 2 enrollments cancelled, says take_lead');
select tests.clear_authentication();
select results_eq(
  format($$ select controlled_by::text, assigned_to from contacts where id = %L $$, :'lee'),
  format($$ values ('human'::text, %L::uuid) $$, :'agent_id'),
  'the lead is human-controlled and assigned to the caller');
select results_eq(
  format($$ select cancel_reason::text, count(*)::int, count(cancelled_at)::int from messages where contact_id = %L
            group by cancel_reason order by cancel_reason $$, :'lee'),
  $$ values ('human_takeover'::text, 50, 50), ('user_cancelled', 1, 1) $$,
  'every pending message is cancelled (human_takeover); the withdrawn one keeps its reason');
select results_eq(
  format($$ select sequence_id, status::text, stopped_reason from sequence_enrollments where contact_id = %L order by sequence_id = %L $$,
         :'lee', :'seq2'),
  format($$ values (%L::uuid, 'cancelled'::text, 'human_takeover'::text), (%L::uuid, 'cancelled', 'human_takeover') $$, :'seq', :'seq2'),
  'both active enrollments are cancelled (human_takeover)');
select results_eq(
  format($$ select kind, actor, detail from contact_activities where contact_id = %L $$, :'lee'),
  format($$ values ('taken_over'::text, %L::text, '{"cancelled_messages": 50, "cancelled_enrollments": 2}'::jsonb) $$, :'agent_id'),
  'one taken_over activity, with the agent as actor and what was cancelled');
select results_eq(
  format($$ select e.from_status::text, e.to_status::text, e.reason, e.actor, count(*)::int from message_events e
            join messages m on m.id = e.message_id where m.contact_id = %L and e.to_status = 'cancelled'
            group by 1, 2, 3, 4 order by 1, 3 $$, :'lee'),
  format($$ values ('queued'::text, 'cancelled'::text, 'human_takeover'::text, %1$L::text, 9),
                   ('scheduled', 'cancelled', 'human_takeover', %1$L, 41),
                   ('scheduled', 'cancelled', 'user_cancelled', %2$L, 1) $$, :'agent_id', :'owner_id'),
  'the ledger has a human_takeover row per cancelled message, from where it was, with the agent as actor');

select tests.authenticate_as('qa_agent');
select is(take_lead(:'lee') -> 'already_taken', 'true'::jsonb, 'taking it again: already taken, harmless');
select is((select count(*)::int from contact_activities where contact_id = :'lee'), 1, 'and wrote nothing');
select tests.authenticate_as('qa_agent2');
select throws_ok(format('select take_lead(%L)', :'lee'), '55000', format('contact %s is already handled by another agent', :'lee'),
  'another agent cannot take a lead someone holds');
select tests.authenticate_as('qa_admin');
select throws_ok(format('select take_lead(%L)', :'lee'), '55000', null, 'nor can an admin: release first');
select tests.authenticate_as('qb_owner');
select throws_ok(format('select take_lead(%L)', :'lee'), 'P0002', format('contact %s not found', :'lee'),
  'another workspace''s owner: not found');
select tests.authenticate_as('qa_agent');
select throws_ok(format('select take_lead(%L)', :'dora'), '55000', format('contact %s is deleted', :'dora'),
  'a deleted contact cannot be taken');
select throws_ok('select take_lead(null)', '22023', 'contact_id is required', 'no contact: refused');
-- Hana is human-controlled with nobody assigned (as after her agent's user was deleted:
-- assigned_to is set null): an agent can pick her up.
select lives_ok(format('select take_lead(%L)', :'hana'), 'an unassigned human lead can be taken');
select tests.clear_authentication();
select results_eq(
  format($$ select c.controlled_by::text, c.assigned_to, a.kind, a.actor from contacts c join contact_activities a on a.contact_id = c.id
            where c.id = %L $$, :'hana'),
  format($$ values ('human'::text, %1$L::uuid, 'taken_over'::text, %1$L::text) $$, :'agent_id'),
  'and is then assigned to the caller, with a taken_over activity');

/** Section - release_lead */
select tests.authenticate_as('qa_agent2');
select throws_ok(format('select release_lead(%L)', :'lee'), '42501',
  format('only the assigned agent or an admin can release contact %s', :'lee'), 'another agent cannot release it');
select tests.authenticate_as('qb_owner');
select throws_ok(format('select release_lead(%L)', :'lee'), 'P0002', null, 'another workspace''s owner: not found');
select tests.authenticate_as('qa_agent');
select throws_ok('select release_lead(null)', '22023', 'contact_id is required', 'no contact: refused');
select lives_ok(format('select release_lead(%L)', :'lee'), 'the assignee releases the lead');
select tests.clear_authentication();
select results_eq(
  format($$ select controlled_by::text, assigned_to from contacts where id = %L $$, :'lee'),
  $$ values ('automation'::text, null::uuid) $$,
  'released: automation-controlled, unassigned');
select tests.authenticate_as_service_role();
select herald.queue_due_messages(20000, now() + interval '3 days');
select tests.clear_authentication();
select results_eq(
  format($$ select status::text, count(*)::int from messages where contact_id = %L group by status $$, :'lee'),
  $$ values ('cancelled'::text, 51) $$,
  'releasing resurrects nothing: all 51 stay cancelled, no new message, even after queueing runs');
select is_empty(format($$ select 1 from sequence_enrollments where contact_id = %L and status <> 'cancelled' $$, :'lee'),
  'and both enrollments stay cancelled');
select results_eq(
  format($$ select kind, actor from contact_activities where contact_id = %L order by id $$, :'lee'),
  format($$ values ('taken_over'::text, %1$L::text), ('released', %1$L) $$, :'agent_id'),
  'the release is in the contact''s history');
select tests.authenticate_as('qa_agent');
select throws_ok(format('select release_lead(%L)', :'lee'), '55000', format('contact %s is not handled by a human', :'lee'),
  'releasing a lead no human holds: refused');
select tests.authenticate_as('qa_agent2');
select is(take_lead(:'lee') -> 'cancelled', '{"messages": 0, "sequence_enrollments": 0}'::jsonb,
  'another agent takes it now (nothing left to cancel)');
select tests.authenticate_as('qa_admin');
select lives_ok(format('select release_lead(%L)', :'lee'), 'an admin may release a lead any agent holds');
select tests.clear_authentication();
select is((select controlled_by::text from contacts where id = :'lee'), 'automation', 'released by the admin');

/** Section - lead_status: one list, and every value of it is accepted */
select is(enum_range(null::public.lead_status)::text[],
  array['new', 'queued', 'contacted', 'engaged', 'booked', 'won', 'lost', 'unqualified'],
  'lead_status is exactly the contract''s list');
-- Runs as its caller: each update goes through the contacts policies like any client's.
create function pg_temp.accepted_lead_statuses(p_contact uuid) returns setof text
language plpgsql as $$
declare
  v public.lead_status;
begin
  for v in select unnest(enum_range(null::public.lead_status)) loop
    update public.contacts set lead_status = v where id = p_contact;
    return next (select c.lead_status::text from public.contacts c where c.id = p_contact);
  end loop;
end;
$$;
-- Called as the agent below: a function starts closed to everyone but its owner (herald_setup).
grant execute on function pg_temp.accepted_lead_statuses(uuid) to authenticated;
select tests.authenticate_as('qa_agent');
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155557601', 'Bea') returning id as bea \gset
select results_eq(
  format('select pg_temp.accepted_lead_statuses(%L)', :'bea'),
  $$ select unnest(enum_range(null::public.lead_status))::text $$,
  'an agent sets each lead_status value on a contact, booked included (a status list that forgot it would refuse it)');
select lives_ok(format($$ insert into contacts (workspace_id, phone, lead_status) values (%L, '+14155557602', 'booked') $$, :'ws'),
  'a contact can be created as booked');
select throws_ok(format($$ update contacts set lead_status = 'pending' where id = %L $$, :'bea'), '22P02', null,
  'a value outside the list is refused');

/** Section - retry_message and failed_messages */
select tests.authenticate_as('qa_owner');
insert into sequences (workspace_id, name, status) values (:'ws', 'Ping', 'active') returning id as seq3 \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
  (:'ws', :'seq3', 1, '0', 'Ping {{first_name}}'), (:'ws', :'seq3', 2, '1 day', 'Ping again');
insert into contacts (workspace_id, phone, first_name) values
  (:'ws', '+14155557701', 'Fay'), (:'ws', '+14155557702', 'Gus'), (:'ws', '+14155557703', 'Hal'), (:'ws', '+14155557704', 'Ivo');
select id as fay from contacts where phone = '+14155557701' \gset
select id as gus from contacts where phone = '+14155557702' \gset
-- Gus's step is marketing and goes out with the real clock: his zone is one where it is day.
update contacts set timezone = tests.daytime_zone() where id = :'gus';
select id as hal from contacts where phone = '+14155557703' \gset
select id as ivo from contacts where phone = '+14155557704' \gset
select schedule_message(:'fay', 'Your code is 1234', category => 'transactional') as m_fail \gset
select enroll_contact(:'seq3', :'gus') as e_gus \gset
select id as m_undeliv from messages where enrollment_id = :'e_gus' \gset
select schedule_message(:'hal', 'Delivered fine', category => 'transactional') as m_deliv \gset
select schedule_message(:'ivo', 'Before the opt-out', category => 'transactional') as m_opt \gset
select schedule_message(:'fay', 'Never mind', category => 'transactional') as m_cancel \gset
select cancel_message(:'m_cancel');
select schedule_message(:'hal', 'Tomorrow', now() + interval '1 day', category => 'transactional') as m_sched \gset

-- Through the dispatcher's own functions: queued, claimed, then Twilio's answers.
select tests.authenticate_as_service_role();
select herald.queue_due_messages(20000, now());
select count(*) from herald.claim_messages(100);
select herald.record_send_result(:'m_fail', 1, 'permanent', null, null, 21211, 'The ''To'' number is not a valid phone number.');
select herald.record_send_result(:'m_opt', 1, 'permanent', null, null, 21612, 'The ''To'' phone number is not reachable.');
select herald.record_send_result(:'m_undeliv', 1, 'sent', 'SMretryundelivered', 'queued');
select herald.apply_provider_status('SMretryundelivered', 'undelivered', 30003, '{}');
select herald.record_send_result(:'m_deliv', 1, 'sent', 'SMretrydelivered', 'queued');
select herald.apply_provider_status('SMretrydelivered', 'delivered', null, '{}');
select tests.authenticate_as('qa_agent');
update contacts set opted_out_at = now() where id = :'ivo';

select results_eq(
  format($$ select id, status::text, last_error_code, last_error, retried from failed_messages
            where workspace_id = %L order by phone $$, :'ws'),
  format($$ values (%L::uuid, 'failed'::text, 21211, 'The ''To'' number is not a valid phone number.'::text, false),
                   (%L::uuid, 'undelivered', 30003, 'provider reported undelivered with error 30003', false),
                   (%L::uuid, 'failed', 21612, 'The ''To'' phone number is not reachable.', false) $$,
         :'m_fail', :'m_undeliv', :'m_opt'),
  'failed_messages: each failed or undelivered message with its last error code and message');

select retry_message(:'m_fail') as r_fail \gset
select results_eq(
  format($$ select retry_of, contact_id, body, status::text, send_at <= now(), attempts, cancel_reason from messages where id = %L $$, :'r_fail'),
  format($$ values (%L::uuid, %L::uuid, 'Your code is 1234'::text, 'scheduled'::text, true, 0, null::public.cancel_reason) $$, :'m_fail', :'fay'),
  'an agent retries a failed message: a new message, retry_of the old, same body, scheduled now');
select is(retry_message(:'m_fail'), :'r_fail'::uuid, 'retrying it again returns the same retry');
select is((select count(*)::int from messages where retry_of = :'m_fail'), 1, 'and creates no second one');
select is((select status::text from messages where id = :'m_fail'), 'failed', 'the original stays failed');
select results_eq(
  format($$ select from_status::text, to_status::text, reason, actor from message_events where message_id = %L $$, :'r_fail'),
  format($$ values (null::text, 'scheduled'::text, %L::text, %L::text) $$, 'retry_of_' || :'m_fail', :'agent_id'),
  'the ledger says which message it retries and who asked');
select retry_message(:'m_undeliv') as r_undeliv \gset
select results_eq(
  format($$ select retry_of, body, status::text from messages where id = %L $$, :'r_undeliv'),
  format($$ values (%L::uuid, 'Ping Gus'::text, 'scheduled'::text) $$, :'m_undeliv'),
  'an undelivered sequence step is retried the same way');
select results_eq(
  format($$ select id, retried from failed_messages where workspace_id = %L order by phone $$, :'ws'),
  format($$ values (%L::uuid, true), (%L::uuid, true), (%L::uuid, false) $$, :'m_fail', :'m_undeliv', :'m_opt'),
  'failed_messages marks what was retried');
select tests.authenticate_as_service_role();
select herald.queue_due_messages(20000, now());
select tests.clear_authentication();
select results_eq(
  format($$ select id, status::text, cancel_reason::text from messages where id in (%L, %L) order by id = %L $$, :'r_fail', :'r_undeliv', :'r_undeliv'),
  format($$ values (%L::uuid, 'queued'::text, null::text), (%L::uuid, 'queued', null) $$, :'r_fail', :'r_undeliv'),
  'both retries go out again: queueing queues them (a retried step is not cancelled as sequence_stopped)');

select tests.authenticate_as('qa_agent');
select throws_ok(format('select retry_message(%L)', :'m_cancel'), '55000',
  format('message %s is cancelled: only failed or undelivered messages can be retried', :'m_cancel'), 'a cancelled message cannot be retried');
select throws_ok(format('select retry_message(%L)', :'m_deliv'), '55000',
  format('message %s is delivered: only failed or undelivered messages can be retried', :'m_deliv'), 'a delivered message cannot be retried');
select throws_ok(format('select retry_message(%L)', :'m_sched'), '55000',
  format('message %s is scheduled: only failed or undelivered messages can be retried', :'m_sched'), 'a scheduled message cannot be retried');
select throws_ok(format('select retry_message(%L)', :'m_opt'), '55000', format('contact %s has opted out', :'ivo'),
  'a failed message to a contact who has since opted out cannot be retried');
select throws_ok('select retry_message(null)', '22023', 'message_id is required', 'no message: refused');
select tests.authenticate_as('qb_owner');
select throws_ok(format('select retry_message(%L)', :'m_opt'), 'P0002', format('message %s not found', :'m_opt'),
  'another workspace''s owner: not found');
select tests.clear_authentication();
select is((select count(*)::int from messages where retry_of is not null and workspace_id = :'ws'), 2,
  'the refused retries created nothing');

/** Section - the ledger tells each message's whole story */
select results_eq(
  format($$ select from_status::text, to_status::text, reason from message_events where message_id = %L order by id $$, :'m_undeliv'),
  $$ values (null::text, 'scheduled'::text, 'created'::text), ('scheduled', 'queued', null), ('queued', 'sending', null),
            ('sending', 'sent', null), ('sent', 'undelivered', 'provider_undelivered_30003') $$,
  'one message''s history, read back from the ledger');
select is_empty(
  format($$ with ev as (
              select e.message_id, e.from_status, e.to_status,
                     lag(e.to_status) over (partition by e.message_id order by e.id) as prev,
                     row_number() over (partition by e.message_id order by e.id) as n,
                     row_number() over (partition by e.message_id order by e.id desc) as last
              from message_events e where e.workspace_id = %1$L)
            select m.id from messages m where m.workspace_id = %1$L and (
              not exists (select 1 from ev where ev.message_id = m.id and ev.n = 1 and ev.from_status is null)
              or exists (select 1 from ev where ev.message_id = m.id and ev.n > 1 and ev.from_status is distinct from ev.prev)
              or (select ev.to_status from ev where ev.message_id = m.id and ev.last = 1) is distinct from m.status) $$, :'ws'),
  'every message of workspace A: its ledger starts at creation, each step starts where the last ended, and ends at its status');

/** Section - queue_metrics: a fixture with known answers */
-- A workspace in Tokyo, so local days differ from UTC days. Messages are written directly (as
-- the table owner) with the timestamps the dispatcher and callbacks would have set.
select tests.authenticate_as('qa_owner');
select create_workspace('Metrics Co', 'Asia/Tokyo') as ws_m \gset
insert into contacts (workspace_id, phone) values (:'ws_m', '+14155557801') returning id as cm \gset
select tests.clear_authentication();
create function pg_temp.tk(p text) returns timestamptz language sql immutable as $$ select p::timestamp at time zone 'Asia/Tokyo' $$;
insert into messages (workspace_id, contact_id, body, status, send_at, sent_at, delivered_at, failed_at, cancelled_at, cancel_reason, last_error_code, last_error)
values
  -- 2026-03-10 (Tokyo): five sent (delays 60, 30, 90, 120, 600 s), three delivered, one undelivered,
  -- one failed unsent, three cancelled, one still scheduled
  (:'ws_m', :'cm', 'm9', 'delivered', pg_temp.tk('2026-03-10 00:29:00'), pg_temp.tk('2026-03-10 00:30:00'), pg_temp.tk('2026-03-10 00:30:05'), null, null, null, null, null),
  (:'ws_m', :'cm', 'm1', 'delivered', pg_temp.tk('2026-03-10 10:00:00'), pg_temp.tk('2026-03-10 10:00:30'), pg_temp.tk('2026-03-10 10:00:40'), null, null, null, null, null),
  (:'ws_m', :'cm', 'm2', 'read', pg_temp.tk('2026-03-10 11:00:00'), pg_temp.tk('2026-03-10 11:01:30'), pg_temp.tk('2026-03-10 11:01:40'), null, null, null, null, null),
  (:'ws_m', :'cm', 'm3', 'sent', pg_temp.tk('2026-03-10 12:00:00'), pg_temp.tk('2026-03-10 12:02:00'), null, null, null, null, null, null),
  (:'ws_m', :'cm', 'm4', 'undelivered', pg_temp.tk('2026-03-10 13:00:00'), pg_temp.tk('2026-03-10 13:10:00'), null, pg_temp.tk('2026-03-10 13:11:00'), null, null, 30003, 'provider reported undelivered with error 30003'),
  (:'ws_m', :'cm', 'm5', 'failed', pg_temp.tk('2026-03-10 14:00:00'), null, null, pg_temp.tk('2026-03-10 14:00:05'), null, null, 21211, 'invalid number'),
  (:'ws_m', :'cm', 'm6', 'cancelled', pg_temp.tk('2026-03-10 18:00:00'), null, null, null, pg_temp.tk('2026-03-10 15:00:00'), 'human_takeover', null, null),
  (:'ws_m', :'cm', 'm7', 'cancelled', pg_temp.tk('2026-03-12 18:00:00'), null, null, null, pg_temp.tk('2026-03-10 15:00:00'), 'human_takeover', null, null),
  (:'ws_m', :'cm', 'm8', 'cancelled', pg_temp.tk('2026-03-10 19:00:00'), null, null, null, pg_temp.tk('2026-03-10 16:00:00'), 'replied', null, null),
  (:'ws_m', :'cm', 'm10', 'scheduled', pg_temp.tk('2026-03-10 18:00:00'), null, null, null, null, null, null, null),
  -- 2026-03-11: one sent and delivered, 10 s late
  (:'ws_m', :'cm', 'm11', 'delivered', pg_temp.tk('2026-03-11 09:00:00'), pg_temp.tk('2026-03-11 09:00:10'), pg_temp.tk('2026-03-11 09:00:20'), null, null, null, null, null);
-- Deferrals (status unchanged, a reason): two quiet hours (one at 07:30 Tokyo, still the 9th in
-- UTC) and a daily limit on the 10th, a pause on the 11th (its resume is not a deferral), and a
-- day with nothing but a deferral.
insert into message_events (workspace_id, message_id, from_status, to_status, reason, actor, at)
select m.workspace_id, m.id, 'scheduled'::public.message_status, 'scheduled'::public.message_status, d.reason, 'cron', pg_temp.tk(d.at)
from messages m, (values ('quiet_hours', '2026-03-10 07:30:00'), ('quiet_hours', '2026-03-10 21:30:00'),
                         ('daily_limit', '2026-03-10 12:00:00'), ('automation_paused', '2026-03-11 08:00:00'),
                         ('automation_resumed', '2026-03-11 08:30:00'), ('quiet_hours', '2026-03-12 07:00:00')) d(reason, at)
where m.workspace_id = :'ws_m' and m.body = 'm10';

select tests.authenticate_as('qa_owner');
select results_eq(
  format($$ select day, scheduled::int, sent::int, delivered::int, failed::int, cancelled::int, cancelled_by_reason,
                   deferred_by_reason, delivery_rate, median_delay_seconds
            from queue_metrics where workspace_id = %L order by day $$, :'ws_m'),
  $$ values ('2026-03-10'::date, 1, 5, 3, 2, 3, '{"human_takeover": 2, "replied": 1}'::jsonb,
             '{"quiet_hours": 2, "daily_limit": 1}'::jsonb, 0.6000::numeric, 90::double precision),
            ('2026-03-11', 0, 1, 1, 0, 0, '{}', '{"automation_paused": 1}', 1.0000, 10),
            ('2026-03-12', 0, 0, 0, 0, 0, '{}', '{"quiet_hours": 1}', null, null) $$,
  'queue_metrics per Tokyo day: scheduled, sent, delivered, failed, cancelled by reason, deferred by reason, delivery rate, median delay');
select results_eq(
  format($$ select body, last_error_code, last_error from failed_messages where workspace_id = %L order by body $$, :'ws_m'),
  $$ values ('m4'::text, 30003, 'provider reported undelivered with error 30003'::text), ('m5', 21211, 'invalid number') $$,
  'failed_messages: the undelivered and the failed one, with their last errors');

/** Section - both views obey RLS */
select tests.authenticate_as('qb_owner');
select is_empty(format('select * from queue_metrics where workspace_id in (%L, %L)', :'ws', :'ws_m'),
  'another workspace''s member sees none of its metrics');
select is_empty(format('select * from failed_messages where workspace_id in (%L, %L)', :'ws', :'ws_m'),
  'nor its failed messages');
select ok((select count(*) from queue_metrics where workspace_id = :'ws_b') > 0, 'but does see their own workspace''s metrics');
select tests.authenticate_as('qa_agent');
select is((select sum(sent)::int from queue_metrics), 2, 'an agent of A sees A''s metrics only (its 2 sends)');
select tests.authenticate_as_anon();
select throws_ok('select * from queue_metrics', '42501', null, 'anon cannot read queue_metrics');
select throws_ok('select * from failed_messages', '42501', null, 'anon cannot read failed_messages');
select tests.clear_authentication();
select is(
  (select count(*)::int from pg_class c where c.oid in ('public.queue_metrics'::regclass, 'public.failed_messages'::regclass)
     and c.reloptions @> array['security_invoker=true']),
  2, 'both views are security_invoker, so the caller''s RLS applies');

select * from finish();
rollback;
