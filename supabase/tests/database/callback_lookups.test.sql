-- A callback's target status looked up in a constant (…_callback_lookups.sql): herald.provider_targets
-- is exactly herald.from_provider_status, whatever the case of the status Twilio sends, and is
-- folded into a constant; herald.apply_status_callbacks calls from_provider_status on no row of a
-- batch, and still moves messages and attempts as before (status_callback_batches.test.sql proves
-- every outcome against one-by-one callbacks).
begin;
select plan(6);
update workspaces set automation_enabled = false;

/** Section - the mapping */
select is((select count(*)::int
           from unnest(array['accepted', 'scheduled', 'queued', 'sending', 'sent', 'receiving', 'received', 'delivered',
                             'undelivered', 'failed', 'read', 'canceled', 'partially_delivered', 'DELIVERED', 'Sent',
                             'Canceled', 'cancelled', 'unknown', '']
                       || array(select e::text from unnest(enum_range(null::message_status)) e)) s
           where (herald.provider_targets() ->> lower(s))::message_status is distinct from herald.from_provider_status(s)),
  0, 'herald.provider_targets gives what herald.from_provider_status gives, for every status in any case');
select ok(tests.plan_of($$ select herald.provider_targets() ->> 'sent' $$) !~ 'provider_targets',
  'and the planner folds it into a constant');

/** Section - a batch calls no per-row mapping function */
select tests.workspace('Callback lookups') as ws \gset
select tests.sender(:'ws', '+15550047001');
create temp table sent (n integer primary key, message uuid, sid text);
insert into sent
select g, tests.message(tests.contact(:'ws', '+1415555' || lpad((4700 + g)::text, 4, '0'), tests.daytime_zone()),
                        now() - interval '1 minute', 'queued'),
       'SM' || md5('lookup' || g)
from generate_series(1, 20) g;
select is((select count(*)::int from herald.claim_messages(50, interval '1 minute')), 20, '20 messages claimed');
select count(*) from (select herald.record_send_result(s.message, 1, 'sent', s.sid, 'queued') from sent s) r;
grant select on sent to service_role;

set local track_functions = 'all';
select coalesce(sum(calls), 0) as mapped_before from pg_stat_xact_user_functions
where schemaname = 'herald' and funcname = 'from_provider_status' \gset
select tests.authenticate_as_service_role();
-- Twilio's statuses in the case it sends them, and one in upper case: delivered for 1-10, sent
-- (behind the attempt's 'sent', so unchanged) for 11-15, read for 16-20.
select herald.apply_status_callbacks(
  array(select s.sid from sent s order by s.n),
  array(select case when s.n <= 9 then 'delivered' when s.n = 10 then 'DELIVERED' when s.n <= 15 then 'sent' else 'read' end
        from sent s order by s.n),
  array(select null::integer from sent s order by s.n),
  array(select '{}'::jsonb from sent s order by s.n),
  array(select 'lookup-' || s.n from sent s order by s.n)) as outcomes \gset
select tests.clear_authentication();
select is((select coalesce(sum(calls), 0) from pg_stat_xact_user_functions
           where schemaname = 'herald' and funcname = 'from_provider_status') - :mapped_before, 0::numeric,
  'a batch of 20 callbacks calls herald.from_provider_status on none of them');
select is(:'outcomes'::text[], array_fill('applied'::text, array[10]) || array_fill('unchanged'::text, array[5])
                               || array_fill('applied'::text, array[5]),
  'delivered (in either case) and read applied; sent, where the message is already, unchanged');
select is((select string_agg(format('%s %s/%s', s.n, m.status, a.provider_status), ', ' order by s.n)
           from sent s join messages m on m.id = s.message join message_attempts a on a.message_id = s.message
           where s.n in (1, 10, 11, 16)),
  '1 delivered/delivered, 10 delivered/delivered, 11 sent/sent, 16 read/read',
  'messages and their attempts moved to the furthest status (the attempt''s in lower case)');

select * from finish();
rollback;
