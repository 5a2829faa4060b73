/**
 * Constraint violations a client can cause, answered in words a person can act on.
 *
 * A check constraint's own error names the constraint and dumps the whole failing row ("new row
 * for relation "contacts" violates check constraint "contacts_phone_e164"", detail "Failing row
 * contains (…)"): an app cannot show that to its user, and supabase-js passes it on as is. So:
 *
 *   - each check constraint of a table clients write carries its message as `comment on
 *     constraint` (one place for the wording; `\d+` and the catalog show it too);
 *   - a BEFORE trigger on those tables evaluates the table's own constraint expressions (taken
 *     from pg_constraint when the trigger function is generated, never restated by hand) on the
 *     new row and, for the first that fails, raises 23514 with that message, the constraint's
 *     name and only the columns it reads as detail.
 *
 * The constraints stay the guarantee; the trigger only words the refusal. It fires for the API
 * roles (authenticated, service_role), where a person or an app reads the answer, and only on
 * inserts and on updates of the columns the constraints read: Herald's own functions (which
 * validate their input and write as their owner) and bulk updates of other columns pay nothing.
 * Other writers (postgres in psql or the dashboard) get PostgreSQL's message, naming the
 * constraint; the README lists each constraint with its message.
 *
 * A later migration that adds or changes a check constraint of one of these tables comments it
 * and runs herald.explain_checks_on(table) again; a catalog test fails otherwise.
 */

/** Section - the trigger */
-- The words of a refusal, shared by every table's trigger: the constraint's comment as the
-- message, and only the columns the constraint reads as detail (PostgreSQL's own detail prints
-- the whole row, personal data included).
create function herald.check_violation(p_table regclass, p_constraint name, p_row jsonb, out message text, out detail text)
language sql
stable
set search_path = ''
as $$
  select pg_catalog.obj_description(k.oid, 'pg_constraint'),
         format('Check constraint %s of %s failed for %s.', p_constraint, p_table,
                string_agg(format('%s = %s', a.attname, coalesce(p_row ->> a.attname::text, 'null')), ', ' order by a.attnum))
  from pg_catalog.pg_constraint k
  join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = any (k.conkey)
  where k.conrelid = p_table and k.conname = p_constraint
  group by k.oid
$$;
comment on function herald.check_violation(regclass, name, jsonb) is 'The message (the constraint''s comment) and detail (the columns it reads, with their values) of a broken check constraint.';
grant execute on function herald.check_violation(regclass, name, jsonb) to authenticated, service_role;

-- Generates the table's trigger function from its check constraints as they are now: their
-- expressions, deparsed from pg_constraint, evaluated on the new row in one static query (so
-- the plan is cached: a dynamic EXECUTE per row cost a millisecond a row), and the trigger, on
-- insert and on update of any column they read, for the API roles. The trigger is named zz_…
-- because BEFORE triggers fire in name order and this one must see the row as the table's
-- other triggers leave it. Run it again after changing a table's check constraints.
create function herald.explain_checks_on(p_table regclass) returns void
language plpgsql
set search_path = ''
as $body$
declare
  v_name text := (select c.relname from pg_catalog.pg_class c where c.oid = p_table);
  v_function text := format('herald.%I', 'explain_' || v_name || '_checks');
  v_checks text;
  v_columns text;
begin
  select string_agg(format('case when not coalesce((%s), true) then %L end',
                           pg_catalog.pg_get_expr(k.conbin, k.conrelid), k.conname), E',\n           ' order by k.conname)
  into v_checks
  from pg_catalog.pg_constraint k
  where k.conrelid = p_table and k.contype = 'c';
  select string_agg(quote_ident(c.attname), ', ' order by c.attnum)
  into v_columns
  from (
    select distinct a.attnum, a.attname
    from pg_catalog.pg_constraint k
    join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = any (k.conkey)
    where k.conrelid = p_table and k.contype = 'c'
  ) c;
  if v_checks is null then
    raise exception 'table % has no check constraints to explain', p_table using errcode = '22023';
  end if;

  execute format($ddl$
    create or replace function %s() returns trigger
    language plpgsql
    set search_path = ''
    as $fn$
    declare
      v_failed name;
      v_message text;
      v_detail text;
    begin
      select coalesce(%s)
      into v_failed
      from (select (new).*) t;
      if v_failed is not null then
        select v.message, v.detail into v_message, v_detail
        from herald.check_violation(tg_relid, v_failed, pg_catalog.to_jsonb(new)) v;
        raise exception using errcode = '23514', message = v_message, detail = v_detail,
          constraint = v_failed, table = tg_table_name, schema = tg_table_schema;
      end if;
      return new;
    end;
    $fn$$ddl$, v_function, v_checks);
  execute format('comment on function %s() is %L', v_function,
                 format('Trigger on %s, generated by herald.explain_checks_on(): refuses a row that breaks a check constraint with the constraint''s comment as the message.', p_table));
  execute format('grant execute on function %s() to service_role', v_function);

  if exists (select 1 from pg_catalog.pg_trigger where tgrelid = p_table and tgname = 'zz_explain_check_violations') then
    execute format('drop trigger zz_explain_check_violations on %s', p_table);
  end if;
  execute format($ddl$
    create trigger zz_explain_check_violations before insert or update of %s on %s
    for each row when (current_user in ('authenticated', 'service_role'))
    execute function %s()$ddl$, v_columns, p_table, v_function);
  execute format('comment on trigger zz_explain_check_violations on %s is %L', p_table,
                 'A write by the API that breaks a check constraint is refused with the constraint''s comment as the message.');
