-- Cross-workspace isolation and bad input. amy (workspace A) tries to read, preview, delete,
-- restore, schedule for, cancel and enroll everything of bob's workspace B: each attempt is
-- refused (P0002 or 42501) or finds nothing, and B is byte for byte unchanged afterwards.
-- Bad input gives a clear error with a stable SQLSTATE and changes nothing.
begin;
select plan(78);

select tests.create_user('amy');
select tests.create_user('bob');
select tests.get_user_id('amy') as amy, tests.get_user_id('bob') as bob \gset

/** Section - two workspaces */
select tests.authenticate_as('bob');
select create_workspace('B Co') as wb \gset
insert into contacts (workspace_id, phone, first_name) values (:'wb', '+14155550701', 'Bea') returning id as cb \gset
insert into contacts (workspace_id, phone, first_name) values (:'wb', '+14155550702', 'Bo') returning id as cb_gone \gset
insert into contact_tags (workspace_id, contact_id, tag) values (:'wb', :'cb', 'vip');
insert into contact_variables (workspace_id, contact_id, key, value) values (:'wb', :'cb', 'plan', 'pro');
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'wb', 'sms', '+15005550006', 'connected', true) returning id as sb \gset
insert into senders (workspace_id, channel, status, created_at)
values (:'wb', 'whatsapp', 'disconnected', now() - interval '1 week') returning id as sb_stale \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id) values (:'wb', :'sb_stale', 'b@g.us') returning id as gb \gset
insert into campaigns (workspace_id, name) values (:'wb', 'B campaign') returning id as kb \gset
insert into campaign_groups (workspace_id, campaign_id, group_id) values (:'wb', :'kb', :'gb');
insert into sequences (workspace_id, name, status) values (:'wb', 'B seq', 'active') returning id as qb \gset
insert into sequence_steps (workspace_id, sequence_id, position, body) values (:'wb', :'qb', 1, 'Hi {{first_name}}');
select enroll_contact(:'qb', :'cb') as eb \gset
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'wb', :'cb', 'B visit', now() + interval '1 day') returning id as apb \gset
select schedule_message(:'cb', 'B reminder', now() + interval '20 hours', appointment_id => :'apb') as mb \gset
select delete_contact(:'cb_gone') \gset

select tests.authenticate_as('amy');
select create_workspace('A Co') as wa \gset
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'wa', 'sms', '+15550007001', 'connected', true);
insert into contacts (workspace_id, phone, first_name) values (:'wa', '+14155550701', 'Al') returning id as ca \gset
insert into sequences (workspace_id, name, status) values (:'wa', 'A seq', 'active') returning id as qa \gset
insert into sequence_steps (workspace_id, sequence_id, position, body) values (:'wa', :'qa', 1, 'Hello');
insert into campaigns (workspace_id, name) values (:'wa', 'A campaign') returning id as ka \gset
select schedule_message(:'ca', 'A message', now() + interval '1 day') as ma \gset

select tests.clear_authentication();
create temp table b_before as select * from tests.workspace_digest(:'wb');
create temp table counts_before as select * from tests.table_counts();
grant select on b_before, counts_before to authenticated;
-- Rows of workspace p_workspace_id each public table shows the current role (RLS applies).
create function pg_temp.visible_rows(p_workspace_id uuid) returns table (table_name text, n int)
language plpgsql as $$
declare
  t regclass;
begin
  for t in
    select c.oid from pg_class c join pg_namespace s on s.oid = c.relnamespace
    where s.nspname = 'public' and c.relkind = 'r'
      and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'workspace_id' and not a.attisdropped)
  loop
    table_name := t::text;
    execute format('select count(*) from %s where workspace_id = $1', t) into n using p_workspace_id;
    return next;
  end loop;
end;
$$;
grant execute on function pg_temp.visible_rows(uuid) to authenticated;

