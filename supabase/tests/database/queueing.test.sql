-- Queueing due messages (…_queueing.sql): herald.quiet_until across zones and daylight-saving
-- changes, herald.spread, and herald.queue_due_messages, which cancels, fails, defers or queues
-- each due message with its reason, so no worker has to re-check any of it by hand. Clocks are
-- fixed: the queueing function and herald.quiet_until take the time as a parameter.
-- Scenario rows are written directly as postgres (tests.workspace, tests.message…), as a bulk
-- import or a stale writer would: the queueing function is what must catch them.
begin;
select plan(58);

/** Section - quiet_until: windows, zones and daylight-saving changes */
select is(herald.quiet_until('2026-06-15 02:00Z', 'America/New_York', '21:00', '08:00'), '2026-06-15 12:00Z'::timestamptz,
  '22:00 in New York (before midnight) is quiet until 08:00 New York time the next morning');
select is(herald.quiet_until('2026-06-15 07:00Z', 'America/New_York', '21:00', '08:00'), '2026-06-15 12:00Z'::timestamptz,
  '03:00 in New York (after midnight) is quiet until 08:00 the same morning');
select is(herald.quiet_until('2026-06-15 01:00Z', 'America/New_York', '21:00', '08:00'), '2026-06-15 12:00Z'::timestamptz,
  'the window starts at 21:00 sharp');
select is(herald.quiet_until('2026-06-15 00:59:59Z', 'America/New_York', '21:00', '08:00'), null,
  '20:59:59 is not quiet');
select is(herald.quiet_until('2026-06-15 12:00Z', 'America/New_York', '21:00', '08:00'), null,
  'the window ends at 08:00 sharp');
select is(herald.quiet_until('2026-06-15 02:00Z', 'Europe/Paris', '21:00', '08:00'), '2026-06-15 06:00Z'::timestamptz,
  'the same instant is 04:00 in Paris: quiet until 08:00 Paris time');
select is(herald.quiet_until('2026-06-15 02:00Z', 'Asia/Tokyo', '21:00', '08:00'), null,
  'the same instant is 11:00 in Tokyo: not quiet');
select is(herald.quiet_until('2026-06-15 12:30Z', 'UTC', '12:00', '14:00'), '2026-06-15 14:00Z'::timestamptz,
  'a window that does not cross midnight (12:00–14:00): 12:30 is quiet until 14:00');
select is(herald.quiet_until('2026-06-15 07:00Z', 'Asia/Kolkata', '12:00', '14:00'), '2026-06-15 08:30Z'::timestamptz,
  'a window that does not cross midnight, in a half-hour zone: 12:30 IST is quiet until 14:00 IST');
select is(herald.quiet_until('2026-06-15 11:59Z', 'UTC', '12:00', '14:00'), null,
  'before a daytime window: not quiet');
select is(herald.quiet_until('2026-06-15 23:00Z', 'UTC', '12:00', '14:00'), null,
  'after a daytime window, at night: not quiet');
select is(herald.quiet_until('2026-06-15 03:00Z', 'UTC', '00:00', '00:00'), null,
  'start = end means no quiet hours');
-- US daylight saving starts 2026-03-08 (02:00 EST → 03:00 EDT) and ends 2026-11-01 (02:00 EDT → 01:00 EST).
select is(herald.quiet_until('2026-03-07 05:00Z', 'America/New_York', '21:00', '08:00'), '2026-03-07 13:00Z'::timestamptz,
  'New York, the night before the change: 08:00 EST is 13:00 UTC');
select is(herald.quiet_until('2026-03-08 05:00Z', 'America/New_York', '21:00', '08:00'), '2026-03-08 12:00Z'::timestamptz,
  'New York, 00:00 EST on 2026-03-08: quiet until 08:00 EDT, which is 12:00 UTC');
select is(herald.quiet_until('2026-03-08 02:30Z', 'America/New_York', '21:00', '08:00'), '2026-03-08 12:00Z'::timestamptz,
  'New York, 21:30 EST the evening before the change: quiet until 08:00 EDT (12:00 UTC)');