end;
$body$;
comment on function herald.explain_checks_on(regclass) is 'Generates herald.explain_<table>_checks() from the table''s check constraints and attaches it, firing on insert and on update of the columns they read. Run it again after changing the table''s check constraints.';
revoke execute on function herald.explain_checks_on(regclass) from public;

/** Section - the messages */
comment on constraint workspaces_name_present on public.workspaces is
  'The workspace name must be 1 to 200 characters, not only spaces.';
comment on constraint workspaces_timezone_iana on public.workspaces is
  'The time zone must be an IANA name such as America/New_York, Europe/Paris or UTC, not an abbreviation such as CEST or an offset such as +02:00.';
comment on constraint workspaces_daily_limit_positive on public.workspaces is
  'daily_limit must be a positive number of messages per day, or null for no limit.';
comment on constraint workspaces_max_attempts_range on public.workspaces is
  'max_attempts must be between 1 and 20.';
comment on constraint workspaces_retry_base_range on public.workspaces is
  'retry_base_seconds must be between 1 and 86400 (one day).';
comment on constraint workspace_members_role_valid on public.workspace_members is
  'A member''s role must be owner, admin or agent.';

comment on constraint contacts_phone_e164 on public.contacts is
  'The phone number must be in E.164 format: + then the country code and the number, digits only, e.g. +14155550123.';
comment on constraint contacts_email_shape on public.contacts is
  'The e-mail address must look like name@example.com, or be left out.';
comment on constraint contacts_timezone_iana on public.contacts is
  'The contact''s time zone must be an IANA name such as Europe/London or America/Los_Angeles, or null to use the workspace''s.';
comment on constraint contacts_names_length on public.contacts is
  'First and last name must be at most 100 characters each.';
comment on constraint contact_tags_tag_shape on public.contact_tags is
  'A tag must be 1 to 64 characters, not only spaces.';
comment on constraint contact_variables_key_shape on public.contact_variables is
  'A variable key must start with a lowercase letter and use only lowercase letters, digits and _ (at most 63 characters), e.g. company_name for {{var.company_name}}.';
comment on constraint contact_variables_value_length on public.contact_variables is
  'A variable value must be at most 1000 characters.';

comment on constraint senders_phone_e164 on public.senders is
  'The sender''s phone number must be in E.164 format (+ then the country code and the number, digits only, e.g. +15005550006), or null while a WhatsApp sender is connecting.';
comment on constraint senders_mps_positive on public.senders is
  'mps (messages per second) must be more than 0 and at most 1000.';
comment on constraint senders_default_has_number on public.senders is
  'A default sender needs a phone_number: set the number, or leave is_default false.';
comment on constraint campaigns_name_present on public.campaigns is
  'The campaign name must be 1 to 200 characters, not only spaces.';

comment on constraint sequences_name_present on public.sequences is
  'The sequence name must be 1 to 200 characters, not only spaces.';
comment on constraint sequence_steps_position_positive on public.sequence_steps is
  'A step''s position must be 1 or more.';
comment on constraint sequence_steps_delay_not_negative on public.sequence_steps is
  'A step''s delay must be zero or more, e.g. 0, 10 minutes or 2 days.';
comment on constraint sequence_steps_body_length on public.sequence_steps is
  'A step''s body must be 1 to 1600 characters, not only spaces.';
comment on constraint sequence_steps_template_tokens on public.sequence_steps is
  'A step''s body may only use the placeholders {{first_name}}, {{last_name}} and {{var.KEY}} (KEY in lowercase letters, digits and _): check the spelling of each {{…}}.';
comment on constraint appointments_title_present on public.appointments is
  'The appointment title must be 1 to 200 characters, not only spaces.';

comment on constraint queue_settings_capacity_positive on public.queue_settings is
  'daily_capacity must be between 1 and 1000000 leads per day.';
comment on constraint queue_settings_window_not_empty on public.queue_settings is
  'window_start and window_end must differ (a window may cross midnight, e.g. 22:00 to 06:00).';

/** Section - the tables clients write */
do $$
declare
  t regclass;
begin
  foreach t in array array[
    'public.workspaces', 'public.workspace_members', 'public.contacts', 'public.contact_tags',
    'public.contact_variables', 'public.senders', 'public.campaigns', 'public.sequences',
    'public.sequence_steps', 'public.appointments', 'public.queue_settings'
  ]::regclass[] loop
    perform herald.explain_checks_on(t);
  end loop;
end;
$$;
