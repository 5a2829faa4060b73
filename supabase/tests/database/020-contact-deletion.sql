-- Contact deletion (seed 000): soft delete, restore, hard delete, opt-out and takeover each cancel
-- every future execution of the contact in the same transaction, proved row by row, acting as the
-- workspace's owner (dora) and an agent (abe). Statuses the dispatcher would set are set as the
-- service role, along the status graph.
begin;
select plan(60);

select tests.create_user('dora');
select tests.create_user('abe');
select tests.get_user_id('dora') as dora, tests.get_user_id('abe') as abe \gset

select tests.authenticate_as('dora');
select create_workspace('Deletion Co', 'Europe/Paris') as ws \gset
insert into workspace_members (workspace_id, user_id, role) values (:'ws', :'abe', 'agent');
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws', 'sms', '+15005550006', 'connected', true);

-- two active sequences of two steps each
insert into sequences (workspace_id, name, status) values (:'ws', 'Welcome', 'active') returning id as seq1 \gset
insert into sequences (workspace_id, name, status) values (:'ws', 'Nurture', 'active') returning id as seq2 \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
  (:'ws', :'seq1', 1, '1 hour', 'Hi {{first_name}}'), (:'ws', :'seq1', 2, '1 day', 'Still there?'),
  (:'ws', :'seq2', 1, '2 hours', 'News for {{first_name}}'), (:'ws', :'seq2', 2, '2 days', 'More news');

/** Section - the situation: 2 active enrollments, 5 scheduled, 1 queued, 1 sent, 1 appointment */
select tests.authenticate_as('abe');
insert into contacts (workspace_id, phone, first_name, last_name)
values (:'ws', '+14155550101', 'Ada', 'Lovelace') returning id as c \gset
insert into contact_tags (workspace_id, contact_id, tag) values (:'ws', :'c', 'vip');
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws', :'c', 'plan', 'gold');
select enroll_contact(:'seq1', :'c') as e1 \gset
select enroll_contact(:'seq2', :'c') as e2 \gset
select schedule_message(:'c', 'A plain message', now() + interval '1 day') as m_plain \gset
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'ws', :'c', 'Demo call', now() + interval '3 days') returning id as appt \gset
select schedule_message(:'c', 'Your demo is tomorrow', now() + interval '2 days', appointment_id => :'appt') as r1 \gset
select schedule_message(:'c', 'Your demo is in an hour', now() + interval '71 hours', appointment_id => :'appt') as r2 \gset
select schedule_message(:'c', 'About to go out') as m_queued \gset
select schedule_message(:'c', 'Already sent') as m_sent \gset

-- the dispatcher's part: queued, then one claimed, handed to the provider and sent
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id in (:'m_queued', :'m_sent');
update messages set status = 'sending', lease_expires_at = now() + interval '2 minutes', attempts = 1 where id = :'m_sent';
insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid, provider_status)
values (:'ws', :'m_sent', 1, 'SM00000000000000000000000000000101', 'queued');
update messages set status = 'sent', lease_expires_at = null, sent_at = now(),
  provider_sid = 'SM00000000000000000000000000000101'
where id = :'m_sent';

select tests.clear_authentication();
create temp table pending_before as
  select id, status from messages where contact_id = :'c' and status in ('scheduled', 'queued');
select md5(m::text) as sent_row from messages m where id = :'m_sent' \gset

select results_eq(
  format($$ select status::text, count(*)::int from messages where contact_id = %L group by status order by status $$, :'c'),
  $$ values ('queued', 1), ('scheduled', 5), ('sent', 1) $$,
  'the contact has 5 scheduled, 1 queued and 1 sent message');
select results_eq(
  format($$ select sequence_id, status::text from sequence_enrollments where contact_id = %L order by sequence_id $$, :'c'),
  format($$ select * from (values (%L::uuid, 'active'), (%L::uuid, 'active')) v order by 1 $$, :'seq1', :'seq2'),
  'the contact has 2 active enrollments');

/** Section - soft delete by an agent */
select tests.authenticate_as('abe');
select delete_contact(:'c') as soft_result \gset

select tests.clear_authentication();
select results_eq(
  format($$ select id, status::text, cancel_reason::text, cancelled_at is not null
            from messages where contact_id = %L and id in (select id from pending_before) order by id $$, :'c'),
  $$ select id, 'cancelled', 'contact_deleted', true from pending_before order by id $$,
  'every scheduled and queued message is cancelled with contact_deleted');
