-- A write through the API that breaks a check constraint is refused with a message a person can
-- act on (the constraint's comment), the constraint's name, and only the offending columns; and
-- it stays so for constraints added later (catalog checks).
begin;
select plan(18);

/** Catalog: every check constraint a client can break carries its message, and is explained */
create temporary view client_checks as
select c.oid as relid, c.relname, k.conname, k.conkey, pg_catalog.obj_description(k.oid, 'pg_constraint') as message
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_constraint k on k.conrelid = c.oid and k.contype = 'c'
where n.nspname = 'public' and c.relkind in ('r', 'p')
  and (has_any_column_privilege('authenticated', c.oid, 'INSERT') or has_any_column_privilege('authenticated', c.oid, 'UPDATE'));

select is_empty($$ select relname || '.' || conname from client_checks where coalesce(message, '') = '' $$,
  'every check constraint on a table clients write has a comment: the message a client sees');

select is_empty($$
  select distinct x.relname from client_checks x
  where not exists (select 1 from pg_trigger t where t.tgrelid = x.relid and t.tgname = 'zz_explain_check_violations'
                    and not t.tgisinternal and t.tgenabled = 'O')
$$, 'every table clients write that has check constraints has the explaining trigger');

select is_empty($$
  select x.relname || '.' || x.conname from client_checks x
  join pg_trigger t on t.tgrelid = x.relid and t.tgname = 'zz_explain_check_violations'
  where not (x.conkey <@ t.tgattr::int2[])
$$, 'it fires on an update of every column a check constraint reads');

select is_empty($$
  select x.relname || '.' || x.conname from client_checks x
  join pg_trigger t on t.tgrelid = x.relid and t.tgname = 'zz_explain_check_violations'
  join pg_proc p on p.oid = t.tgfoid
  where position(quote_literal(x.conname) in p.prosrc) = 0
$$, 'its generated function checks every current constraint (herald.explain_checks_on was re-run after each change)');

select set_eq($$ select tgfoid::regproc::text from pg_trigger where tgname = 'zz_explain_check_violations' $$,
  array['herald.explain_appointment_reminders_checks', 'herald.explain_appointments_checks', 'herald.explain_campaigns_checks', 'herald.explain_contact_tags_checks',
        'herald.explain_contact_variables_checks', 'herald.explain_contacts_checks', 'herald.explain_message_templates_checks', 'herald.explain_queue_settings_checks',
        'herald.explain_senders_checks', 'herald.explain_sequence_steps_checks', 'herald.explain_sequences_checks',
        'herald.explain_workspace_members_checks', 'herald.explain_workspaces_checks'],
  'each table clients write has its own generated function (herald.explain_checks_on)');

select is((select v.message || ' / ' || v.detail
           from herald.check_violation('public.senders', 'senders_default_has_number',
                                       '{"is_default": true, "phone_number": null, "mps": 5}') v),
  'A default sender needs a phone_number: set the number, or leave is_default false. / '
  || 'Check constraint senders_default_has_number of public.senders failed for phone_number = null, is_default = true.',
  'herald.check_violation words a refusal from the constraint''s comment and only the columns it reads');

/** Behaviour, as the API roles */
select tests.create_user('owner');
select tests.authenticate_as('owner');
select create_workspace('Messages', 'UTC') as ws \gset
insert into sequences (workspace_id, name) values (:'ws', 'Welcome') returning id as seq \gset

select throws_ok(format($$ insert into contacts (workspace_id, phone, first_name) values (%L, '415-555-0123', 'Ada') $$, :'ws'),
  '23514', 'The phone number must be in E.164 format: + then the country code and the number, digits only, e.g. +14155550123.',
  'a phone number not in E.164 is refused with what to write instead');
select is((select count(*)::int from contacts where workspace_id = :'ws'), 0, 'and nothing was written');

select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 1, 'Hi {{firstname}}') $$, :'ws', :'seq'),
  '23514', 'A step''s body may only use the placeholders {{first_name}}, {{last_name}} and {{var.KEY}} (KEY in lowercase letters, digits and _): check the spelling of each {{…}}.',
  'a misspelt placeholder names the ones that exist');
select throws_ok(format($$ insert into senders (workspace_id, channel, is_default) values (%L, 'whatsapp', true) $$, :'ws'),
  '23514', 'A default sender needs a phone_number: set the number, or leave is_default false.',
  'a constraint over two columns says how to satisfy it');

insert into contacts (workspace_id, phone, first_name, last_name, email) values (:'ws', '+14155550123', 'Ada', 'Lovelace', 'ada@example.com')
returning id as ada \gset
select throws_ok(format($$ update contacts set timezone = 'Mars/Olympus' where id = %L $$, :'ada'),
  '23514', 'The contact''s time zone must be an IANA name such as Europe/London or America/Los_Angeles, or null to use the workspace''s.',
  'an update is explained too');
select is((select timezone from contacts where id = :'ada'), null, 'and changed nothing');

-- What a client receives besides the message: the constraint's name, and only the columns it reads.
create function pg_temp.error_fields(p_sql text) returns jsonb
language plpgsql
as $$
declare
  v_constraint text;
  v_table text;
  v_detail text;
begin
  execute p_sql;
  return null;
exception when check_violation then
  get stacked diagnostics v_constraint = constraint_name, v_table = table_name, v_detail = pg_exception_detail;
  return jsonb_build_object('constraint', v_constraint, 'table', v_table, 'detail', v_detail);
end;
$$;
select is(pg_temp.error_fields(format($$ update contacts set email = 'ada at example' where id = %L $$, :'ada')),
  '{"constraint": "contacts_email_shape", "table": "contacts", "detail": "Check constraint contacts_email_shape of public.contacts failed for email = ada at example."}'::jsonb,
  'the error carries the constraint''s name, and its detail only the column the constraint reads (no row dump)');

select tests.authenticate_as_service_role();
select throws_ok(format($$ insert into queue_settings (workspace_id, window_start, window_end) values (%L, '09:00', '09:00') $$, :'ws'),
  '23514', 'window_start and window_end must differ (a window may cross midnight, e.g. 22:00 to 06:00).',
  'the service role gets the same message');

/** What it does not touch */
select tests.clear_authentication();
select throws_ok(format($$ insert into contacts (workspace_id, phone) values (%L, 'nope') $$, :'ws'),
  '23514', 'new row for relation "contacts" violates check constraint "contacts_phone_e164"',
  'other roles (Herald''s own functions, postgres) get PostgreSQL''s message: the constraint still decides');
select tests.authenticate_as('owner');
select lives_ok(format($$ update contacts set lead_status = 'contacted' where id = %L $$, :'ada'),
  'a valid write goes through');
select is((select tgattr::int2[] @> array[(select attnum from pg_attribute where attrelid = 'public.contacts'::regclass and attname = 'lead_status')]
           from pg_trigger where tgrelid = 'public.contacts'::regclass and tgname = 'zz_explain_check_violations'),
  false, 'an update of columns no constraint reads (prepare_queue''s lead_status) does not fire it');
select tests.clear_authentication();
select throws_ok($$ select herald.explain_checks_on('public.whatsapp_groups') $$, '22023', null,
  'a table without check constraints has nothing to explain');

select * from finish();
rollback;