/** Section - amy cannot read B */
select tests.authenticate_as('amy');
select cmp_ok((select sum(n)::int from pg_temp.visible_rows(:'wa')), '>=', 7, 'amy sees her own workspace''s rows');
select is_empty(format($$ select * from pg_temp.visible_rows(%L) where n > 0 $$, :'wb'),
  'amy sees no row of B in any table');
select is_empty(format($$ select id from workspaces where id = %L $$, :'wb'), 'not even the workspace');
select is_empty(format($$ select user_id from workspace_members where workspace_id = %L $$, :'wb'), 'nor its members');

/** preview */
select throws_ok(format($$ select preview_delete('workspace', %L) $$, :'wb'), 'P0002', null, 'amy cannot preview B''s workspace delete');
select throws_ok(format($$ select preview_delete('contact', %L) $$, :'cb'), 'P0002', null, '… a contact of B');
select throws_ok(format($$ select preview_delete('sequence', %L) $$, :'qb'), 'P0002', null, '… a sequence of B');
select throws_ok(format($$ select preview_delete('sender', %L) $$, :'sb'), 'P0002', null, '… a sender of B');
select throws_ok(format($$ select preview_delete('campaign', %L) $$, :'kb'), 'P0002', null, '… a campaign of B');
select throws_ok(format($$ select preview_delete('appointment', %L) $$, :'apb'), 'P0002', null, '… an appointment of B');
select throws_ok(format($$ select preview_delete('whatsapp_group', %L) $$, :'gb'), 'P0002', null, '… a WhatsApp group of B');
select throws_ok(format($$ select preview_delete('contact', %L) $$, :'cb'), 'P0002', format('contact %s not found', :'cb'),
  'and the error is the one an unknown id gets');

/** delete, restore, schedule, cancel, enroll */
select throws_ok(format($$ select delete_contact(%L) $$, :'cb'), 'P0002', null, 'amy cannot soft-delete B''s contact');
select throws_ok(format($$ select delete_contact(%L, true) $$, :'cb'), 'P0002', null, 'nor hard-delete it');
select throws_ok(format($$ select restore_contact(%L) $$, :'cb_gone'), 'P0002', null, 'nor restore B''s deleted contact');
select throws_ok(format($$ select schedule_message(%L, 'hi from A') $$, :'cb'), 'P0002', null, 'nor schedule a message for B''s contact');
select throws_ok(format($$ select schedule_message(%L, 'hi', appointment_id => %L) $$, :'ca', :'apb'), 'P0002', null,
  'nor hang her message on B''s appointment');
select throws_ok(format($$ select cancel_message(%L) $$, :'mb'), 'P0002', null, 'nor cancel B''s message');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'qb', :'ca'), 'P0002', null, 'nor enroll her contact in B''s sequence');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'qa', :'cb'), 'P0002', null, 'nor B''s contact in her sequence');

/** direct writes */
select is_empty(format($$ update contacts set first_name = 'pwned' where workspace_id = %L returning id $$, :'wb'),
  'amy updates no contact of B');
select is_empty(format($$ update contacts set deleted_at = now() where id = %L returning id $$, :'cb'),
  'nor soft-deletes one by update');
select is_empty(format($$ update contacts set deleted_at = null where id = %L returning id $$, :'cb_gone'),
  'nor restores one by update');
select is_empty(format($$ delete from contacts where workspace_id = %L returning id $$, :'wb'), 'nor deletes one');
select is_empty(format($$ delete from senders where workspace_id = %L returning id $$, :'wb'), 'nor a sender');
select is_empty(format($$ delete from sequences where workspace_id = %L returning id $$, :'wb'), 'nor a sequence');
select is_empty(format($$ update sequences set status = 'archived' where workspace_id = %L returning id $$, :'wb'), 'nor archives one');
select is_empty(format($$ delete from campaigns where workspace_id = %L returning id $$, :'wb'), 'nor a campaign');
select is_empty(format($$ delete from whatsapp_groups where workspace_id = %L returning id $$, :'wb'), 'nor a group');
select is_empty(format($$ update appointments set status = 'cancelled' where workspace_id = %L returning id $$, :'wb'),
  'nor cancels an appointment');