select is(herald.quiet_until('2026-11-01 03:00Z', 'America/New_York', '21:00', '08:00'), '2026-11-01 13:00Z'::timestamptz,
  'New York, 23:00 EDT before 2026-11-01: quiet until 08:00 EST, which is 13:00 UTC');
select is(herald.quiet_until('2026-11-01 06:30Z', 'America/New_York', '21:00', '08:00'), '2026-11-01 13:00Z'::timestamptz,
  'New York, the repeated 01:30 (EST): quiet until 08:00 EST');
-- EU summer time starts 2026-03-29 (02:00 CET → 03:00 CEST) and ends 2026-10-25.
select is(herald.quiet_until('2026-03-28 22:00Z', 'Europe/Paris', '21:00', '08:00'), '2026-03-29 06:00Z'::timestamptz,
  'Paris, 23:00 CET before 2026-03-29: quiet until 08:00 CEST, which is 06:00 UTC');
select is(herald.quiet_until('2026-03-29 01:30Z', 'Europe/Paris', '21:00', '08:00'), '2026-03-29 06:00Z'::timestamptz,
  'Paris, 03:30 CEST just after the change: quiet until 06:00 UTC');
select is(herald.quiet_until('2026-10-24 21:00Z', 'Europe/Paris', '21:00', '08:00'), '2026-10-25 07:00Z'::timestamptz,
  'Paris, 23:00 CEST before 2026-10-25: quiet until 08:00 CET, which is 07:00 UTC');

/** Section - queue_due_messages, one scenario per workspace, clocks going backwards */
-- Each scenario's messages are due at its own clock only; running the scenarios from the latest
-- clock to the earliest keeps what one deferred out of the next one's reach.

-- 1. Daylight saving in the queue: New York, the evening before the autumn change.
select tests.workspace('DST autumn', 'UTC', '21:00', '08:00') as ws_fall \gset
select tests.sender(:'ws_fall', '+15550001001');
select tests.contact(:'ws_fall', '+14155550001', 'America/New_York') as c_fall \gset
select tests.message(:'c_fall', '2026-11-01 02:55Z') as m_fall \gset
select is(herald.queue_due_messages(1000, '2026-11-01 03:00Z'),
  '{"queued": 0, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 1, "deferred_daily_limit": 0}'::jsonb,
  'DST autumn: the one due message is deferred for quiet hours');
select ok((select send_at >= '2026-11-01 13:00Z' and send_at < '2026-11-01 13:30Z' from messages where id = :'m_fall'),
  'DST autumn: deferred to 08:00 EST (13:00 UTC) plus its spread, in the contact''s zone, not the workspace''s UTC');

-- 2. Quiet hours: one workspace in New York, contacts in their own zones, a window crossing midnight.
select tests.workspace('Quiet', 'America/New_York', '21:00', '08:00') as ws_q \gset
select tests.sender(:'ws_q', '+15550001002');
select tests.contact(:'ws_q', '+14155550011') as c_ny \gset
select tests.contact(:'ws_q', '+14155550012', 'Europe/Paris') as c_paris \gset
select tests.contact(:'ws_q', '+14155550013', 'Asia/Tokyo') as c_tokyo \gset
select tests.contact(:'ws_q', '+14155550014', 'America/Los_Angeles') as c_la \gset
select tests.message(:'c_ny', '2026-06-15 01:30Z'::timestamptz + make_interval(secs => i)) from generate_series(1, 20) i;
select tests.message(:'c_paris', '2026-06-15 01:50Z') as m_paris \gset
select tests.message(:'c_tokyo', '2026-06-15 01:50Z') as m_tokyo \gset
select tests.message(:'c_la', '2026-06-15 01:50Z') as m_la \gset
-- not due yet at this clock: untouched
select tests.message(:'c_ny', '2026-06-15 02:01Z') as m_later \gset
select count(*) as events_before from message_events where workspace_id = :'ws_q' \gset

select is(herald.queue_due_messages(1000, '2026-06-15 02:00Z'),
  '{"queued": 2, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 21, "deferred_daily_limit": 0}'::jsonb,
  'quiet hours: 21 deferred (New York at 22:00, Paris at 04:00), 2 queued (Tokyo at 11:00, Los Angeles at 19:00)');
