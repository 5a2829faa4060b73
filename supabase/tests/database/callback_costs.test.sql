-- What a batch of status callbacks costs (…_callback_costs.sql): herald.forward_moves is exactly
-- the graph's moves to a higher rank, folded into a constant; herald.apply_status_callbacks looks
-- stored tokens up by index, however many events are stored. What a batch does is proven against
-- one-by-one callbacks in status_callback_batches.test.sql; here, what it reads to do it.
begin;
select plan(6);
update workspaces set automation_enabled = false;

/** Section - the forward moves as one constant */
select results_eq(
  $$ select m from unnest(herald.forward_moves()) m order by m $$,
  $$ select f::text || '>' || t::text from unnest(enum_range(null::message_status)) f, unnest(enum_range(null::message_status)) t
     where herald.message_rank(t) > herald.message_rank(f) and herald.message_transition_ok(f, t) order by 1 $$,
  'herald.forward_moves: exactly the moves of herald.message_transition_ok to a higher herald.message_rank');
select ok(tests.plan_of($$ select 1 where 'sent>delivered' = any (herald.forward_moves()) $$) !~ 'forward_moves',
  'and the planner folds it into a constant');
select ok('sent>delivered' = any (herald.forward_moves()) and not 'delivered>sent' = any (herald.forward_moves())
          and not 'failed>delivered' = any (herald.forward_moves()),
  'forward: sent to delivered; never back, never out of a final status');

/** Section - stored tokens looked up by index */
-- Enough stored events that hashing them all looks cheaper to the planner than a probe per token:
-- the batch must still read none of them but its own tokens'.
select tests.workspace('Callback costs') as ws \gset
select tests.sender(:'ws', '+15550042001');
insert into provider_events (kind, workspace_id, provider_sid, provider_status, outcome, payload, idempotency_token)
select 'status', :'ws', 'SM' || md5('stored' || g), 'delivered', 'unknown_sid', '{}', 'stored-' || g
from generate_series(1, 5000) g;
analyze provider_events;

create temp table sent (n integer primary key, message uuid, sid text);
insert into sent
select g, tests.message(tests.contact(:'ws', '+1415555' || lpad(g::text, 4, '0')), now() - interval '1 minute', 'queued'),
       'SM' || md5('cost' || g)
from generate_series(1, 300) g;
select is((select count(*)::int from herald.claim_messages(500, interval '1 minute')), 300, '300 messages claimed');
select count(*) from (select herald.record_send_result(s.message, 1, 'sent', s.sid, 'queued') from sent s) r;

grant select on sent to service_role;
select seq_scan as scans_before from pg_stat_xact_user_tables where relid = 'public.provider_events'::regclass \gset
select tests.authenticate_as_service_role();
select herald.apply_status_callbacks(
  array(select s.sid from sent s order by s.n),
  array(select 'delivered' from sent s order by s.n),
  array(select null::integer from sent s order by s.n),
  array(select '{"MessageStatus": "delivered"}'::jsonb from sent s order by s.n),
  -- Every tenth a redelivery of a stored callback.
  array(select case when s.n % 10 = 0 then 'stored-' || s.n else 'cost-' || s.n end from sent s order by s.n)) as outcomes \gset
select tests.clear_authentication();
select is((select seq_scan from pg_stat_xact_user_tables where relid = 'public.provider_events'::regclass) - :scans_before, 0::bigint,
  'a batch of 300 callbacks reads no stored event but by its token''s index');
select is((select array[count(*) filter (where o = 'applied'), count(*) filter (where o = 'duplicate')]::int[]
           from unnest(:'outcomes'::text[]) o),
  array[270, 30], 'and the stored tokens were found: 270 applied, 30 duplicates');

select * from finish();
rollback;
