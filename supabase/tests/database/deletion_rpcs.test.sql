-- The deletion RPCs (…_deletion_rpcs.sql). delete_contact, restore_contact: soft delete,
-- restore and hard delete each cancel every future execution of the contact in the same
-- transaction, proved row by row, acting as the workspace's owner (dora) and an agent (abe).
-- preview_delete: what it announces for every entity of the contract is what the delete then
-- does (row counts before and after) and what its deletion_log row says. Statuses the
-- dispatcher would set are set as the service role, along the status graph.
begin;
select plan(67);

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

/** Section - restore refuses what it cannot undo */
select tests.authenticate_as('abe');
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550107', 'Rita') returning id as c_rita \gset
select throws_ok(format($$ select restore_contact(%L) $$, :'c_rita'), '55000', format('contact %s is not deleted', :'c_rita'),
  'a live contact has nothing to restore');
select delete_contact(:'c_rita') \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550107', 'Rita again');
select throws_ok(format($$ select restore_contact(%L) $$, :'c_rita'), '23505', 'another live contact already has phone +14155550107',
  'a contact whose number a live contact took since cannot come back beside it');
select tests.clear_authentication();

/** Section - preview_delete against the real thing, for every entity */
select tests.create_user('ivy');
select tests.create_user('jay');
select tests.get_user_id('ivy') as ivy, tests.get_user_id('jay') as jay \gset

/** measuring what a delete really did */
-- The primary key of a row of t, as text (to recognise the same row after the delete).
create function pg_temp.pk_expr(t regclass) returns text
language sql stable as $$
  select format('row(%s)::text', string_agg(format('r.%I', a.attname), ', ' order by k.ord))
  from pg_index i
  cross join unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
  where i.indrelid = t and i.indisprimary
$$;

-- Before a delete: row counts per table, the rows whose set-null columns are set, the pending
-- messages and the active enrollments.
create function pg_temp.snapshot(p_preview jsonb) returns void
language plpgsql as $$
declare
  k text;
  v_tbl regclass;
begin
  if to_regclass('pg_temp.snap_counts') is not null then
    drop table pg_temp.snap_counts, pg_temp.snap_nulls, pg_temp.snap_pending, pg_temp.snap_active;
  end if;
  create temp table snap_counts as select * from tests.table_counts();
  create temp table snap_nulls (key text, pk text);
  for k in select jsonb_object_keys(p_preview -> 'set_null') loop
    v_tbl := (split_part(k, '.', 1) || '.' || split_part(k, '.', 2))::regclass;
    execute format('insert into pg_temp.snap_nulls select %L, %s from %s r where %s', k, pg_temp.pk_expr(v_tbl), v_tbl,
      (select string_agg(format('r.%I is not null', c), ' and ') from unnest(string_to_array(split_part(k, '.', 3), ',')) c));
  end loop;
  create temp table snap_pending as select id from public.messages where status in ('scheduled', 'queued');
  create temp table snap_active as select id from public.sequence_enrollments where status = 'active';
end;
$$;

-- After it, in the preview's shape: rows gone per cascaded table, rows whose key was set null,
-- pending messages no longer pending, active enrollments no longer active.
create function pg_temp.actual(p_preview jsonb) returns jsonb
language plpgsql as $$
declare
  v jsonb := jsonb_build_object('cascade', '{}'::jsonb, 'set_null', '{}'::jsonb);
  k text;
  n bigint;
  v_tbl regclass;
begin
  for k in select jsonb_object_keys(p_preview -> 'cascade') loop
    select b.row_count - a.row_count into n
    from pg_temp.snap_counts b join tests.table_counts() a on a.table_name = b.table_name
    where b.table_name = k;
    v := jsonb_set(v, array['cascade', k], to_jsonb(n));
  end loop;
  for k in select jsonb_object_keys(p_preview -> 'set_null') loop
    v_tbl := (split_part(k, '.', 1) || '.' || split_part(k, '.', 2))::regclass;
    execute format('select count(*) from %s r where %s in (select pk from pg_temp.snap_nulls where key = %L) and %s',
      v_tbl, pg_temp.pk_expr(v_tbl), k,
      (select string_agg(format('r.%I is null', c), ' and ') from unnest(string_to_array(split_part(k, '.', 3), ',')) c))
      into n;
    v := jsonb_set(v, array['set_null', k], to_jsonb(n));
  end loop;
  return v || jsonb_build_object('cancel', jsonb_build_object(
    'messages', (select count(*) from pg_temp.snap_pending p where not exists (
                   select 1 from public.messages m where m.id = p.id and m.status in ('scheduled', 'queued'))),
    'sequence_enrollments', (select count(*) from pg_temp.snap_active p where not exists (
                   select 1 from public.sequence_enrollments e where e.id = p.id and e.status = 'active'))));
