-- preview_delete says what a delete will do, for every entity of the contract, and the delete
-- then does exactly that (row counts before and after, and its deletion_log row); it follows the
-- live catalog. Then the RPCs' rules and refusals, the sequence engine, the status graph and the
-- append-only ledger.
begin;
select plan(83);

select tests.create_user('ivy');
select tests.create_user('jay');
select tests.get_user_id('ivy') as ivy, tests.get_user_id('jay') as jay \gset

/** Section - measuring what a delete really did */
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
values (:'ws', 'sms', '+15005550006', 'connected', true) returning id as s_default \gset
insert into senders (workspace_id, channel, status) values (:'ws', 'sms', 'disconnected') returning id as s_sms \gset
insert into senders (workspace_id, channel, status) values (:'ws', 'whatsapp', 'connecting') returning id as s_wa \gset
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

/** Section - preview follows the live catalog */
create table public.contact_notes (
  id bigint generated always as identity primary key,
  contact_id uuid not null references public.contacts (id) on delete no action,
  note text
);
create table public.contact_files (
  id bigint generated always as identity primary key,
  contact_id uuid not null references public.contacts (id) on delete cascade
);
create table public.contact_links (
  id bigint generated always as identity primary key,
  contact_id uuid references public.contacts (id) on delete set null
);
insert into public.contact_notes (contact_id, note) values (:'c4', 'called'), (:'c4', 'no answer');
insert into public.contact_files (contact_id) values (:'c4'), (:'c4'), (:'c4');
insert into public.contact_links (contact_id) values (:'c4');
select tests.authenticate_as('ivy');
select preview_delete('contact', :'c4') as pv \gset
select is((:'pv'::jsonb) -> 'blocked_by' -> 'public.contact_notes', '2'::jsonb,
  'a new no-action foreign key shows under blocked_by, with its count');
select is((:'pv'::jsonb) -> 'cascade' -> 'public.contact_files', '3'::jsonb,
  'a new cascading foreign key shows under cascade, with its count');
select is((:'pv'::jsonb) -> 'set_null' -> 'public.contact_links.contact_id', '1'::jsonb,
  'a new set-null foreign key shows under set_null, with its count');
select throws_ok(format($$ select delete_contact(%L, true) $$, :'c4'), '23503', null,
  'and the blocking key does block the delete');
select tests.clear_authentication();
drop table public.contact_notes, public.contact_files, public.contact_links;

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

/** Section - schedule_message */
select tests.authenticate_as('ivy');
select create_workspace('RPC Co') as ws2 \gset
insert into workspace_members (workspace_id, user_id, role) values (:'ws2', :'jay', 'agent');
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws2', 'sms', '+15005550006', 'connected', true);
insert into contacts (workspace_id, phone, first_name, last_name) values (:'ws2', '+14155550601', 'Ada', 'Byron') returning id as a \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550602') returning id as b \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550603') returning id as human \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550604') returning id as opted \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550605') returning id as gone \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550606') returning id as supp \gset
update contacts set controlled_by = 'human' where id = :'human';
update contacts set opted_out_at = now() where id = :'opted';
update contacts set deleted_at = now() where id = :'gone';
select tests.clear_authentication();
insert into suppressions (workspace_id, phone_hash, reason)
values (:'ws2', herald.phone_hash(:'ws2', '+14155550606'), 'provider_unsubscribed');
select count(*) as msgs_before from messages where workspace_id = :'ws2' \gset

select tests.authenticate_as('jay');
select schedule_message(:'a', 'Hello', idempotency_key => 'order-42') as m1 \gset
select is(schedule_message(:'a', 'Hello', idempotency_key => 'order-42'), :'m1'::uuid,
  'the same idempotency key returns the same message');
select throws_ok(format($$ select schedule_message(%L, 'Hello again', idempotency_key => 'order-42') $$, :'a'), '23505', null,
  'the same key with another body is refused');
select throws_ok(format($$ select schedule_message(%L, 'Hello', idempotency_key => 'order-42') $$, :'b'), '23505', null,
  'the same key for another contact is refused');
select throws_ok(format($$ select schedule_message(%L, '') $$, :'a'), '22023', 'message body must not be empty', 'an empty body is refused');
select throws_ok(format($$ select schedule_message(%L, '   ') $$, :'a'), '22023', 'message body must not be empty', 'a blank body is refused');
select throws_ok(format($$ select schedule_message(%L, null) $$, :'a'), '22023', 'message body must not be empty', 'a null body is refused');
select throws_ok(format($$ select schedule_message(%L, repeat('x', 1601)) $$, :'a'), '22023', null, 'a body over 1600 characters is refused');
select lives_ok(format($$ select schedule_message(%L, repeat('x', 1600)) $$, :'a'), 'a body of 1600 characters is fine');
select throws_ok(format($$ select schedule_message(%L, 'later', now() + interval '1 year 1 day') $$, :'a'), '22023', null,
  'send_at more than a year ahead is refused');
