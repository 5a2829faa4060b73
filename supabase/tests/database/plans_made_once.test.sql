-- The quiet-hour rules planned once per session (…_plans_made_once.sql): herald.allowed_send_time
-- runs with generic plans and its empty search_path; the send path's functions over growing
-- tables do only where their plans probe at any size. What allowed_send_time decides is
-- proven in send_rules.test.sql and quiet_hour_rules.test.sql; here, the settings, and that a
-- generic plan gives the same answers.
begin;
select plan(3);

select is((select p.proconfig from pg_proc p
           where p.oid = 'herald.allowed_send_time(contacts,message_category,workspaces,timestamptz)'::regprocedure),
  array['search_path=""', 'plan_cache_mode=force_generic_plan'],
  'herald.allowed_send_time: an empty search_path and generic plans, made once per session');

-- A plan made once for a table that grows (messages, message_attempts, provider_events) is kept
-- until the next ANALYZE: a new project's first drain would scan those tables whole. Unless the
-- function's plans probe at any size: the claim, the confirmations, the record and the status
-- callbacks run with enable_seqscan off and probe-shaped statements (…_dispatch_plans.sql,
-- …_callback_plans.sql, whose tests grow the tables under plans made once), and plan once.
select is_empty(
  $$ select p.oid::regprocedure::text from pg_proc p
     where p.pronamespace = 'herald'::regnamespace
       and p.proname in ('claim_messages', 'confirm_send', 'confirm_send_each', 'record_send_result', 'record_send_results',
                         'apply_status_callbacks', 'apply_status_event', 'contact_cap_next_time', 'queue_due_messages')
       and exists (select 1 from unnest(p.proconfig) c where c like 'plan_cache_mode=%')
       and not p.proconfig @> array['enable_seqscan=off'] $$,
  'the functions over growing tables plan for the tables as they are at each call, unless their plans probe at any size');

-- The same answers as plans made for each call's values: every contact of a small world, both
-- categories, at a night and a day instant.
update workspaces set automation_enabled = false;
select tests.workspace('Plans once', 'America/New_York', '21:00', '08:00') as ws \gset
select tests.contact(:'ws', p) from unnest(array['+14155550431', '+13055550432', '+14055550433', '+442075550434',
                                                 '+18005550435', '+61255550436']) p;
create temp table answers as
select c.id, k.category, t.at, herald.allowed_send_time(c, k.category, w, t.at) as generic
from contacts c join workspaces w on w.id = c.workspace_id
cross join unnest(enum_range(null::message_category)) k (category)
cross join unnest(array['2030-01-15 03:00Z', '2030-01-15 17:00Z']::timestamptz[]) t (at)
where c.workspace_id = :'ws';
alter function herald.allowed_send_time(contacts, message_category, workspaces, timestamptz) reset plan_cache_mode;
select is_empty(
  $$ select a.id from answers a join contacts c on c.id = a.id join workspaces w on w.id = c.workspace_id
     where herald.allowed_send_time(c, a.category, w, a.at) is distinct from a.generic $$,
  'generic plans answer as custom ones do, for every contact, category and instant');

select * from finish();
rollback;
