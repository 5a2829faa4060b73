/**
 * Live message status for apps: `messages` joins Supabase's `supabase_realtime` publication, so
 * a client subscribed with supabase-js (`postgres_changes` on public.messages) sees each status
 * change as it happens. Realtime applies the messages_select policy to every subscriber, so a
 * member only receives their workspaces' messages.
 *
 * Guarded: every Supabase project has the publication (created empty), but a database without
 * Realtime may not, and a project that publishes all tables already includes messages.
 */
do $$
begin
  if exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime')
     and not exists (select 1 from pg_catalog.pg_publication_tables
                     where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'messages') then
    alter publication supabase_realtime add table public.messages;
  end if;
end;
$$;