select is_empty(format($$ delete from appointments where workspace_id = %L returning id $$, :'wb'), 'nor deletes one');
select is_empty(format($$ update workspaces set name = 'pwned' where id = %L returning id $$, :'wb'), 'nor renames the workspace');
select is_empty(format($$ delete from workspaces where id = %L returning id $$, :'wb'), 'nor deletes it');
select throws_ok(format($$ insert into contacts (workspace_id, phone) values (%L, '+14155550799') $$, :'wb'), '42501', null,
  'amy cannot add a contact to B');
select throws_ok(format($$ insert into workspace_members (workspace_id, user_id, role) values (%L, %L, 'agent') $$, :'wb', :'amy'),
  '42501', null, 'nor join B');
select throws_ok(format($$ insert into appointments (workspace_id, contact_id, title, starts_at) values (%L, %L, 'x', now()) $$, :'wa', :'cb'),
  '23503', null, 'a row of A cannot point at B''s contact (composite keys)');
-- A child row's parent in another workspace is "not found", as in the RPCs.
select throws_ok(format($$ insert into contact_tags (workspace_id, contact_id, tag) values (%L, %L, 'x') $$, :'wa', :'cb'),
  'P0002', null, 'nor tag it');
select throws_ok(format($$ insert into campaign_groups (workspace_id, campaign_id, group_id) values (%L, %L, %L) $$, :'wa', :'ka', :'gb'),
  '23503', null, 'nor link B''s group to A''s campaign');
select throws_ok(format($$ insert into contact_tags (workspace_id, contact_id, tag) values (%L, %L, 'x') $$, :'wb', :'cb'),
  'P0002', null, 'nor tag B''s contact in B');
select is(cleanup_stale_senders('1 day'), 0, 'amy''s cleanup_stale_senders leaves B''s stale sender alone');

/** Herald's internals answer for any workspace: members cannot call them */
select throws_ok($$ select herald.purge_deleted_contacts('0 seconds') $$, '42501', null,
  'amy cannot run the purge of every workspace''s deleted contacts');
select throws_ok(format($$ select herald.is_suppressed(%L, '+14155550702') $$, :'wb'), '42501', null,
  'nor ask whether a number opted out in B');
select throws_ok(format($$ select herald.phone_hash(%L, '+14155550702') $$, :'wb'), '42501', null,
  'nor hash numbers with B''s key');
select is_empty($$ select p.oid::regprocedure from pg_proc p
                   where p.pronamespace = 'herald'::regnamespace and p.prosecdef and p.prorettype <> 'trigger'::regtype
                     and has_function_privilege('authenticated', p.oid, 'execute')
                     and p.proname not in ('my_workspace_ids', 'has_role') $$,
  'no security-definer function of herald is open to members, except the two membership helpers policies need');

select tests.clear_authentication();
select results_eq($$ select * from tests.workspace_digest($$ || quote_literal(:'wb') || $$) $$,
  $$ select * from b_before $$, 'every row of B is unchanged');

/** Section - anon sees and calls nothing */
select is_empty($$ select table_schema, table_name, privilege_type from information_schema.role_table_grants
                   where grantee = 'anon' and table_schema in ('public', 'herald') $$,
  'anon holds no privilege on any table of public or herald');
select is_empty($$ select p.oid::regprocedure from pg_proc p
                   where p.pronamespace in ('public'::regnamespace, 'herald'::regnamespace)
                     and has_function_privilege('anon', p.oid, 'execute')
                     and has_schema_privilege('anon', p.pronamespace, 'usage') $$,
  'anon may execute no function of public or herald');
