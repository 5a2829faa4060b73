-- Scheduling the dispatcher from the database (…_dispatch_schedule.sql): where pg_net and Vault
-- exist (hosted Supabase) pg_cron runs herald.invoke_dispatch, which posts to the dispatch
-- function with the service key from Vault; where they do not (this local stack) the migration
-- schedules nothing and leaves nothing half made, and `npm start` calls dispatch instead.
begin;

select exists (select 1 from pg_available_extensions where name = 'pg_net')
       and exists (select 1 from pg_namespace where nspname = 'vault') as scheduled_here \gset
-- Two assertions anywhere; two more where there is a job and a function to look at.
select plan(case when :'scheduled_here'::boolean then 4 else 2 end);

select is((select count(*)::int from cron.job where jobname = 'herald-dispatch'), case when :'scheduled_here'::boolean then 1 else 0 end,
  'the herald-dispatch job exists exactly where pg_net and Vault can run it');
select is(to_regprocedure('herald.invoke_dispatch()') is not null, :'scheduled_here'::boolean,
  'and so does herald.invoke_dispatch');
\if :scheduled_here
select results_eq(
  $$ select command, schedule in ('10 seconds', '* * * * *') from cron.job where jobname = 'herald-dispatch' $$,
  $$ values ('select herald.invoke_dispatch()'::text, true) $$,
  'pg_cron calls herald.invoke_dispatch every 10 seconds (every minute before pg_cron 1.5)');
select is(has_function_privilege('authenticated', 'herald.invoke_dispatch()', 'execute'), false,
  'members cannot make the database post with the service key');
\endif

select * from finish();
rollback;
