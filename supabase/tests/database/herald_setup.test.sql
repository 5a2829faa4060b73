-- Herald's setup (…_herald_setup.sql): the private herald schema that anon cannot reach into,
-- the extensions (moddatetime keeps every updated_at current), and the helpers later migrations
-- use: IANA time zone names (herald.is_iana_time_zone, herald.check_time_zone).
begin;
select plan(10);

/** Section - the schema and the extensions */
select results_eq(
  $$ select r, has_schema_privilege(r, 'herald', 'usage') from unnest(array['anon', 'authenticated', 'service_role']) r $$,
  $$ values ('anon'::text, false), ('authenticated', true), ('service_role', true) $$,
  'anon cannot even look into herald; members may, for the helpers policies call');
select results_eq(
  $$ select e.extname::text collate "default", n.nspname::text collate "default" from pg_extension e join pg_namespace n on n.oid = e.extnamespace
     where e.extname in ('pgcrypto', 'pg_cron', 'moddatetime') order by 1 $$,
  $$ values ('moddatetime', 'extensions'), ('pg_cron', 'pg_catalog'), ('pgcrypto', 'extensions') $$,
  'pgcrypto and moddatetime live in extensions and pg_cron in pg_catalog, as on Supabase');

/** Section - a function starts closed */
-- Default privileges of the role that runs the migrations: a function it creates later is
-- executable by nobody else until granted by name (PostgreSQL's own default would let PUBLIC,
-- and so anon, call it).
create function herald.created_later() returns integer language sql as $$ select 1 $$;
create function public.created_later() returns integer language sql as $$ select 1 $$;
select results_eq(
  $$ select r, has_function_privilege(r, 'herald.created_later()', 'execute'), has_function_privilege(r, 'public.created_later()', 'execute')
     from unnest(array['anon', 'authenticated']) r $$,
  $$ values ('anon'::text, false, false), ('authenticated', false, true) $$,
  'a new function in herald is closed to anon and members; a new one in public to anon (members keep Supabase''s default there)');
select is((select count(*)::int from pg_default_acl d where d.defaclrole = current_user::regrole and d.defaclnamespace = 0
           and d.defaclobjtype = 'f' and not exists (select 1 from aclexplode(d.defaclacl) a where a.grantee = 0)), 1,
  'it is the global default of the migration role that no longer lets PUBLIC execute functions');
drop function herald.created_later(), public.created_later();

/** Section - time zone names */
select results_eq(
  $$ select z, herald.is_iana_time_zone(z)
     from unnest(array['Europe/Paris', 'UTC', 'America/Argentina/Buenos_Aires', 'Mars/Olympus', 'UTC+5', 'posix/Europe/Paris', 'localtime', null]) z $$,
  $$ values ('Europe/Paris'::text, true), ('UTC', true), ('America/Argentina/Buenos_Aires', true), ('Mars/Olympus', false),
            ('UTC+5', false), ('posix/Europe/Paris', false), ('localtime', false), (null, false) $$,
  'is_iana_time_zone: IANA names only; no offsets, no posix/ or right/ copies, no localtime');
select is(herald.check_time_zone('Asia/Kolkata'), 'Asia/Kolkata', 'check_time_zone hands a good name back');
select throws_ok($$ select herald.check_time_zone('Mars/Olympus') $$, '22023', 'unknown time zone "Mars/Olympus"',
  'and refuses any other with 22023');
select throws_ok($$ select herald.check_time_zone(null) $$, '22023', null, 'null included');
select tests.create_user('tom');
select tests.authenticate_as('tom');
select ok(herald.is_iana_time_zone('Pacific/Auckland'), 'members can call it: check constraints run as whoever writes the row');

/** Section - updated_at follows every update */
select tests.clear_authentication();
insert into workspaces (name, updated_at) values ('Touched Co', now() - interval '1 day') returning id as ws \gset
insert into workspace_members (workspace_id, user_id, role) values (:'ws', tests.get_user_id('tom'), 'owner');
select tests.authenticate_as('tom');
update workspaces set name = 'Touched Co, renamed' where id = :'ws';
select tests.clear_authentication();
select is((select updated_at from workspaces where id = :'ws'), now(), 'moddatetime sets updated_at when an owner renames the workspace');

select * from finish();
rollback;
