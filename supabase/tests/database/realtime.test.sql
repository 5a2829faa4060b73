-- Apps follow message status live through Supabase Realtime: messages is published, and only
-- under its row level security.
begin;
select plan(2);

select ok(exists (select 1 from pg_publication_tables
                  where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'messages'),
  'messages is in the supabase_realtime publication');
select ok((select relrowsecurity from pg_class where oid = 'public.messages'::regclass),
  'and has RLS on, which Realtime applies to each subscriber');

select * from finish();
rollback;
