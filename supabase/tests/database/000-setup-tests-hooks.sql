-- Test helpers, installed once before the other files run (pg_prove and `supabase test db` run
-- files in name order). Not wrapped in a transaction: the helpers must outlive this file.
-- A small equivalent of basejump's supabase_test_helpers: create users, act as them.

create extension if not exists pgtap with schema extensions;

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_user(identifier text) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id uuid := gen_random_uuid();
begin
  insert into auth.users (id, aud, role, email, raw_user_meta_data, raw_app_meta_data)
  values (v_id, 'authenticated', 'authenticated', identifier || '@test.local',
          jsonb_build_object('test_identifier', identifier), '{"provider":"email"}');
  return v_id;
end;
$$;

create or replace function tests.get_user_id(identifier text) returns uuid
language sql
stable
security definer
set search_path = ''
as $$
  select id from auth.users where email = identifier || '@test.local'
$$;

-- Not security definer: role can only be set by the invoker. Transaction-local, like PostgREST.
create or replace function tests.authenticate_as(identifier text) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid := tests.get_user_id(identifier);
begin
  if v_id is null then
    raise exception 'no test user %', identifier;
  end if;
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', json_build_object(
    'sub', v_id, 'role', 'authenticated', 'email', identifier || '@test.local', 'aud', 'authenticated')::text, true);
end;
$$;

create or replace function tests.authenticate_as_anon() returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role":"anon"}', true);
end;
$$;

create or replace function tests.authenticate_as_service_role() returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role":"service_role"}', true);
end;
$$;

create or replace function tests.clear_authentication() returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('role', 'postgres', true);
  perform set_config('request.jwt.claims', '', true);
end;
$$;

-- A workspace made the way a user makes one (create_workspace, as its owner), with agents and
-- admins the owner adds; users are created as needed. The session is left acting as the owner.
create or replace function tests.workspace_of(p_owner text, p_name text, p_agents text[] default '{}',
                                              p_admins text[] default '{}') returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
  v_user text;
begin
  foreach v_user in array array_prepend(p_owner, p_agents || p_admins) loop
    if tests.get_user_id(v_user) is null then
      perform tests.create_user(v_user);
    end if;
  end loop;
  perform tests.authenticate_as(p_owner);
  v_id := public.create_workspace(p_name);
  insert into public.workspace_members (workspace_id, user_id, role)
  select v_id, tests.get_user_id(u), 'agent' from unnest(p_agents) u
  union all
  select v_id, tests.get_user_id(u), 'admin' from unnest(p_admins) u;
  return v_id;
end;
$$;

-- Catalog-driven helpers for the deletion tests: they follow whatever tables and foreign keys the
-- migrations define, so a table added later is counted and checked without editing a test.

-- Rows per table of Herald's schemas (as the table owner, so RLS does not hide any).
create or replace function tests.table_counts() returns table (table_name text, row_count bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  t regclass;
begin
  for t in
    select c.oid::regclass from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'herald') and c.relkind in ('r', 'p')
    order by c.oid::regclass::text
  loop
    table_name := t::text;
    execute format('select count(*) from %s', t) into row_count;
    return next;
  end loop;
end;
$$;

-- A digest of every row of one workspace, per table that has a workspace_id column (and the
-- workspace row itself): equal digests before and after prove nothing of it changed.
create or replace function tests.workspace_digest(p_workspace_id uuid)
returns table (table_name text, row_count bigint, digest text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  t regclass;
  v_col text;
begin
  for t, v_col in
    select c.oid::regclass, case when c.oid = 'public.workspaces'::regclass then 'id' else 'workspace_id' end
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'herald') and c.relkind in ('r', 'p')
      and (c.oid = 'public.workspaces'::regclass or exists (
        select 1 from pg_catalog.pg_attribute a
        where a.attrelid = c.oid and a.attname = 'workspace_id' and not a.attisdropped))
    order by c.oid::regclass::text
  loop
    table_name := t::text;
    execute format($q$select count(*), md5(coalesce(string_agg(r::text, ',' order by r::text), '')) from %s r where r.%I = $1$q$,
                   t, v_col)
      into row_count, digest using p_workspace_id;
    return next;
  end loop;
end;
$$;

-- One query counting, for every foreign key of a table in public or herald, the rows whose key
-- (all columns non-null: MATCH SIMPLE) points at no parent row. Built from pg_constraint, so it
-- covers keys added later; returned as text so a loop can build it once and run it often.
create or replace function tests.orphan_check_sql() returns text
language sql
stable
set search_path = ''
as $$
  select coalesce(string_agg(format(
           'select %L::text as constraint_name, %L::text as table_name, count(*) as orphans from %s c where %s and not exists (select 1 from %s p where %s)',
           k.conname, k.conrelid::regclass::text, k.conrelid::regclass,
           (select string_agg(format('c.%I is not null', a.attname), ' and ')
              from unnest(k.conkey) u(attnum) join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum),
           k.confrelid::regclass,
           (select string_agg(format('p.%I = c.%I', pa.attname, ca.attname), ' and ')
              from unnest(k.conkey, k.confkey) u(cnum, pnum)
              join pg_catalog.pg_attribute ca on ca.attrelid = k.conrelid and ca.attnum = u.cnum
              join pg_catalog.pg_attribute pa on pa.attrelid = k.confrelid and pa.attnum = u.pnum)),
           ' union all ' order by k.conrelid::regclass::text, k.conname),
         'select null::text, null::text, 0::bigint where false')
  from pg_catalog.pg_constraint k
  join pg_catalog.pg_class c on c.oid = k.conrelid
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where k.contype = 'f' and n.nspname in ('public', 'herald')
$$;

