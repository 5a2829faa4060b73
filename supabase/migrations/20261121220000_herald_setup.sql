/**
 * Herald setup: the private `herald` schema that holds everything clients must not call
 * directly (helpers, trigger functions, internal tables), the extensions Herald relies on, and
 * the small helpers every later migration uses.
 *
 * The `herald` schema is not in the API's exposed schemas (supabase/config.toml `api.schemas`):
 * `authenticated` gets usage on it only so RLS policies and check constraints can call the few
 * helpers granted to it.
 */

/** Section - extensions */
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_cron with schema pg_catalog;
-- The one way every table keeps updated_at current: `before update … execute function
-- extensions.moddatetime(updated_at)`, as Supabase documents it. A C trigger, so a bulk update
-- of messages (cancelling 100,000 at once) pays about a third of what a PL/pgSQL trigger adds.
create extension if not exists moddatetime with schema extensions;

/** Section - private schema */
create schema if not exists herald;
comment on schema herald is 'Herald internals: helpers, trigger functions and private tables. Not exposed through the API.';
revoke all on schema herald from public;
grant usage on schema herald to authenticated, service_role;

-- PostgreSQL lets PUBLIC (every role, anon included) execute each new function, and a
-- per-schema `alter default privileges in schema … revoke` cannot take that back: per-schema
-- defaults only add to the global ones. So the global default of the role that runs the
-- migrations changes, as Supabase advises (revoke from PUBLIC, grant by name): a function it
-- creates from here on, in any schema, is executable by its owner alone until a grant beside
-- it says who else may call it. (This is that role's default for its later migrations too,
-- the host app's included: a function they add is closed until granted.)
alter default privileges revoke execute on functions from public;
-- Supabase's own default privileges also grant each new function in public to anon,
-- authenticated and service_role; those are per schema, so this takes anon's back: an RPC is
-- for signed-in users, and one anon may call would have to be granted by name.
alter default privileges in schema public revoke execute on functions from anon;

/** Section - helpers */
-- The IANA names known to this server's tz database, cached: pg_timezone_names reads hundreds of
-- files on every call, far too slow for a check constraint on bulk inserts.
create table herald.iana_time_zones (name text primary key);
insert into herald.iana_time_zones (name)
select name from pg_catalog.pg_timezone_names
where name !~ '^(posix|right)/' and name <> 'localtime'
on conflict do nothing;
comment on table herald.iana_time_zones is 'IANA time zone names, copied from pg_timezone_names when the schema was built.';
-- Read by check constraints, which run as whoever writes the row.
grant select on herald.iana_time_zones to authenticated, service_role;

create function herald.is_iana_time_zone(p_name text) returns boolean
language sql
stable
set search_path = ''
as $$
  select exists (select 1 from herald.iana_time_zones where name = p_name)
$$;
comment on function herald.is_iana_time_zone(text) is 'True for an IANA time zone name such as Europe/Paris or UTC; false for abbreviations, offsets and unknown names.';
-- Check constraints call it as whoever writes the row.
grant execute on function herald.is_iana_time_zone(text) to authenticated, service_role;

create function herald.check_time_zone(p_name text) returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_name is null or not herald.is_iana_time_zone(p_name) then
    raise exception 'unknown time zone "%"', p_name
      using errcode = '22023', hint = 'Use an IANA time zone name such as Europe/Paris, America/New_York or UTC.';
  end if;
  return p_name;
end;
$$;
comment on function herald.check_time_zone(text) is 'Returns its argument if it is an IANA time zone name; raises 22023 with a hint otherwise.';
-- No grant: create_workspace() calls it as its owner.
