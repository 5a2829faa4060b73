-- provider_events indexed by sid only where a sid is looked up (…_event_sid_lookups.sql): the
-- index is partial, both lookups by sid (the unknown_sid replay, the unmatched events' delete)
-- can still use it, and a callback applied to its message is outside it while an early one,
-- kept as unknown_sid, is inside it until its replay attaches it to its message.
-- (dispatch.test.sql and status_callback_batches.test.sql prove the replay itself.)
begin;
select plan(6);
update workspaces set automation_enabled = false;

/** Section - the index */
select ok(pg_get_indexdef('public.provider_events_sid_idx'::regclass)
            ~ 'WHERE \(\(message_id IS NULL\) OR \(outcome = ''unknown_sid''::text\)\)',
  'provider_events_sid_idx holds only events with no message, or kept as unknown_sid');

-- The planner prefers a scan of a small table; with that off, what is left is whether the
-- lookups' predicates imply the index's (a partial index a query cannot prove usable is never used).
set local enable_seqscan = off;
prepare replay (text) as
  select 1 from public.provider_events e where e.provider_sid = $1 and e.kind = 'status' and e.outcome = 'unknown_sid';
prepare unmatched (text) as
  delete from public.provider_events e where e.provider_sid = $1 and e.message_id is null;
set local plan_cache_mode = force_generic_plan;
select ok(tests.plan_of($$ execute replay('SM00000000000000000000000000000001') $$) ~ 'Index Scan using provider_events_sid_idx',
  'the replay''s lookup of unknown_sid events by sid uses it, with the sid a parameter');
select ok(tests.plan_of($$ execute unmatched('SM00000000000000000000000000000001') $$) ~ 'Index Scan using provider_events_sid_idx',
  'the delete of a sid''s unmatched events uses it');
reset plan_cache_mode;
reset enable_seqscan;

/** Section - which events it holds */
select tests.workspace('Event sid lookups') as ws \gset
select tests.sender(:'ws', '+15550048001');
select tests.message(tests.contact(:'ws', '+14155554801', tests.daytime_zone()), now() - interval '1 minute', 'queued') as m1 \gset
select tests.message(tests.contact(:'ws', '+14155554802', tests.daytime_zone()), now() - interval '1 minute', 'queued') as m2 \gset
select is((select count(*)::int from herald.claim_messages(10, interval '1 minute')), 2, 'both messages claimed');
select herald.record_send_result(:'m1', 1, 'sent', 'SM' || md5('sid-lookups-1'), 'queued');
select tests.authenticate_as_service_role();
-- m1's delivery is applied to its message; m2's arrives before its sid is recorded.
select herald.apply_provider_status('SM' || md5('sid-lookups-1'), 'delivered', null, '{}', 'sid-lookups-1-delivered');
select herald.apply_provider_status('SM' || md5('sid-lookups-2'), 'delivered', null, '{}', 'sid-lookups-2-delivered');
reset role;
select results_eq(
  $$ select idempotency_token, outcome, message_id is null or outcome = 'unknown_sid' as indexed
     from provider_events where idempotency_token like 'sid-lookups-%' order by idempotency_token $$,
  $$ values ('sid-lookups-1-delivered', 'applied', false), ('sid-lookups-2-delivered', 'unknown_sid', true) $$,
  'an applied callback is outside the index; one kept as unknown_sid is in it');
select herald.record_send_result(:'m2', 1, 'sent', 'SM' || md5('sid-lookups-2'), 'queued');
select results_eq(
  format($$ select m.status::text, e.outcome, e.message_id = m.id from messages m
            join provider_events e on e.provider_sid = m.provider_sid where m.id = %L $$, :'m2'),
  $$ values ('delivered', 'applied', true) $$,
  'recording m2''s sid finds its early callback and applies it: m2 is delivered');

select * from finish();
rollback;