select is((select md5(m::text) from messages m where id = :'m_sent'), :'sent_row',
  'the sent message is untouched');
select results_eq(
  format($$ select id, status::text, stopped_reason, completed_at is not null from sequence_enrollments
            where contact_id = %L order by id $$, :'c'),
  format($$ select * from (values (%L::uuid, 'cancelled', 'contact_deleted', true), (%L::uuid, 'cancelled', 'contact_deleted', true)) v order by 1 $$,
         :'e1', :'e2'),
  'both enrollments are cancelled with contact_deleted');
select results_eq(
  format($$ select entity, mode, actor, counts from deletion_log where entity_id = %L $$, :'c'),
  format($$ values ('contact'::text, 'soft'::text, %L::text,
            '{"cancelled": {"messages": 6, "sequence_enrollments": 2}, "deleted": {}, "set_null": {}}'::jsonb) $$, :'abe'),
  'one deletion_log row: soft, by the agent, with what was cancelled');
select is((:'soft_result'::jsonb) - 'deletion_id',
  jsonb_build_object('contact_id', :'c', 'mode', 'soft', 'provider_erasures_queued', 0,
    'cancelled', '{"messages": 6, "sequence_enrollments": 2}'::jsonb, 'deleted', '{}'::jsonb, 'set_null', '{}'::jsonb),
  'delete_contact returns what it cancelled');
select is((:'soft_result'::jsonb ->> 'deletion_id')::bigint,
  (select id from deletion_log where entity_id = :'c'), 'and the id of its deletion_log row');
select results_eq(
  format($$ select kind, actor, detail from contact_activities where contact_id = %L $$, :'c'),
  format($$ values ('soft_deleted'::text, %L::text, '{"cancelled_messages": 6, "cancelled_enrollments": 2}'::jsonb) $$, :'abe'),
  'one activity row records the soft delete');
select results_eq(
  $$ select e.message_id, e.from_status::text, e.reason, e.actor from message_events e
     where e.to_status = 'cancelled' and e.message_id in (select id from pending_before) order by e.message_id $$,
  format($$ select id, status::text, 'contact_deleted', %L from pending_before order by id $$, :'abe'),
  'the ledger has one cancellation per message, with reason and actor');
select results_eq(format($$ select to_status::text from message_events where message_id = %L order by id $$, :'m_sent'),
  $$ values ('scheduled'), ('queued'), ('sending'), ('sent') $$,
  'the sent message''s ledger got nothing from the delete');
select isnt((select deleted_at from contacts where id = :'c'), null, 'the contact is soft-deleted, not gone');

-- from now on nothing can be scheduled for it
select tests.authenticate_as('abe');
select throws_ok(format($$ select schedule_message(%L, 'hello again') $$, :'c'), '55000', null,
  'schedule_message refuses a deleted contact');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'seq1', :'c'), '55000', null,
  'enroll_contact refuses a deleted contact');
select throws_ok(format($$ select delete_contact(%L) $$, :'c'), '55000', null,
  'a second soft delete is refused');
select is((select count(*)::int from messages where contact_id = :'c' and status in ('scheduled', 'queued')), 0,
  'the refused calls scheduled nothing');

/** Section - restore */
select lives_ok(format($$ select restore_contact(%L) $$, :'c'), 'an agent restores the contact');
select tests.clear_authentication();
select is((select deleted_at from contacts where id = :'c'), null, 'the contact is live again');
select results_eq(
  format($$ select id, status::text, cancel_reason::text from messages where contact_id = %L
            and id in (select id from pending_before) order by id $$, :'c'),
  $$ select id, 'cancelled', 'contact_deleted' from pending_before order by id $$,
  'what the delete cancelled stays cancelled');
select is((select count(*)::int from sequence_enrollments where contact_id = :'c' and status = 'cancelled'), 2,
  'the enrollments stay cancelled');
select results_eq(
  format($$ select kind, actor from contact_activities where contact_id = %L order by id $$, :'c'),
  format($$ values ('soft_deleted'::text, %L::text), ('restored', %L) $$, :'abe', :'abe'),
  'the restore is in the activity history');
select tests.authenticate_as('abe');
select lives_ok(format($$ select enroll_contact(%L, %L) $$, :'seq1', :'c'), 'a restored contact can be enrolled again');
select schedule_message(:'c', 'Welcome back', now() + interval '1 hour') as m_back \gset

