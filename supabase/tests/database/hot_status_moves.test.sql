-- Status moves past sending are HOT (…_hot_status_moves.sql): no index of messages reads status
-- (the queue's partial indexes read pending_status, status while still to be sent), so a
-- delivered callback updates the message in place; no index of message_attempts reads
-- provider_status (reconciliation reads provider_final), so the attempt's queued and sent
-- callbacks do too. The scans still find their partial indexes and their rows, and
-- reconciliation still finds the sent messages Twilio is silent about.
begin;
select plan(25);
update workspaces set automation_enabled = false;
delete from herald.status_checks;

/** Section - what the indexes read */
create function pg_temp.indexes_reading(p_table regclass, p_column text) returns setof text
language sql as $$
  select i.indexrelid::regclass::text
  from pg_index i
  where i.indrelid = p_table
    and ((select a.attnum from pg_attribute a where a.attrelid = p_table and a.attname = p_column) = any (i.indkey::int2[])
         or coalesce(pg_get_expr(i.indpred, i.indrelid), '') ~ ('\m' || p_column || '\M')
         or coalesce(pg_get_expr(i.indexprs, i.indrelid), '') ~ ('\m' || p_column || '\M'))
$$;
select is_empty($$ select pg_temp.indexes_reading('public.messages', 'status') $$,
  'no index of messages reads status: not as a key, an included column or in a predicate');
select is_empty($$ select pg_temp.indexes_reading('public.message_attempts', 'provider_status') $$,
  'no index of message_attempts reads provider_status');
select is_empty($$ select pg_temp.indexes_reading('public.messages', 'delivered_at') $$,
  'nor delivered_at, which a delivery sets');
select is((select reloptions from pg_class where oid = 'public.message_attempts'::regclass), '{fillfactor=80}'::text[],
  'message_attempts keeps a fifth of each page free for its updates in place, as messages does');

/** Section - pending_status */
select is(
  (select btrim(regexp_replace(pg_get_expr(d.adbin, d.adrelid), '\s+', ' ', 'g')) from pg_attrdef d
   join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
   where d.adrelid = 'public.messages'::regclass and a.attname = 'pending_status'),
  'CASE WHEN (status = ANY (ARRAY[''scheduled''::message_status, ''queued''::message_status, ''sending''::message_status])) THEN status ELSE NULL::message_status END',
  'pending_status is status while scheduled, queued or sending, else null');
select throws_ok($$ update messages set pending_status = 'queued' where false $$, '428C9', null,
  'pending_status is generated: nobody writes it, not even the owner');
select throws_ok($$ update message_attempts set provider_final = true where false $$, '428C9', null,
  'nor provider_final');

select tests.workspace('Hot moves') as ws \gset
select tests.sender(:'ws', '+15550071001');
select tests.message(tests.contact(:'ws', '+14155557101', tests.daytime_zone()), now() - interval '1 minute', 'queued') as m \gset
select is((select pending_status::text from messages where id = :'m'), 'queued', 'a queued message is pending as queued');
select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(10, interval '1 minute')), 1, 'claimed');
select tests.clear_authentication();
select is((select pending_status::text from messages where id = :'m'), 'sending', 'sending while claimed');
select herald.record_send_result(:'m', 1, 'sent', 'SM' || md5('hot-moves'), 'queued');
select results_eq(format($$ select status::text, pending_status::text from messages where id = %L $$, :'m'),
  $$ values ('sent', null::text) $$, 'sent: no longer pending');

/** Section - the callbacks, in place */
-- This transaction's own counts: updates, and how many of them were HOT.
create temp table counts as
  select pg_stat_get_xact_tuples_updated('public.messages'::regclass) as m_upd,
         pg_stat_get_xact_tuples_hot_updated('public.messages'::regclass) as m_hot,
         pg_stat_get_xact_tuples_updated('public.message_attempts'::regclass) as a_upd,
         pg_stat_get_xact_tuples_hot_updated('public.message_attempts'::regclass) as a_hot;
select tests.authenticate_as_service_role();
select herald.apply_provider_status('SM' || md5('hot-moves'), 'sent', null, '{}', 'hot-moves-sent');
select tests.clear_authentication();
select results_eq(
  $$ select pg_stat_get_xact_tuples_updated('public.message_attempts'::regclass) - a_upd,
            pg_stat_get_xact_tuples_hot_updated('public.message_attempts'::regclass) - a_hot from counts $$,
  $$ values (1::bigint, 1::bigint) $$,
  'a sent callback updates the attempt in place (HOT)');
update counts set m_upd = pg_stat_get_xact_tuples_updated('public.messages'::regclass),
                  m_hot = pg_stat_get_xact_tuples_hot_updated('public.messages'::regclass);
select tests.authenticate_as_service_role();
select herald.apply_provider_status('SM' || md5('hot-moves'), 'delivered', null, '{}', 'hot-moves-delivered');
select tests.clear_authentication();
select results_eq(
  $$ select pg_stat_get_xact_tuples_updated('public.messages'::regclass) - m_upd,
            pg_stat_get_xact_tuples_hot_updated('public.messages'::regclass) - m_hot from counts $$,
  $$ values (1::bigint, 1::bigint) $$,
  'the delivered callback moves the message in place (HOT)');