select tests.authenticate_as_anon();
select throws_ok($$ select count(*) from contacts $$, '42501', null, 'anon cannot read contacts');
select throws_ok($$ select count(*) from messages $$, '42501', null, 'anon cannot read messages');
select throws_ok(format($$ select preview_delete('contact', %L) $$, :'cb'), '42501', null, 'anon cannot preview');
select throws_ok(format($$ select delete_contact(%L) $$, :'cb'), '42501', null, 'anon cannot delete');
select throws_ok(format($$ select restore_contact(%L) $$, :'cb_gone'), '42501', null, 'anon cannot restore');
select throws_ok(format($$ select schedule_message(%L, 'x') $$, :'cb'), '42501', null, 'anon cannot schedule');
select throws_ok(format($$ select cancel_message(%L) $$, :'mb'), '42501', null, 'anon cannot cancel');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'qb', :'cb'), '42501', null, 'anon cannot enroll');

/** Section - bad input: a clear error, nothing changed */
select tests.authenticate_as('amy');
select throws_ok($$ select delete_contact(gen_random_uuid()) $$, 'P0002', null, 'unknown contact: delete_contact');
select throws_ok($$ select restore_contact(gen_random_uuid()) $$, 'P0002', null, 'unknown contact: restore_contact');
select throws_ok($$ select schedule_message(gen_random_uuid(), 'x') $$, 'P0002', null, 'unknown contact: schedule_message');
select throws_ok($$ select cancel_message(gen_random_uuid()) $$, 'P0002', null, 'unknown message: cancel_message');
select throws_ok(format($$ select enroll_contact(%L, gen_random_uuid()) $$, :'qa'), 'P0002', null, 'unknown contact: enroll_contact');
select throws_ok($$ select preview_delete('sequence', gen_random_uuid()) $$, 'P0002', null, 'unknown sequence: preview_delete');
select throws_ok($$ select delete_contact('not-a-uuid') $$, '22P02', null, 'a malformed uuid: delete_contact');
select throws_ok($$ select preview_delete('contact', '1234') $$, '22P02', null, 'a malformed uuid: preview_delete');
select throws_ok($$ select schedule_message('{}', 'x') $$, '22P02', null, 'a malformed uuid: schedule_message');
select throws_ok($$ select enroll_contact('x', 'y') $$, '22P02', null, 'a malformed uuid: enroll_contact');
select throws_ok(format($$ select preview_delete('contacts', %L) $$, :'ca'), '22023', 'unknown entity "contacts"', 'a wrong entity name');
select throws_ok(format($$ select preview_delete('Contact', %L) $$, :'ca'), '22023', null, 'entity names are exact');
select throws_ok(format($$ select preview_delete('message', %L) $$, :'ma'), '22023', null, 'messages are not a preview entity');
select throws_ok(format($$ select preview_delete('contact; drop table contacts', %L) $$, :'ca'), '22023', null,
  'an entity name is never SQL');
select throws_ok(format($$ select preview_delete(null, %L) $$, :'ca'), '22023', null, 'a null entity name');
select throws_ok($$ select preview_delete('contact', null) $$, '22023', 'id is required', 'a null id: preview_delete');
select throws_ok($$ select delete_contact(null) $$, '22023', 'contact_id is required', 'a null id: delete_contact');
select throws_ok($$ select restore_contact(null) $$, '22023', 'contact_id is required', 'a null id: restore_contact');
select throws_ok($$ select schedule_message(null, 'x') $$, '22023', 'contact_id is required', 'a null id: schedule_message');
select throws_ok($$ select cancel_message(null) $$, '22023', 'message_id is required', 'a null id: cancel_message');
select throws_ok(format($$ select enroll_contact(null, %L) $$, :'ca'), '22023', 'sequence_id is required', 'a null id: enroll_contact');
select throws_ok(format($$ select enroll_contact(%L, null) $$, :'qa'), '22023', 'contact_id is required', 'a null contact: enroll_contact');

select tests.clear_authentication();
select results_eq($$ select * from tests.table_counts() $$, $$ select * from counts_before $$,
  'no table gained or lost a row through any of it');

select * from finish();
rollback;
