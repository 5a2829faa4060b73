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

grant execute on all functions in schema tests to anon, authenticated, service_role;

select plan(1);
select ok(true, 'test helpers installed');
select * from finish();