-- The foreign keys with orphans right now, and how many.
create or replace function tests.foreign_key_orphans()
returns table (constraint_name text, table_name text, orphans bigint)
language plpgsql
security definer
set search_path = ''
as $$
begin
  return query execute format('select * from (%s) o where o.orphans > 0', tests.orphan_check_sql());
end;
$$;

-- Rows written directly as the caller (postgres, in the files that use them), as a bulk import or
-- a stale writer would: the queueing, claiming and webhook functions are what must catch them.
-- Quiet hours are off unless asked for, and a sender is its workspace's default for SMS.
create or replace function tests.workspace(p_name text, p_tz text default 'UTC', p_quiet_start time default '00:00',
                                           p_quiet_end time default '00:00', p_daily_limit integer default null) returns uuid
language sql
set search_path = ''
as $$
  insert into public.workspaces (name, timezone, quiet_hours_start, quiet_hours_end, daily_limit)
  values (p_name, p_tz, p_quiet_start, p_quiet_end, p_daily_limit) returning id
$$;

create or replace function tests.sender(p_workspace uuid, p_phone text, p_mps numeric default 100) returns uuid
language sql
set search_path = ''
as $$
  insert into public.senders (workspace_id, channel, phone_number, status, mps, is_default)
  values (p_workspace, 'sms', p_phone, 'connected', p_mps, true) returning id
$$;

-- A contact in p_tz, else in its workspace's zone: the tests that use it are about the workspace's
-- rules, not about finding a zone from the number (recipient_zones and send_rules test that, with
-- contacts inserted without one).
create or replace function tests.contact(p_workspace uuid, p_phone text, p_tz text default null) returns uuid
language sql
set search_path = ''
as $$
  insert into public.contacts (workspace_id, phone, timezone)
  values (p_workspace, p_phone, coalesce(p_tz, (select w.timezone from public.workspaces w where w.id = p_workspace)))
  returning id
$$;

-- Transactional unless asked: the tests that use it are about the state machine and the
-- workspace's own rules, which must not depend on the hour the suite runs at; the legal hours for
-- marketing are tested with fixed clocks (send_rules, quiet_hour_rules).
create or replace function tests.message(p_contact uuid, p_send_at timestamptz, p_status public.message_status default 'scheduled',
                                         p_channel public.channel default 'sms',
                                         p_category public.message_category default 'transactional') returns uuid
language sql
set search_path = ''
as $$
  insert into public.messages (workspace_id, contact_id, channel, body, send_at, status, category)
  select c.workspace_id, c.id, p_channel, 'hello ' || c.phone, p_send_at, p_status, p_category
  from public.contacts c where c.id = p_contact
  returning id
$$;

-- A zone where it is early afternoon now: for a contact whose marketing a test sends with the
-- real clock (legal hours are tested with fixed clocks, in quiet_hour_rules and send_rules).
create or replace function tests.daytime_zone() returns text
language sql
stable
set search_path = ''
as $$
  select name from pg_catalog.pg_timezone_names
  where name ~ '^Etc/GMT[+-][0-9]+$' and extract(hour from now() at time zone name) between 12 and 14
  order by name limit 1
$$;

-- Seconds from now() (fixed within a test file's transaction) to a timestamp.
create or replace function tests.secs(p_at timestamptz) returns numeric
language sql
stable
set search_path = ''
as $$ select extract(epoch from p_at - now()) $$;

-- What the dispatcher's claim and Twilio's acceptance do to a pending message, in the order the
-- status graph allows: queued, sending under a lease, sent (at p_sent_at).
create or replace function tests.mark_sent(p_ids uuid[], p_sent_at timestamptz default now()) returns void
language sql
set search_path = ''
as $$
  update public.messages set status = 'queued' where id = any (p_ids) and status = 'scheduled';
  update public.messages set status = 'sending', lease_expires_at = now() + interval '1 minute', attempts = attempts + 1
  where id = any (p_ids);
  update public.messages set status = 'sent', lease_expires_at = null, sent_at = p_sent_at where id = any (p_ids);
$$;

-- A message's ledger as one line (from, to, reason, actor of each event, oldest first): for tests
-- that compare two messages' histories.
create or replace function tests.ledger_of(p_message_id uuid) returns text
language sql
stable
set search_path = ''
as $$
  select string_agg(concat_ws(' ', e.from_status, e.to_status, e.reason, e.actor), ', ' order by e.id)
  from public.message_events e where e.message_id = p_message_id
$$;

-- The plan PostgreSQL chooses for a query (explain, costs off), one node per line: for tests that
-- a rule or an index shapes the plan.
-- (No search_path of its own: the query is planned with the caller's.)
create or replace function tests.plan_of(p_query text) returns text
language plpgsql
as $$
declare
  v_line text;
  v_plan text := '';
begin
  for v_line in execute 'explain (costs off) ' || p_query loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  return v_plan;
end;
$$;

-- What this transaction has read so far of these tables: their sequential scans, and the
-- entries their indexes returned. For tests that a statement reaches a table by index probes,
-- not whole: the difference across the statement.
create or replace function tests.table_reads(p_tables regclass[])
returns table (table_scans numeric, index_entries numeric)
language sql
set search_path = ''
as $$
  select sum(pg_catalog.pg_stat_get_xact_numscans(c.oid)) filter (where c.relkind = 'r'),
         sum(pg_catalog.pg_stat_get_xact_tuples_returned(c.oid)) filter (where c.relkind = 'i')
  from pg_catalog.pg_class c
  where c.oid = any (p_tables)
     or c.oid in (select i.indexrelid from pg_catalog.pg_index i where i.indrelid = any (p_tables))
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

select plan(1);
select ok(true, 'test helpers installed');
select * from finish();