select throws_ok(format($$ select schedule_message(%L, 'fax me', channel => 'fax') $$, :'a'), '22023', 'unknown channel "fax"',
  'an unknown channel is refused');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'human'), '55000', null, 'a human-controlled contact is refused');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'opted'), '55000', null, 'an opted-out contact is refused');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'gone'), '55000', null, 'a deleted contact is refused');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'supp'), '55000', format('contact %s''s number is suppressed', :'supp'),
  'a contact whose number is suppressed is refused');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws2', :'b', 'B''s', now() + interval '1 day') returning id as ap_b \gset
select throws_ok(format($$ select schedule_message(%L, 'hi', appointment_id => %L) $$, :'a', :'ap_b'), 'P0002', null,
  'a reminder for another contact''s appointment is refused');
select is((select count(*)::int from messages where workspace_id = :'ws2'), :msgs_before + 2,
  'the refused calls created nothing');

/** cancel_message */
select is(cancel_message(:'m1'), true, 'cancel_message cancels a scheduled message');
select is(cancel_message(:'m1'), false, 'and says false the second time');
select results_eq(format($$ select status::text, cancel_reason::text from messages where id = %L $$, :'m1'),
  $$ values ('cancelled', 'user_cancelled') $$, 'the message is cancelled by the user');
select throws_ok($$ select cancel_message(gen_random_uuid()) $$, 'P0002', null, 'an unknown message is refused');

/** enroll_contact */
select tests.authenticate_as('ivy');
insert into sequences (workspace_id, name) values (:'ws2', 'Draft') returning id as q_draft \gset
insert into sequences (workspace_id, name, status) values (:'ws2', 'Archived', 'archived') returning id as q_arch \gset
insert into sequences (workspace_id, name, status) values (:'ws2', 'Empty', 'active') returning id as q_empty \gset
insert into sequences (workspace_id, name, status) values (:'ws2', 'Drip', 'active') returning id as q_drip \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
  (:'ws2', :'q_draft', 1, '0', 'x'), (:'ws2', :'q_arch', 1, '0', 'x'),
  (:'ws2', :'q_drip', 1, '0', 'Hi {{first_name}} {{last_name}}'),
  (:'ws2', :'q_drip', 2, '2 days', 'Your code: {{ var.code }} & {{first_name}}; {{var.missing}}end'),
  (:'ws2', :'q_drip', 3, '1 hour', 'Last one, {{last_name}}');
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws2', :'a', 'code', 'a\1b&c$1');
select tests.authenticate_as('jay');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'q_draft', :'a'), '55000', null, 'a draft sequence takes no enrollment');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'q_arch', :'a'), '55000', null, 'an archived sequence takes no enrollment');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'q_empty', :'a'), '55000', null, 'a sequence without steps takes no enrollment');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, gen_random_uuid(), :'a'), 'P0002', null, 'an unknown sequence is refused');
select enroll_contact(:'q_drip', :'a') as ed \gset
select is(enroll_contact(:'q_drip', :'a'), :'ed'::uuid, 'enrolling twice returns the same enrollment');
select tests.clear_authentication();
select results_eq(format($$ select status::text, current_position from sequence_enrollments where contact_id = %L $$, :'a'),
  $$ values ('active', 1) $$, 'one active enrollment');
select results_eq(format($$ select body, send_at = now() from messages where enrollment_id = %L $$, :'ed'),
  $$ values ('Hi Ada Byron', true) $$, 'one step-1 message, rendered, due at enrollment + its delay');

/** the sequence engine */
select id as step1_msg from messages where enrollment_id = :'ed' \gset
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id = :'step1_msg';
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'step1_msg';
update messages set status = 'sent', lease_expires_at = null, sent_at = '2030-01-01 10:00:00+00' where id = :'step1_msg';
select tests.clear_authentication();
select results_eq(
  format($$ select s.position, m.body, m.send_at, m.status::text from messages m join sequence_steps s on s.id = m.step_id
            where m.enrollment_id = %L and m.id <> %L $$, :'ed', :'step1_msg'),
  $$ values (2, 'Your code: a\1b&c$1 & Ada; end', '2030-01-03 10:00:00+00'::timestamptz, 'scheduled') $$,
  'step 1 sent schedules step 2 at its send time + the delay, with \1, & and $1 rendered literally');
