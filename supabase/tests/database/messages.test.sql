-- Messages (…_messages.sql): the status graph (herald.message_transition_ok) and the status
-- groups the rules speak of (pending, in flight, final; sent, delivered, failed), the append-only
-- ledger written by statement triggers (herald.messages_ledger_insert, herald.messages_ledger_update)
-- with reason and actor (herald.current_actor), a queued message bound to a sender
-- (herald.messages_bind_sender), and messages and ledger rows that go only by cascade
-- (herald.messages_delete_only_by_cascade, herald.message_events_append_only).
begin;
select plan(42);

/** Section - one contact's messages: delivered, sent, cancelled, scheduled */
select tests.workspace_of('mia', 'Ledger Co') as ws \gset
select tests.get_user_id('mia') as mia \gset
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws', 'sms', '+15005550006', 'connected', true);
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550801', 'Lea') returning id as c \gset
select schedule_message(:'c', 'to be delivered') as m_delivered \gset
select schedule_message(:'c', 'to be sent') as m_sent \gset
select schedule_message(:'c', 'to be cancelled', now() + interval '1 day') as m_cancelled \gset
select schedule_message(:'c', 'later', now() + interval '2 days') as m_later \gset
select cancel_message(:'m_cancelled');
select tests.authenticate_as_service_role();
select tests.mark_sent(array[:'m_delivered', :'m_sent']::uuid[]);
update messages set status = 'delivered', delivered_at = now() where id = :'m_delivered';
select tests.clear_authentication();

/** Section - the ledger: one row per creation and per change, with reason and actor */
select results_eq(
  format($$ select coalesce(from_status::text, '-'), to_status::text, reason, actor from message_events where message_id = %L order by id $$,
         :'m_cancelled'),
  format($$ values ('-'::text, 'scheduled'::text, 'created'::text, %1$L::text), ('scheduled', 'cancelled', 'user_cancelled', %1$L) $$, :'mia'),
  'the creation and the cancellation, each with its reason and the user who did it');
select results_eq(
  format($$ select coalesce(from_status::text, '-') || '>' || to_status::text, actor from message_events where message_id = %L order by id $$,
         :'m_delivered'),
  format($$ values ('->scheduled'::text, %L::text), ('scheduled>queued', 'service_role'), ('queued>sending', 'service_role'),
                   ('sending>sent', 'service_role'), ('sent>delivered', 'service_role') $$, :'mia'),
  'each step of a delivered message once, by whoever moved it');
select tests.authenticate_as_service_role();
update messages set send_at = send_at + interval '1 hour' where id = :'m_later';
select tests.clear_authentication();
select results_eq(
  format($$ select from_status::text, to_status::text, (detail ->> 'send_at_to')::timestamptz - (detail ->> 'send_at_from')::timestamptz
            from message_events where message_id = %L and from_status is not null $$, :'m_later'),
  $$ values ('scheduled'::text, 'scheduled'::text, interval '1 hour') $$,
  'moving send_at is in the ledger too, with both times');
select set_config('herald.reason', 'checked by hand', true);
select set_config('herald.actor', 'a declared actor', true);
update messages set status = 'queued' where id = :'m_later';
select set_config('herald.reason', '', true);
select set_config('herald.actor', '', true);
select results_eq(format($$ select reason, actor from message_events where message_id = %L and to_status = 'queued' $$, :'m_later'),
  $$ values ('checked by hand'::text, 'a declared actor'::text) $$,
  'the reason and actor a caller declares (herald.reason, herald.actor) are what the ledger records');
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'m_later';
update messages set status = 'failed', lease_expires_at = null, failed_at = now(), last_error_code = 21211 where id = :'m_later';
select is((select reason from message_events where message_id = :'m_later' and to_status = 'failed'), 'provider_error_21211',
  'a failure with a provider error code and no declared reason is recorded as that error');

/** Section - who the actor is */
-- As the ledger triggers and RPCs call it: as their owner, with the caller's JWT claims.
select set_config('request.jwt.claims', json_build_object('sub', :'mia', 'role', 'authenticated')::text, true);
select is(herald.current_actor(), :'mia', 'herald.current_actor: a user with a JWT is herself');
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
select is(herald.current_actor(), 'service_role', 'the service role without a declared actor is its role');
select set_config('herald.actor', 'dispatcher', true);
select is(herald.current_actor(), 'dispatcher', 'what the caller declares comes before the role');
select set_config('herald.actor', '', true);
select tests.clear_authentication();
select is(herald.current_actor(), 'postgres', 'with no JWT and nothing declared: the database role');