end;
$$;

-- What the preview announces, in the shape pg_temp.actual() measures and deletion_log records.
create function pg_temp.announced(p_preview jsonb) returns jsonb
language sql immutable as $$
  select jsonb_build_object('cascade', p_preview -> 'cascade', 'set_null', p_preview -> 'set_null', 'cancel', p_preview -> 'cancel')
$$;
create function pg_temp.logged(p_entity_id uuid) returns jsonb
language sql stable as $$
  select jsonb_build_object('cascade', counts -> 'deleted', 'set_null', counts -> 'set_null', 'cancel', counts -> 'cancelled')
  from public.deletion_log where entity_id = p_entity_id and mode = 'hard'
$$;

/** Section - a workspace with one of everything */
select tests.authenticate_as('ivy');
select create_workspace('Preview Co') as ws \gset
insert into workspace_members (workspace_id, user_id, role) values (:'ws', :'jay', 'agent');
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'ws', 'sms', '+15550009801', 'connected', true) returning id as s_default \gset
insert into senders (workspace_id, channel, status) values (:'ws', 'sms', 'disconnected') returning id as s_sms \gset
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'ws', 'whatsapp', '+15550009802', 'connecting', true) returning id as s_wa \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id) values (:'ws', :'s_wa', 'g1@g.us') returning id as g1 \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id) values (:'ws', :'s_wa', 'g2@g.us') returning id as g2 \gset
insert into campaigns (workspace_id, name) values (:'ws', 'Spring') returning id as k \gset
insert into campaign_groups (workspace_id, campaign_id, group_id) values (:'ws', :'k', :'g1'), (:'ws', :'k', :'g2');
insert into sequences (workspace_id, name, status) values (:'ws', 'Onboarding', 'active') returning id as q \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body)
values (:'ws', :'q', 1, '0', 'Hi {{first_name}}'), (:'ws', :'q', 2, '1 day', 'Day two, {{first_name}}');
insert into queue_settings (workspace_id, default_sequence_id) values (:'ws', :'q');
insert into contacts (workspace_id, phone, first_name) values
  (:'ws', '+14155550501', 'Una'), (:'ws', '+14155550502', 'Vic'), (:'ws', '+14155550503', 'Wes'), (:'ws', '+14155550504', 'Xia');
select id as c1 from contacts where phone = '+14155550501' \gset
select id as c2 from contacts where phone = '+14155550502' \gset
select id as c3 from contacts where phone = '+14155550503' \gset
select id as c4 from contacts where phone = '+14155550504' \gset
insert into contact_tags (workspace_id, contact_id, tag) values (:'ws', :'c1', 'a'), (:'ws', :'c1', 'b'), (:'ws', :'c2', 'a');
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws', :'c1', 'city', 'Lyon');
select enroll_contact(:'q', :'c1') as e1 \gset
select enroll_contact(:'q', :'c2') as e2 \gset
select enroll_contact(:'q', :'c3') as e3 \gset
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'ws', :'c1', 'Visit', now() + interval '2 days') returning id as ap \gset
select schedule_message(:'c1', 'reminder 1', now() + interval '1 day', appointment_id => :'ap') as ap_r1 \gset
select schedule_message(:'c1', 'reminder 2', now() + interval '40 hours', appointment_id => :'ap') as ap_r2 \gset
select schedule_message(:'c1', 'reminder sent', now(), appointment_id => :'ap') as ap_r3 \gset
select schedule_message(:'c2', 'campaign 1', now() + interval '1 day') as k_m1 \gset
select schedule_message(:'c2', 'campaign sent', now()) as k_m2 \gset
select schedule_message(:'c3', 'sms pending 1', now() + interval '1 day') as s_m1 \gset
select schedule_message(:'c3', 'sms pending 2', now() + interval '2 days') as s_m2 \gset
select schedule_message(:'c3', 'sms sent', now()) as s_m3 \gset
select schedule_message(:'c4', 'wa pending', now() + interval '1 day', 'whatsapp') as w_m1 \gset
select schedule_message(:'c4', 'wa sent', now(), 'whatsapp') as w_m2 \gset