/** Section - hard delete */
-- an agent may soft-delete but not erase
select throws_ok(format($$ select delete_contact(%L, hard => true) $$, :'c'), '42501', null,
  'an agent cannot hard-delete');
select is_empty(format($$ delete from contacts where id = %L returning id $$, :'c'),
  'an agent''s direct delete removes nothing');
select tests.clear_authentication();
select is((select count(*)::int from contacts where id = :'c'), 1, 'the contact survived the agent''s attempts');

create temp table doomed as
  select 'messages' as t, id from messages where contact_id = :'c';
insert into doomed select 'message_attempts', id from message_attempts where message_id in (select id from doomed where t = 'messages');
create temp table counts_before as
  select (select count(*) from messages where contact_id = :'c') as messages,
         (select count(*) from message_attempts where message_id in (select id from doomed)) as attempts,
         (select count(*) from message_events where message_id in (select id from doomed)) as events,
         (select count(*) from contact_activities where contact_id = :'c') as activities,
         (select count(*) from sequence_enrollments where contact_id = :'c') as enrollments;

select tests.authenticate_as('dora');
select preview_delete('contact', :'c') as preview \gset
select delete_contact(:'c', hard => true) as hard_result \gset
select tests.clear_authentication();

select results_eq(
  format($$
    select 'contacts', count(*)::int from contacts where id = %1$L
    union all select 'messages', count(*)::int from messages where contact_id = %1$L or id in (select id from doomed)
    union all select 'message_attempts', count(*)::int from message_attempts where message_id in (select id from doomed)
    union all select 'message_events', count(*)::int from message_events where message_id in (select id from doomed)
    union all select 'contact_tags', count(*)::int from contact_tags where contact_id = %1$L
    union all select 'contact_variables', count(*)::int from contact_variables where contact_id = %1$L
    union all select 'contact_activities', count(*)::int from contact_activities where contact_id = %1$L
    union all select 'sequence_enrollments', count(*)::int from sequence_enrollments where contact_id = %1$L
    union all select 'appointments', count(*)::int from appointments where contact_id = %1$L $$, :'c'),
  $$ values ('contacts', 0), ('messages', 0), ('message_attempts', 0), ('message_events', 0), ('contact_tags', 0),
            ('contact_variables', 0), ('contact_activities', 0), ('sequence_enrollments', 0), ('appointments', 0) $$,
  'nothing of the contact remains');
select results_eq(
  format($$ select mode, actor from deletion_log where entity = 'contact' and entity_id = %L order by id $$, :'c'),
  format($$ values ('soft'::text, %L::text), ('hard', %L) $$, :'abe', :'dora'),
  'the hard delete is logged after the soft one, by the owner');
select results_eq(
  format($$ select (counts -> 'deleted' ->> 'public.messages')::int, (counts -> 'deleted' ->> 'public.message_attempts')::int,
                   (counts -> 'deleted' ->> 'public.message_events')::int, (counts -> 'deleted' ->> 'public.contact_tags')::int,
                   (counts -> 'deleted' ->> 'public.contact_variables')::int, (counts -> 'deleted' ->> 'public.contact_activities')::int,
                   (counts -> 'deleted' ->> 'public.sequence_enrollments')::int, (counts -> 'deleted' ->> 'public.appointments')::int
            from deletion_log where entity_id = %L and mode = 'hard' $$, :'c'),
  $$ select messages::int, attempts::int, events::int, 1, 1, activities::int, enrollments::int, 1 from counts_before $$,
  'its counts say what was erased, per table');
select is((select counts -> 'cancelled' from deletion_log where entity_id = :'c' and mode = 'hard'),
  '{"messages": 2, "sequence_enrollments": 1}'::jsonb,
  'and what was cancelled first (the re-enrollment''s step and the new message)');
select is((select counts from deletion_log where entity_id = :'c' and mode = 'hard'),
  jsonb_build_object('cancelled', (:'preview'::jsonb) -> 'cancel', 'deleted', (:'preview'::jsonb) -> 'cascade',
                     'set_null', (:'preview'::jsonb) -> 'set_null'),
  'the log says exactly what preview_delete announced');
select is((:'hard_result'::jsonb) ->> 'mode', 'hard', 'delete_contact reports a hard delete');
select is((:'hard_result'::jsonb) -> 'deleted', (select counts -> 'deleted' from deletion_log where entity_id = :'c' and mode = 'hard'),
  'and returns the logged counts');