/** Section - the status graph */
select results_eq(
  $$ select f::text as from_status, array_agg(t::text order by t) from unnest(enum_range(null::public.message_status)) f,
            unnest(enum_range(null::public.message_status)) t
     where f <> t and herald.message_transition_ok(f, t) group by f order by f $$,
  $$ values ('scheduled', array['queued', 'failed', 'cancelled']),
            ('queued', array['scheduled', 'sending', 'failed', 'cancelled']),
            ('sending', array['scheduled', 'queued', 'sent', 'delivered', 'read', 'undelivered', 'failed', 'cancelled']),
            ('sent', array['delivered', 'read', 'undelivered', 'failed']),
            ('delivered', array['read']) $$,
  'the whole graph: forward only, nothing leaves read, undelivered, failed or cancelled');
select tests.authenticate_as_service_role();
select throws_ok(format($$ update messages set status = 'scheduled' where id = %L $$, :'m_delivered'), '55000', null,
  'delivered → scheduled is refused');
select throws_ok(format($$ update messages set status = 'queued', cancel_reason = null where id = %L $$, :'m_cancelled'), '55000', null,
  'cancelled → queued is refused');
select throws_ok(format($$ update messages set status = 'sending', lease_expires_at = now() where id = %L $$, :'m_sent'), '55000', null,
  'sent → sending is refused');
select throws_ok(format($$ update messages set status = 'cancelled' where id = %L $$, :'m_sent'), '23514', null,
  'a cancelled message says why (messages_cancel_reason_iff_cancelled)');
select tests.clear_authentication();
select throws_ok(format($$ update messages set status = 'scheduled', cancel_reason = null where id = %L $$, :'m_cancelled'), '55000', null,
  'not even postgres moves a cancelled message back');

/** Section - the status groups, against the graph */
select results_eq(
  $$ select g, array(select u.e::text from unnest(m) u(e) order by u.e)
     from (values ('pending', herald.pending_statuses()), ('in flight', herald.in_flight_statuses()),
                  ('final', herald.final_statuses()), ('sent', herald.sent_statuses()),
                  ('delivered', herald.delivered_statuses()), ('failed', herald.failed_statuses())) v(g, m) $$,
  $$ values ('pending', array['scheduled', 'queued']), ('in flight', array['sending']),
            ('final', array['sent', 'delivered', 'read', 'undelivered', 'failed', 'cancelled']),
            ('sent', array['sent', 'delivered', 'read']), ('delivered', array['delivered', 'read']),
            ('failed', array['undelivered', 'failed']) $$,
  'herald.pending_statuses, herald.in_flight_statuses, herald.final_statuses, herald.sent_statuses, herald.delivered_statuses and herald.failed_statuses: each group''s members');
select results_eq(
  $$ select s::text, (s = any (herald.pending_statuses()))::int + (s = any (herald.in_flight_statuses()))::int
                     + (s = any (herald.final_statuses()))::int,
            (s = any (herald.sent_statuses()))::int + (s = any (herald.failed_statuses()))::int + (s = 'cancelled')::int
     from unnest(enum_range(null::public.message_status)) s order by s $$,
  $$ select s::text, 1, case when s in ('scheduled', 'queued', 'sending') then 0 else 1 end
     from unnest(enum_range(null::public.message_status)) s order by s $$,
  'every status is pending, in flight or final, exactly one; and a final one is sent, failed or cancelled, exactly one');
select is_empty(
  $$ select f, t from unnest(herald.final_statuses()) f, unnest(enum_range(null::public.message_status)) t
     where f <> t and herald.message_transition_ok(f, t) and not t = any (herald.final_statuses()) $$,
  'final is final: no move of the graph leads out of it');
select results_eq(
  $$ select bool_and(herald.message_transition_ok(p, 'cancelled')),
            bool_and(not herald.message_transition_ok(p, t) or not t = any (herald.sent_statuses()))
     from unnest(herald.pending_statuses()) p, unnest(enum_range(null::public.message_status)) t $$,
  $$ values (true, true) $$,
  'a pending message may be cancelled, and never goes out without a dispatcher''s claim first');
select is(
  (select array_agg(distinct f order by f) from unnest(enum_range(null::public.message_status)) f, unnest(herald.sent_statuses()) t
   where f <> t and herald.message_transition_ok(f, t) and not f = any (herald.sent_statuses())),
  herald.in_flight_statuses(),
  'only an in-flight message becomes sent: in flight is where the provider''s answer is awaited');
select is(
  (select array_agg(t order by t) from unnest(enum_range(null::public.message_status)) t
   where herald.message_transition_ok('sent', t) and t <> 'sent' and not t = any (herald.delivered_statuses())),
  herald.failed_statuses(),
  'what a sent message can become besides delivered is exactly failed');