select tests.authenticate_as_service_role();
update messages set campaign_id = :'k' where id in (:'k_m1', :'k_m2');
update messages set sender_id = :'s_sms' where id in (:'s_m1', :'s_m2', :'s_m3');
update messages set sender_id = :'s_wa' where id in (:'w_m1', :'w_m2');
-- c3's first step was claimed through the WhatsApp sender, then its lease was reaped: pending, and bound
update messages set sender_id = :'s_wa' where enrollment_id = :'e3';
-- c1's first step, and the *_sent messages, go out
update messages set status = 'queued' where id in (:'ap_r3', :'k_m2', :'s_m3', :'w_m2') or enrollment_id = :'e1';
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute'
where id in (:'ap_r3', :'k_m2', :'s_m3', :'w_m2') or enrollment_id = :'e1';
update messages set status = 'sent', lease_expires_at = null, sent_at = now()
where id in (:'ap_r3', :'k_m2', :'s_m3', :'w_m2') or enrollment_id = :'e1';
insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid)
select workspace_id, id, 1, 'SM' || md5(id::text) from messages where status = 'sent';
select tests.clear_authentication();
select is((select count(*)::int from messages where workspace_id = :'ws' and status = 'scheduled'), 9,
  'the workspace has 9 pending messages');

/** Section - preview, delete, compare: whatsapp_group */
select tests.authenticate_as('ivy');
select preview_delete('whatsapp_group', :'g2') as pv \gset
select tests.clear_authentication();
select pg_temp.snapshot(:'pv');
select tests.authenticate_as('ivy');
delete from whatsapp_groups where id = :'g2';
select tests.clear_authentication();
select is(pg_temp.actual(:'pv'), pg_temp.announced(:'pv'), 'whatsapp_group: the delete did what preview_delete said');
select is(pg_temp.logged(:'g2'), pg_temp.announced(:'pv'), 'whatsapp_group: and deletion_log says the same');
select is((:'pv'::jsonb) -> 'cascade' -> 'public.campaign_groups', '1'::jsonb, 'whatsapp_group: one campaign link cascades');

/** campaign */
select tests.authenticate_as('ivy');
select preview_delete('campaign', :'k') as pv \gset
select tests.clear_authentication();
select pg_temp.snapshot(:'pv');
select tests.authenticate_as('ivy');
delete from campaigns where id = :'k';
select tests.clear_authentication();
select is(pg_temp.actual(:'pv'), pg_temp.announced(:'pv'), 'campaign: the delete did what preview_delete said');
select is(pg_temp.logged(:'k'), pg_temp.announced(:'pv'), 'campaign: and deletion_log says the same');
select is(((:'pv'::jsonb) -> 'cancel' ->> 'messages')::int + ((:'pv'::jsonb) -> 'set_null' ->> 'public.messages.campaign_id')::int, 3,
  'campaign: one message to cancel, two to unlink');

/** appointment */
select tests.authenticate_as('ivy');
select preview_delete('appointment', :'ap') as pv \gset
select tests.clear_authentication();
select pg_temp.snapshot(:'pv');
select tests.authenticate_as('ivy');
delete from appointments where id = :'ap';
select tests.clear_authentication();
select is(pg_temp.actual(:'pv'), pg_temp.announced(:'pv'), 'appointment: the delete did what preview_delete said');
select is(pg_temp.logged(:'ap'), pg_temp.announced(:'pv'), 'appointment: and deletion_log says the same');
select is((:'pv'::jsonb) -> 'cancel' -> 'messages', '2'::jsonb, 'appointment: two reminders to cancel');

/** sender with a default to take over */
select tests.authenticate_as('ivy');
select preview_delete('sender', :'s_sms') as pv \gset
select tests.clear_authentication();
select pg_temp.snapshot(:'pv');
select tests.authenticate_as('ivy');
delete from senders where id = :'s_sms';
select tests.clear_authentication();
select is(pg_temp.actual(:'pv'), pg_temp.announced(:'pv'), 'sender (re-bound): the delete did what preview_delete said');
select is(pg_temp.logged(:'s_sms'), pg_temp.announced(:'pv'), 'sender (re-bound): and deletion_log says the same');
select is((:'pv'::jsonb) -> 'rebind', jsonb_build_object('messages', 2, 'to_sender_id', :'s_default'),
  'sender (re-bound): preview names the sender that takes over two messages');