select results_eq(
  $$ select provider_sid, deletion_id, workspace_id, erased_at from herald.provider_erasures order by id $$,
  format($$ values ('SM00000000000000000000000000000101'::text,
                    (select id from deletion_log where entity_id = %L and mode = 'hard'), %L::uuid, null::timestamptz) $$, :'c', :'ws'),
  'the provider''s copy of the sent message is queued for erasure');
select is((:'hard_result'::jsonb ->> 'provider_erasures_queued')::int, 1, 'delete_contact reports one erasure queued');
select is((select count(*)::int from suppressions where workspace_id = :'ws'), 0,
  'a contact that never opted out leaves no suppression');
select is((select count(*)::int from contacts where workspace_id = :'ws'), 0, 'the workspace has no contact left');

/** Section - an opted-out contact, hard-deleted, stays suppressed */
select tests.authenticate_as('abe');
-- imported already opted out: no suppression row exists until the hard delete writes one
insert into contacts (workspace_id, phone, first_name, opted_out_at)
values (:'ws', '+14155550102', 'Otto', now() - interval '1 day') returning id as c_out \gset
select is((select count(*)::int from suppressions where workspace_id = :'ws'), 0, 'no suppression before the hard delete');
select tests.authenticate_as('dora');
select lives_ok(format($$ select delete_contact(%L, true) $$, :'c_out'), 'the owner hard-deletes the opted-out contact');
select tests.clear_authentication();
select results_eq(
  format($$ select reason, phone_hash = herald.phone_hash(%L, '+14155550102') from suppressions where workspace_id = %L $$, :'ws', :'ws'),
  $$ values ('opted_out'::text, true) $$,
  'a suppressions row keeps the number, as a keyed hash');
select is_empty(
  $$ select t.table_name from tests.table_counts() t
     where (xpath('/row/n/text()', query_to_xml(
              format('select count(*) as n from %s r where r::text like ''%%4155550102%%''', t.table_name), false, true, '')))[1]::text::int > 0 $$,
  'the phone number appears in no table of public or herald (suppressions, deletion_log, ledger…)');

select tests.authenticate_as('abe');
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550102', 'Otto again') returning id as c_again \gset
select isnt((select opted_out_at from contacts where id = :'c_again'), null, 're-adding the number yields an opted-out contact');
select throws_ok(format($$ select schedule_message(%L, 'welcome!') $$, :'c_again'), '55000', null,
  'and schedule_message refuses it');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'seq2', :'c_again'), '55000', null,
  'and enroll_contact refuses it');

/** Section - opt-out and takeover cancel the same way */
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550103', 'Olga') returning id as c_opt \gset
select enroll_contact(:'seq1', :'c_opt') as e_opt \gset
select schedule_message(:'c_opt', 'one', now() + interval '1 day') as m_opt1 \gset
select schedule_message(:'c_opt', 'two', now() + interval '2 days') as m_opt2 \gset
update contacts set opted_out_at = now() where id = :'c_opt';

insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550104', 'Hugo') returning id as c_take \gset
select enroll_contact(:'seq2', :'c_take') as e_take \gset
select schedule_message(:'c_take', 'one', now() + interval '1 day') as m_take1 \gset
update contacts set controlled_by = 'human', assigned_to = auth.uid() where id = :'c_take';

select tests.clear_authentication();
select results_eq(
  format($$ select status::text, cancel_reason::text, count(*)::int from messages where contact_id = %L group by 1, 2 $$, :'c_opt'),
  $$ values ('cancelled', 'contact_opted_out', 3) $$,
  'an opt-out cancels every pending message (contact_opted_out)');
select results_eq(
  format($$ select status::text, stopped_reason from sequence_enrollments where contact_id = %L $$, :'c_opt'),
  $$ values ('cancelled', 'contact_opted_out') $$,
  'and its enrollment');
select results_eq(
  format($$ select distinct reason, actor from message_events where to_status = 'cancelled'
            and message_id in (select id from messages where contact_id = %L) $$, :'c_opt'),
  format($$ values ('contact_opted_out'::text, %L::text) $$, :'abe'),
  'the ledger says why and who');
select is((select count(*)::int from suppressions s where s.workspace_id = :'ws'
           and s.phone_hash = herald.phone_hash(:'ws', '+14155550103')), 1, 'the opt-out is on the suppression list');
select results_eq(format($$ select kind from contact_activities where contact_id = %L $$, :'c_opt'),
  $$ values ('opted_out'::text) $$, 'and in the activity history');