select results_eq(
  format($$ select status::text, count(*)::int from messages where contact_id = %L and id <> %L group by status $$, :'c_ny', :'m_later'),
  $$ values ('scheduled', 20) $$,
  'the New York contact''s 20 messages are still scheduled');
select is(
  (select count(*)::int from messages where contact_id = :'c_ny' and id <> :'m_later'
     and send_at >= '2026-06-15 12:00Z' and send_at < '2026-06-15 12:30Z'),
  20, 'each is deferred to the window''s end in New York (08:00 EDT = 12:00 UTC), within the 30-minute spread');
select cmp_ok(
  (select count(distinct send_at)::int from messages where contact_id = :'c_ny' and id <> :'m_later'), '>=', 15,
  'the deferred messages are spread, not stacked on one instant');
select cmp_ok(
  (select max(send_at) - min(send_at) from messages where contact_id = :'c_ny' and id <> :'m_later'), '>=', interval '10 minutes',
  'the spread covers a good part of its span');
select ok((select send_at >= '2026-06-15 06:00Z' and send_at < '2026-06-15 06:30Z' and status = 'scheduled'
           from messages where id = :'m_paris'),
  'the Paris contact is deferred to 08:00 in Paris (06:00 UTC), its own zone, not the workspace''s');
select results_eq(
  format($$ select id, status::text from messages where id in (%L, %L) order by id $$, :'m_tokyo', :'m_la'),
  format($$ select * from (values (%L::uuid, 'queued'), (%L::uuid, 'queued')) v order by 1 $$, :'m_tokyo', :'m_la'),
  'contacts whose local time is outside the window are queued');
select is(
  (select count(*)::int from message_events e join messages m on m.id = e.message_id
   where m.workspace_id = :'ws_q' and e.reason = 'quiet_hours' and e.from_status = 'scheduled' and e.to_status = 'scheduled'
     and (e.detail ->> 'send_at_to')::timestamptz = m.send_at),
  21, 'each deferral wrote one ledger event with reason quiet_hours and the new send_at');
select ok((select status = 'scheduled' and send_at = '2026-06-15 02:01Z' from messages where id = :'m_later'),
  'a message not yet due is left alone');