select is((select counts -> 'rebound' -> 'messages' from deletion_log where entity_id = :'s_sms'), '2'::jsonb,
  'sender (re-bound): and two were re-bound');

/** sender with nobody to take over (one of its pending messages is a sequence step) */
select tests.authenticate_as('ivy');
select preview_delete('sender', :'s_wa') as pv \gset
select tests.clear_authentication();
select pg_temp.snapshot(:'pv');
select tests.authenticate_as('ivy');
delete from senders where id = :'s_wa';
select tests.clear_authentication();
select is(pg_temp.actual(:'pv'), pg_temp.announced(:'pv'), 'sender (cancelled): the delete did what preview_delete said');
select is(pg_temp.logged(:'s_wa'), pg_temp.announced(:'pv'), 'sender (cancelled): and deletion_log says the same');
select results_eq(format($$ select status::text, stopped_reason from sequence_enrollments where id = %L $$, :'e3'),
  $$ values ('cancelled', 'sender_deleted') $$, 'sender (cancelled): the enrollment whose step it cancelled stops');

/** sequence */
select tests.authenticate_as('ivy');
select preview_delete('sequence', :'q') as pv \gset
select tests.clear_authentication();
select pg_temp.snapshot(:'pv');
select tests.authenticate_as('ivy');
delete from sequences where id = :'q';
select tests.clear_authentication();
select is(pg_temp.actual(:'pv'), pg_temp.announced(:'pv'), 'sequence: the delete did what preview_delete said');
select is(pg_temp.logged(:'q'), pg_temp.announced(:'pv'), 'sequence: and deletion_log says the same');
select is((:'pv'::jsonb) -> 'cancel', '{"messages": 2, "sequence_enrollments": 2}'::jsonb,
  'sequence: two active enrollments and their two pending steps to stop');

/** contact: soft delete cancels what the preview says; hard delete erases what it says */
select tests.authenticate_as('ivy');
insert into sequences (workspace_id, name, status) values (:'ws', 'Second', 'active') returning id as q2 \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values (:'ws', :'q2', 1, '1 hour', 'Again');
select enroll_contact(:'q2', :'c1'), enroll_contact(:'q2', :'c2'), schedule_message(:'c1', 'c1 pending', now() + interval '1 day'),
       schedule_message(:'c2', 'c2 pending', now() + interval '1 day') \gset
select tests.authenticate_as('jay');
select preview_delete('contact', :'c2') as pv \gset
select delete_contact(:'c2') as soft \gset
select is((:'soft'::jsonb) -> 'cancelled', (:'pv'::jsonb) -> 'cancel', 'contact (soft): it cancels what preview_delete said');
select is((:'pv'::jsonb) -> 'cancel', '{"messages": 2, "sequence_enrollments": 1}'::jsonb, 'contact (soft): two messages and one enrollment');
select tests.authenticate_as('ivy');
select preview_delete('contact', :'c1') as pv \gset
select tests.clear_authentication();
select pg_temp.snapshot(:'pv');
select tests.authenticate_as('ivy');
select delete_contact(:'c1', true) as hard \gset
select tests.clear_authentication();
select is(pg_temp.actual(:'pv'), pg_temp.announced(:'pv'), 'contact (hard): the delete did what preview_delete said');
select is(pg_temp.logged(:'c1'), pg_temp.announced(:'pv'), 'contact (hard): and deletion_log says the same');
select is((:'hard'::jsonb) -> 'deleted', (:'pv'::jsonb) -> 'cascade', 'contact (hard): delete_contact returns the same counts');
select cmp_ok(((:'pv'::jsonb) -> 'cascade' ->> 'public.message_events')::int, '>', 0, 'contact (hard): with its ledger rows');

/** workspace */
select tests.authenticate_as('ivy');
select preview_delete('workspace', :'ws') as pv \gset
select tests.clear_authentication();
select pg_temp.snapshot(:'pv');
select tests.authenticate_as('ivy');
delete from workspaces where id = :'ws';
select tests.clear_authentication();
select is(pg_temp.actual(:'pv'), pg_temp.announced(:'pv'), 'workspace: the delete did what preview_delete said');
select is(pg_temp.logged(:'ws'), pg_temp.announced(:'pv'), 'workspace: and deletion_log says the same');
select is((:'pv'::jsonb) -> 'blocked_by', '{}'::jsonb, 'workspace: nothing blocks it');

select * from finish();
rollback;