select is((select count(*)::int from deletion_log where entity_id = :'c_opt'), 0, 'an opt-out is not a deletion');
select results_eq(
  format($$ select status::text, cancel_reason::text, count(*)::int from messages where contact_id = %L group by 1, 2 $$, :'c_take'),
  $$ values ('cancelled', 'human_takeover', 2) $$,
  'a takeover cancels every pending message (human_takeover)');
select results_eq(
  format($$ select status::text, stopped_reason from sequence_enrollments where contact_id = %L $$, :'c_take'),
  $$ values ('cancelled', 'human_takeover') $$,
  'and its enrollment');
select results_eq(format($$ select kind, actor from contact_activities where contact_id = %L $$, :'c_take'),
  format($$ values ('taken_over'::text, %L::text) $$, :'abe'), 'the takeover is in the activity history');
select tests.authenticate_as('abe');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'c_take'), '55000', null,
  'schedule_message refuses a human-controlled contact');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'seq1', :'c_take'), '55000', null,
  'enroll_contact refuses a human-controlled contact');

/** Section - an opt-out is the number's: a live twin of a soft-deleted contact opts out with it */
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550106', 'Old Tess') returning id as c_twin_old \gset
select delete_contact(:'c_twin_old') \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550106', 'Tess') returning id as c_twin \gset
select schedule_message(:'c_twin', 'to the live twin', now() + interval '1 day') as m_twin \gset
-- e.g. a message to the old row was in flight when it was deleted, and Twilio answered 21610
select tests.authenticate_as_service_role();
update contacts set opted_out_at = now() where id = :'c_twin_old';
select tests.clear_authentication();
select results_eq(format($$ select c.opted_out_at is not null, m.status::text, m.cancel_reason::text
                            from contacts c join messages m on m.contact_id = c.id where m.id = %L $$, :'m_twin'),
  $$ values (true, 'cancelled', 'contact_opted_out') $$,
  'the live contact with the same number opts out too, and its pending message is cancelled');
select tests.authenticate_as('abe');

/** Section - a direct delete (not through the RPC) obeys the same rules */
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550105', 'Dirk') returning id as c_direct \gset
select enroll_contact(:'seq1', :'c_direct') as e_direct \gset
select schedule_message(:'c_direct', 'direct one', now() + interval '1 day') as m_direct \gset
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'ws', :'c_direct', 'Call', now() + interval '2 days') returning id as appt_direct \gset
select schedule_message(:'c_direct', 'see you', now() + interval '1 day', appointment_id => :'appt_direct') as r_direct \gset
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id = :'m_direct';
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'m_direct';
insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid)
values (:'ws', :'m_direct', 1, 'SM00000000000000000000000000000105');
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where id = :'m_direct';
select tests.clear_authentication();
create temp table direct_messages as select id from messages where contact_id = :'c_direct';

select tests.authenticate_as('dora');
select results_eq(format($$ delete from contacts where id = %L returning id $$, :'c_direct'),
  format($$ values (%L::uuid) $$, :'c_direct'), 'an owner deletes a contact directly');
select tests.clear_authentication();
select is((select count(*)::int from messages where id in (select id from direct_messages))
          + (select count(*)::int from message_events where message_id in (select id from direct_messages))
          + (select count(*)::int from message_attempts where message_id in (select id from direct_messages))
          + (select count(*)::int from appointments where contact_id = :'c_direct')
          + (select count(*)::int from sequence_enrollments where contact_id = :'c_direct'), 0,
  'its messages, ledger, attempts, appointment and enrollment are gone');
select results_eq(
  format($$ select mode, actor, counts -> 'cancelled', (counts -> 'deleted' ->> 'public.messages')::int
            from deletion_log where entity_id = %L $$, :'c_direct'),
  format($$ values ('hard'::text, %L::text, '{"messages": 2, "sequence_enrollments": 1}'::jsonb, 3) $$, :'dora'),
  'the direct delete is logged like the RPC''s: cancelled first, then erased');
select is((select count(*)::int from herald.provider_erasures where provider_sid = 'SM00000000000000000000000000000105'
           and deletion_id = (select id from deletion_log where entity_id = :'c_direct')), 1,
  'and queues the provider erasure');

select is_empty(
  $$ select m.id from messages m join contacts c on c.id = m.contact_id
     where m.status in ('scheduled', 'queued')
       and (c.deleted_at is not null or c.opted_out_at is not null or c.controlled_by = 'human') $$,
  'no pending message belongs to a deleted, opted-out or human-controlled contact');

select * from finish();
rollback;