select is(herald.queue_due_messages(1000, '2026-06-15 02:00Z'),
  '{"queued": 0, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'run again at the same clock: nothing moves twice');
select is((select count(*)::int from message_events where workspace_id = :'ws_q'), :events_before + 23,
  'the second run wrote no ledger events (21 deferrals + 2 queued, once)');

-- 3. Daily limit, per workspace-local day: Tokyo, limit 3, at 05:00 local on 2026-05-16.
select tests.workspace('Limited', 'Asia/Tokyo', '00:00', '00:00', 3) as ws_l \gset
select tests.sender(:'ws_l', '+15550001003');
select tests.contact(:'ws_l', '+14155550021') as c_l \gset
-- sent at 01:00 local today (counts), and at 23:00 local yesterday, the same UTC day (does not)
insert into messages (workspace_id, contact_id, body, send_at, status, sent_at, attempts) values
  (:'ws_l', :'c_l', 'sent today', '2026-05-15 16:00Z', 'sent', '2026-05-15 16:00Z', 1),
  (:'ws_l', :'c_l', 'sent yesterday', '2026-05-15 14:00Z', 'sent', '2026-05-15 14:00Z', 1);
create temp table limited as
  select i, tests.message(:'c_l', '2026-05-15 19:50Z'::timestamptz + make_interval(secs => i)) as id from generate_series(1, 5) i;
select is(herald.queue_due_messages(1000, '2026-05-15 20:00Z'),
  '{"queued": 2, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 3}'::jsonb,
  'daily limit 3 with 1 already sent today: 2 queued, 3 deferred');
select results_eq(
  $$ select l.i, m.status::text from limited l join messages m on m.id = l.id order by l.i $$,
  $$ values (1, 'queued'), (2, 'queued'), (3, 'scheduled'), (4, 'scheduled'), (5, 'scheduled') $$,
  'the earliest due go first; a message sent yesterday (local), though today in UTC, does not count');
select is(
  (select count(*)::int from limited l join messages m on m.id = l.id
   where l.i > 2 and m.send_at >= '2026-05-16 15:00Z' and m.send_at < '2026-05-16 15:30Z'),
  3, 'the overflow is deferred to the start of the next local day (00:00 on 2026-05-17 in Tokyo = 15:00 UTC), spread');
select is(
  (select count(*)::int from limited l join message_events e on e.message_id = l.id
   where e.reason = 'daily_limit' and e.to_status = 'scheduled'),
  3, 'each daily-limit deferral wrote a ledger event with reason daily_limit');
select is(herald.queue_due_messages(1000, '2026-05-15 20:00Z'),
  '{"queued": 0, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'daily limit, run again: nothing moves twice');

-- 4. Paused automation holds, and a paused backlog does not starve another workspace.
select tests.workspace('Paused') as ws_p \gset
update workspaces set automation_enabled = false where id = :'ws_p';
select tests.sender(:'ws_p', '+15550001004');
select tests.contact(:'ws_p', '+14155550031') as c_p \gset
select tests.message(:'c_p', '2026-05-01 11:00Z'::timestamptz + make_interval(secs => i)) from generate_series(1, 5) i;
select tests.workspace('Busy') as ws_b \gset
select tests.sender(:'ws_b', '+15550001005');
select tests.contact(:'ws_b', '+14155550032') as c_b \gset
select tests.message(:'c_b', '2026-05-01 11:30Z'::timestamptz + make_interval(secs => i)) from generate_series(1, 2) i;
select is(herald.queue_due_messages(2, '2026-05-01 12:00Z'),
  '{"queued": 2, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'with a batch of 2, the active workspace''s 2 messages are queued though the paused one''s are older');
select results_eq(
  format($$ select status::text, count(*)::int, min(send_at), max(send_at) from messages where workspace_id = %L group by status $$, :'ws_p'),
  $$ values ('scheduled', 5, '2026-05-01 11:00:01Z'::timestamptz, '2026-05-01 11:00:05Z'::timestamptz) $$,
  'the paused workspace''s messages are held: still scheduled, send_at unchanged');
select is((select count(*)::int from message_events where workspace_id = :'ws_p'), 5,
  'holding writes no ledger event (only the 5 creations)');
update workspaces set automation_enabled = true where id = :'ws_p';
select is(herald.queue_due_messages(1000, '2026-05-01 12:00Z'),
  '{"queued": 5, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'resumed: the held messages are queued');

-- 5. Cancellations at queue time, with reasons; no sender → failed.
-- The triggers cancel pending messages when a contact changes; these messages are written after
-- the change (as a stale writer would), so only the queueing function can catch them.
select tests.workspace('Cancels') as ws_c \gset
select tests.sender(:'ws_c', '+15550001006');
insert into contacts (workspace_id, phone, deleted_at) values (:'ws_c', '+14155550041', now()) returning id as c_deleted \gset
insert into contacts (workspace_id, phone, opted_out_at) values (:'ws_c', '+14155550042', now()) returning id as c_opted \gset
select tests.contact(:'ws_c', '+14155550043') as c_suppressed \gset
insert into suppressions (workspace_id, phone_hash, reason) values (:'ws_c', herald.phone_hash(:'ws_c', '+14155550043'), 'opted_out');
insert into contacts (workspace_id, phone, controlled_by) values (:'ws_c', '+14155550044', 'human') returning id as c_human \gset
select tests.contact(:'ws_c', '+14155550045') as c_appt \gset
insert into appointments (workspace_id, contact_id, title, starts_at, status) values
  (:'ws_c', :'c_appt', 'Cancelled call', '2026-04-16 12:00Z', 'cancelled') returning id as a_cancelled \gset
insert into appointments (workspace_id, contact_id, title, starts_at, status) values
  (:'ws_c', :'c_appt', 'Done call', '2026-04-14 12:00Z', 'completed') returning id as a_completed \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values
  (:'ws_c', :'c_appt', 'Upcoming call', '2026-04-16 12:00Z') returning id as a_scheduled \gset
insert into sequences (workspace_id, name, status) values (:'ws_c', 'Stopped', 'active') returning id as seq_c \gset
insert into sequence_steps (workspace_id, sequence_id, position, body) values (:'ws_c', :'seq_c', 1, 'Step one') returning id as step_c \gset
select tests.contact(:'ws_c', '+14155550046') as c_enrolled \gset
insert into sequence_enrollments (workspace_id, sequence_id, contact_id, status, stopped_reason, completed_at)
values (:'ws_c', :'seq_c', :'c_enrolled', 'cancelled', 'user_cancelled', now()) returning id as e_stopped \gset
select tests.contact(:'ws_c', '+14155550047') as c_ok \gset
select tests.workspace('No sender') as ws_n \gset
select tests.contact(:'ws_n', '+14155550048') as c_nosender \gset

select tests.message(:'c_deleted', '2026-04-15 11:00Z') as m_deleted \gset
select tests.message(:'c_opted', '2026-04-15 11:00Z') as m_opted \gset
select tests.message(:'c_suppressed', '2026-04-15 11:00Z') as m_suppressed \gset
select tests.message(:'c_human', '2026-04-15 11:00Z') as m_human \gset
select tests.message(:'c_appt', '2026-04-15 11:00Z') as m_appt_cancelled \gset
select tests.message(:'c_appt', '2026-04-15 11:00Z') as m_appt_completed \gset
select tests.message(:'c_appt', '2026-04-15 11:00Z') as m_appt_ok \gset
update messages set appointment_id = :'a_cancelled' where id = :'m_appt_cancelled';
update messages set appointment_id = :'a_completed' where id = :'m_appt_completed';
update messages set appointment_id = :'a_scheduled' where id = :'m_appt_ok';
insert into messages (workspace_id, contact_id, body, send_at, enrollment_id, step_id)
values (:'ws_c', :'c_enrolled', 'Step one', '2026-04-15 11:00Z', :'e_stopped', :'step_c') returning id as m_enrolled \gset
select tests.message(:'c_ok', '2026-04-15 11:00Z') as m_ok \gset
select tests.message(:'c_ok', '2026-04-15 11:00Z', 'scheduled', 'whatsapp') as m_whatsapp \gset
select tests.message(:'c_nosender', '2026-04-15 11:00Z') as m_nosender \gset

select is(herald.queue_due_messages(1000, '2026-04-15 12:00Z'),
  '{"queued": 2, "cancelled": 7, "failed": 2, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'cancellations: 7 cancelled, 2 failed for want of a sender, 2 queued');
select results_eq(
  format($$ select id, status::text, coalesce(cancel_reason::text, '-') from messages where id in (%L, %L, %L, %L, %L, %L, %L, %L, %L) order by id $$,
    :'m_deleted', :'m_opted', :'m_suppressed', :'m_human', :'m_appt_cancelled', :'m_appt_completed', :'m_enrolled', :'m_ok', :'m_appt_ok'),
  format($$ select * from (values (%L::uuid, 'cancelled', 'contact_deleted'), (%L::uuid, 'cancelled', 'contact_opted_out'),
                                  (%L::uuid, 'cancelled', 'contact_opted_out'), (%L::uuid, 'cancelled', 'human_takeover'),
                                  (%L::uuid, 'cancelled', 'appointment_cancelled'), (%L::uuid, 'cancelled', 'appointment_completed'),
                                  (%L::uuid, 'cancelled', 'sequence_stopped'), (%L::uuid, 'queued', '-'), (%L::uuid, 'queued', '-')) v order by 1 $$,
    :'m_deleted', :'m_opted', :'m_suppressed', :'m_human', :'m_appt_cancelled', :'m_appt_completed', :'m_enrolled', :'m_ok', :'m_appt_ok'),
  'deleted, opted out, suppressed, human, appointment cancelled or completed, enrollment stopped: each cancelled with its reason; the rest queued');
select results_eq(
  format($$ select e.reason from message_events e where e.message_id in (%L, %L, %L, %L, %L, %L, %L) and e.to_status = 'cancelled' order by e.reason $$,
    :'m_deleted', :'m_opted', :'m_suppressed', :'m_human', :'m_appt_cancelled', :'m_appt_completed', :'m_enrolled'),
  $$ values ('appointment_cancelled'), ('appointment_completed'), ('contact_deleted'), ('contact_opted_out'), ('contact_opted_out'),
            ('human_takeover'), ('sequence_stopped') $$,
  'each cancellation wrote a ledger event with its reason');
select results_eq(
  format($$ select m.status::text, e.reason, m.last_error like 'no sender%%' from messages m
            join message_events e on e.message_id = m.id and e.to_status = 'failed'
            where m.id in (%L, %L) order by m.id $$, :'m_nosender', :'m_whatsapp'),
  $$ values ('failed', 'no_sender', true), ('failed', 'no_sender', true) $$,
  'a message with no sender to send from (no default sender, or none for its channel) fails with reason no_sender');
select is(herald.queue_due_messages(1000, '2026-04-15 12:00Z'),
  '{"queued": 0, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'cancellations, run again: nothing moves twice');

-- 6. Daylight saving in the queue: Paris, the night of the spring change; New York, likewise.
select tests.workspace('DST spring', 'UTC', '21:00', '08:00') as ws_dst \gset
select tests.sender(:'ws_dst', '+15550001007');
select tests.contact(:'ws_dst', '+14155550051', 'Europe/Paris') as c_dst_paris \gset
select tests.contact(:'ws_dst', '+14155550052', 'America/New_York') as c_dst_ny \gset
select tests.message(:'c_dst_paris', '2026-03-28 21:55Z') as m_dst_paris \gset
select is((herald.queue_due_messages(1000, '2026-03-28 22:00Z') ->> 'deferred_quiet_hours')::int, 1,
  'DST Paris: 23:00 CET is quiet');
select ok((select send_at >= '2026-03-29 06:00Z' and send_at < '2026-03-29 06:30Z' from messages where id = :'m_dst_paris'),
  'DST Paris: deferred to 08:00 CEST on 2026-03-29 (06:00 UTC, not 07:00)');
select tests.message(:'c_dst_ny', '2026-03-08 04:55Z') as m_dst_ny \gset
select is((herald.queue_due_messages(1000, '2026-03-08 05:00Z') ->> 'deferred_quiet_hours')::int, 1,
  'DST New York: midnight EST is quiet');
select ok((select send_at >= '2026-03-08 12:00Z' and send_at < '2026-03-08 12:30Z' from messages where id = :'m_dst_ny'),
  'DST New York: deferred to 08:00 EDT on 2026-03-08 (12:00 UTC, not 13:00)');


/** Section - spread: deferred batches land spread out, and the same message always lands alike */
select is(herald.spread('00000000-0000-4000-8000-000000000001', interval '30 minutes'),
          herald.spread('00000000-0000-4000-8000-000000000001', interval '30 minutes'),
  'spread is a function of the message id: running the job again moves nothing');
select is_empty($$ select g from generate_series(1, 200) g
                   where herald.spread(md5(g::text)::uuid, interval '30 minutes') not between interval '0' and interval '30 minutes' $$,
  'spread stays within its span');
select cmp_ok((select count(distinct date_trunc('minute', herald.spread(md5(g::text)::uuid, interval '30 minutes')))::int
               from generate_series(1, 200) g), '>=', 25,
  '200 messages spread over 30 minutes land in at least 25 different minutes');
select is(herald.spread(md5('x')::uuid, interval '0'), interval '0', 'a span of nothing spreads nothing');

/** Section - the cron job and who may run the queueing */
select results_eq(
  $$ select schedule, command from cron.job where jobname = 'herald-queue-due-messages' $$,
  $$ values ('* * * * *'::text, 'select herald.queue_due_messages()'::text) $$,
  'pg_cron queues due messages every minute');
select tests.create_user('mallory');
select tests.authenticate_as('mallory');
select throws_ok($$ select herald.queue_due_messages() $$, '42501', null, 'authenticated cannot run the queueing');
select tests.authenticate_as_service_role();
select lives_ok($$ select herald.queue_due_messages(1, '2000-01-01') $$, 'the service role (the cron job) can');
select tests.clear_authentication();

select * from finish();
rollback;