select is_empty(
  $$ select p.proname from pg_proc p where p.pronamespace = 'herald'::regnamespace and p.proname like '%\_statuses'
       and (p.provolatile <> 'i' or p.proparallel <> 's' or p.pronargs <> 0) $$,
  'every group is an immutable, parallel-safe function of no argument (what lets the planner fold it)');

-- What the planner makes of a group: its constant array, so plans and partial indexes are the
-- same as with the literal list.
select tests.plan_of($$ select id from messages where workspace_id = gen_random_uuid() and status = any (herald.pending_statuses()) $$) as pending_plan \gset
select ok(:'pending_plan' ~ '\{scheduled,queued\}' and :'pending_plan' !~ 'pending_statuses',
  'a group is folded into its constant while planning');
set local enable_seqscan = off;
-- (The queue's partial indexes read pending_status, status while still to be sent: …_hot_status_moves.sql.)
select tests.plan_of($$ select id from messages where pending_status = any (herald.in_flight_statuses()) and lease_expires_at < now() $$) as lease_plan \gset
reset enable_seqscan;
select ok(:'lease_plan' ~ 'messages_sending_lease_idx',
  'and a group still matches a partial index on its one status (the reaper''s)');
select diag('the plans: ' || :'pending_plan' || :'lease_plan') where num_failed() > 0;

/** Section - members read messages; only Herald writes them */
select tests.authenticate_as('mia');
select is((select count(*)::int from messages where contact_id = :'c'), 4, 'a member reads her workspace''s messages');
select throws_ok(format($$ insert into messages (workspace_id, contact_id, body) values (%L, %L, 'sneaked in') $$, :'ws', :'c'), '42501', null,
  'a member cannot insert a message past schedule_message');
select throws_ok(format($$ update messages set body = 'rewritten' where id = %L $$, :'m_sent'), '42501', null,
  'nor rewrite one');

/** Section - a queued message has a sender (claims go sender by sender) */
select tests.clear_authentication();
select tests.workspace('Unsent Co') as ws_u \gset
select tests.contact(:'ws_u', '+14155550095') as u_c \gset
select throws_ok(format($$ select tests.message(%L, now() - interval '1 minute', 'queued') $$, :'u_c'), '23514', null,
  'no message is queued in a workspace without a default sender: nothing could ever send it');
select tests.sender(:'ws_u', '+15550009501', 10) as u_s \gset
select tests.message(:'u_c', now() - interval '1 minute', 'queued') as u_m \gset
select is((select sender_id from messages where id = :'u_m'), :'u_s'::uuid,
  'queued without a sender, a message is bound to the default one');

/** Section - the ledger is append-only */
select tests.authenticate_as('mia');
select throws_ok($$ update message_events set reason = 'edited' $$, '42501', null, 'a member cannot update the ledger');
select throws_ok($$ delete from message_events $$, '42501', null, 'a member cannot delete from the ledger');
select tests.authenticate_as_service_role();
select throws_ok($$ update message_events set reason = 'edited' $$, '42501', 'message_events is append-only', 'nor can the service role update it');
select throws_ok($$ delete from message_events $$, '42501', 'message_events is append-only', 'or delete from it');
select tests.clear_authentication();
select throws_ok($$ update message_events set reason = 'edited' $$, '42501', 'message_events is append-only', 'nor can postgres update it');
select throws_ok($$ delete from message_events $$, '42501', 'message_events is append-only', 'or delete from it');
select throws_ok($$ truncate message_events cascade $$, '42501', 'message_events is append-only', 'or truncate it');

/** Section - messages go only with their contact */
select tests.authenticate_as('mia');
select schedule_message(:'c', 'one') as m_one \gset
select tests.authenticate_as_service_role();
select throws_ok(format($$ delete from messages where id = %L $$, :'m_one'), '42501', 'messages are not deleted one by one',
  'the service role cannot delete a message directly');
select tests.clear_authentication();
select throws_ok(format($$ delete from messages where id = %L $$, :'m_one'), '42501', null, 'nor can postgres');
select is((select count(*)::int from message_events where message_id = :'m_one'), 1, 'its ledger is intact');

select cmp_ok((select count(*)::int from message_events where message_id in (select id from messages where contact_id = :'c')), '>=', 10,
  'the ledger of the contact is there');
create temp table c_messages as select id from messages where contact_id = :'c';
select tests.authenticate_as('mia');
select lives_ok(format($$ select delete_contact(%L, true) $$, :'c'), 'a hard delete of the contact');
select tests.clear_authentication();
select is((select count(*)::int from messages where id in (select id from c_messages))
          + (select count(*)::int from message_events where message_id in (select id from c_messages)), 0,
  'takes its messages and their ledger with it (the cascade is the one way they go)');

select * from finish();
rollback;