select is((select current_position from sequence_enrollments where id = :'ed'), 2, 'the enrollment is at step 2');
select id as step2_msg from messages where enrollment_id = :'ed' and status = 'scheduled' \gset
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id = :'step2_msg';
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'step2_msg';
update messages set status = 'sent', lease_expires_at = null, sent_at = '2030-01-03 10:00:05+00' where id = :'step2_msg';
select id as step3_msg from messages where enrollment_id = :'ed' and status = 'scheduled' \gset
update messages set status = 'queued' where id = :'step3_msg';
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'step3_msg';
update messages set status = 'delivered', lease_expires_at = null, sent_at = '2030-01-03 11:00:05+00', delivered_at = now()
where id = :'step3_msg';
select tests.clear_authentication();
select results_eq(format($$ select body, send_at from messages where id = %L $$, :'step3_msg'),
  $$ values ('Last one, Byron', '2030-01-03 11:00:05+00'::timestamptz) $$, 'step 3 followed step 2 by its delay');
select results_eq(format($$ select status::text, current_position, completed_at is not null from sequence_enrollments where id = %L $$, :'ed'),
  $$ values ('completed', 3, true) $$, 'after the last step the enrollment completes');
select is((select count(*)::int from messages where enrollment_id = :'ed'), 3, 'and nothing more is scheduled');

-- values are data, never templates
update contacts set first_name = '{{last_name}}', last_name = '{{first_name}}' where id = :'b';
select tests.authenticate_as('jay');
select enroll_contact(:'q_drip', :'b') as eb \gset
select tests.clear_authentication();
select is((select body from messages where enrollment_id = :'eb'), 'Hi {{last_name}} {{first_name}}',
  'a value that looks like a placeholder renders literally');

select tests.authenticate_as('ivy');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 4, 'Hi {{frist_name}}') $$,
  :'ws2', :'q_drip'), '23514', null, 'a template with an unknown placeholder is refused');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 4, 'Hi {{var.Code}}') $$,
  :'ws2', :'q_drip'), '23514', null, 'a variable key that cannot exist is refused');
select lives_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 4, 'Bye {{ first_name }} {{var.code_2}}') $$,
  :'ws2', :'q_drip'), 'known placeholders, spaced or not, are accepted');

/** Section - the status graph */
select tests.authenticate_as_service_role();
select throws_ok(format($$ update messages set status = 'scheduled' where id = %L $$, :'step3_msg'), '55000', null,
  'delivered → scheduled is refused');
select throws_ok(format($$ update messages set status = 'queued', cancel_reason = null where id = %L $$, :'m1'), '55000', null,
  'cancelled → queued is refused');
select throws_ok(format($$ update messages set status = 'sending', lease_expires_at = now() where id = %L $$, :'step2_msg'), '55000', null,
  'sent → sending is refused');
select tests.clear_authentication();
select throws_ok(format($$ update messages set status = 'scheduled', cancel_reason = null where id = %L $$, :'m1'), '55000', null,
  'not even postgres moves a cancelled message back');

/** Section - the ledger is append-only */
select tests.authenticate_as('ivy');
select throws_ok($$ update message_events set reason = 'edited' $$, '42501', null, 'a member cannot update the ledger');
select throws_ok($$ delete from message_events $$, '42501', null, 'a member cannot delete from the ledger');
select tests.authenticate_as_service_role();
select throws_ok($$ update message_events set reason = 'edited' $$, '42501', 'message_events is append-only', 'nor can the service role update it');
select throws_ok($$ delete from message_events $$, '42501', 'message_events is append-only', 'or delete from it');
select tests.clear_authentication();
select throws_ok($$ update message_events set reason = 'edited' $$, '42501', 'message_events is append-only', 'nor can postgres update it');
select throws_ok($$ delete from message_events $$, '42501', 'message_events is append-only', 'or delete from it');
select throws_ok($$ truncate message_events cascade $$, '42501', 'message_events is append-only', 'or truncate it');
select cmp_ok((select count(*)::int from message_events where message_id in (select id from messages where contact_id = :'a')), '>=', 10,
  'the ledger of contact a is there');
create temp table a_messages as select id from messages where contact_id = :'a';
select tests.authenticate_as('ivy');
select lives_ok(format($$ select delete_contact(%L, true) $$, :'a'), 'a hard delete of the contact');
select tests.clear_authentication();
select is((select count(*)::int from message_events where message_id in (select id from a_messages)), 0,
  'takes its ledger with it');

select * from finish();
rollback;
