/**
 * No TRUNCATE for client roles.
 *
 * Supabase's default privileges grant everything on new public tables to anon and authenticated,
 * and row level security does the protecting. TRUNCATE is not a row operation: RLS does not apply
 * to it, so any signed-in user could empty a table of every workspace (contact_tags, sequences…).
 * Revoked on every relation in public, and from the default privileges of the role that runs
 * the migrations, so a table added later starts without it (a catalog test keeps it so).
 */
do $$
declare
  r record;
begin
  for r in
    select c.oid::regclass as rel from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
  loop
    execute format('revoke truncate on %s from anon, authenticated', r.rel);
  end loop;
end
$$;
alter default privileges in schema public revoke truncate on tables from anon, authenticated;