select results_eq(
  format($$ select m.status::text, m.pending_status::text, a.provider_final from messages m
            join message_attempts a on a.message_id = m.id where m.id = %L $$, :'m'),
  $$ values ('delivered', null::text, true) $$,
  'delivered, with its attempt final, and the ledger has the move');

/** Section - the scans find their indexes */
-- With sequential scans off, what is left is whether each scan's predicate implies its index's.
set local enable_seqscan = off;
set local plan_cache_mode = force_generic_plan;
prepare claim (uuid) as
  select m.id from public.messages m where m.sender_id = $1 and m.pending_status = 'queued' and m.send_at <= now() order by m.send_at;
prepare due (timestamptz) as
  select m.id from public.messages m where m.pending_status = 'scheduled' and m.send_at <= $1;
prepare expired (timestamptz) as
  select x.id from public.messages x where x.expires_at <= $1 and x.pending_status in ('scheduled', 'queued');
prepare unreported (interval) as
  select a.id from public.message_attempts a where a.provider_sid is not null and not a.provider_final and a.requested_at >= now() - $1;
select ok(tests.plan_of($$ execute claim(gen_random_uuid()) $$) ~ 'messages_queued_due_idx'
          and tests.plan_of($$ execute due(now()) $$) ~ 'messages_scheduled_due_idx'
          and tests.plan_of($$ select m.id from public.messages m where m.pending_status = 'sending' and m.lease_expires_at < now() $$)
              ~ 'messages_sending_lease_idx'
          and tests.plan_of($$ execute expired(now()) $$) ~ 'messages_pending_expiry_idx',
  'the claim, the queueing, the reaper and the expiry each read their partial index');
select ok(tests.plan_of($$ execute unreported('3 days') $$) ~ 'message_attempts_unreported_idx',
  'reconciliation reads the unreported attempts');
reset plan_cache_mode;
reset enable_seqscan;

/** Section - the rewritten scans find their rows */
select tests.workspace('Hot scans') as ws2 \gset
select tests.sender(:'ws2', '+15550071002');
update workspaces set contact_daily_cap = 1 where id = :'ws2';
select tests.contact(:'ws2', '+14155557201', tests.daytime_zone()) as c_due \gset
select tests.contact(:'ws2', '+14155557202', tests.daytime_zone()) as c_late \gset
select tests.message(:'c_due', now() - interval '1 minute', 'scheduled', 'sms', 'marketing') as due \gset
select tests.message(:'c_late', now() + interval '30 minutes') as late \gset
update messages set expires_at = now() + interval '1 hour' where id = :'late';
select tests.authenticate_as_service_role();
select herald.queue_due_messages(100, now());
select tests.clear_authentication();
select results_eq(format($$ select status::text, pending_status::text from messages where id = %L $$, :'due'),
  $$ values ('queued', 'queued') $$, 'queue_due_messages finds the due scheduled message and queues it');
select is((select sendable from herald.dispatch_fanout()), 1, 'dispatch_fanout counts it as sendable');
select isnt(herald.contact_cap_next_time((select c from contacts c where c.id = :'c_due'), now()), null,
  'contact_cap_next_time counts it against its contact''s cap of one (queued, not yet sent)');
select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(10, interval '1 minute') where message_id = :'due'), 1,
  'claim_messages finds it');
select tests.clear_authentication();
select is(herald.day_use(:'ws2', now() - interval '1 hour'), 1::bigint, 'day_use counts it in flight');
update messages set lease_expires_at = now() - interval '1 second' where id = :'due';
select tests.authenticate_as_service_role();
select is(herald.reap_expired_leases(), 1, 'reap_expired_leases finds it once its lease ran out');
select is(herald.cancel_expired_messages(now() + interval '2 hours'), 1, 'cancel_expired_messages finds the one past its deadline');
select tests.clear_authentication();

/** Section - reconciliation */
select tests.message(tests.contact(:'ws', '+14155557102', tests.daytime_zone()), now() - interval '1 minute', 'queued') as silent \gset
select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(10, interval '1 minute') where message_id = :'silent'), 1, 'another claimed');
select herald.record_send_result(:'silent', 1, 'sent', 'SM' || md5('hot-silent'), 'queued');
select tests.clear_authentication();
update message_attempts set requested_at = now() - interval '20 minutes', responded_at = now() - interval '20 minutes'
where message_id in (:'m', :'silent');
select tests.authenticate_as_service_role();
select herald.select_status_checks('10 minutes');
select tests.clear_authentication();
select results_eq(
  $$ select a.message_id from herald.status_checks s join message_attempts a on a.id = s.attempt_id $$,
  format($$ values (%L::uuid) $$, :'silent'),
  'twenty silent minutes: the sent message is checked, the delivered one is not');

select * from finish();
rollback;
