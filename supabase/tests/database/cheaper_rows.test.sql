-- Cheaper rows (…_cheaper_rows.sql): the ledger triggers (herald.messages_ledger_insert,
-- herald.messages_ledger_update) in static statements with the status graph folded in as a
-- constant (herald.message_moves), one index fewer on messages and room on its pages for HOT
-- updates. Everything the ledger recorded and refused before is recorded and refused the same,
-- for plain UPDATEs as for the RPCs and the dispatcher's functions.
begin;
select plan(26);
-- About the ledger, not the law: transactional, so the legal hours for marketing do not make
-- this file depend on the hour. Rolled back with the rest of the file.
alter table public.messages alter column category set default 'transactional';
update workspaces set automation_enabled = false;

/** Section - static statements, the graph as a constant */
select is_empty(
  $$ select p.proname from pg_proc p
     where p.oid in ('herald.messages_ledger_insert()'::regprocedure, 'herald.messages_ledger_update()'::regprocedure)
       and (p.prosrc ~* '\mexecute\M' or not p.prosecdef or p.proconfig is distinct from array['search_path=""']) $$,
  'both ledger triggers run static statements only (planned once per session), as security definers with an empty search_path and no other setting');
select results_eq(
  $$ select m from unnest(herald.message_moves()) m order by m $$,
  $$ select f::text || '>' || t::text from unnest(enum_range(null::message_status)) f, unnest(enum_range(null::message_status)) t
     where f <> t and herald.message_transition_ok(f, t) order by 1 $$,
  'herald.message_moves: exactly the moves of herald.message_transition_ok between two statuses');
select ok(tests.plan_of($$ select 1 where 'sent>queued' = any (herald.message_moves()) $$) !~ 'message_moves',
  'and the planner folds it into a constant');

-- Every pair of statuses, moved by a plain UPDATE as the service role: refused (55000) exactly
-- where the graph has no move.
select tests.workspace('Ledger Rows') as ws \gset
select tests.sender(:'ws', '+15557713001') as snd \gset
select tests.contact(:'ws', '+14157713001') as c \gset
create temp table pair_results (from_status message_status, to_status message_status, refused boolean, ledger_rows integer);
grant all on pair_results to service_role;
select tests.authenticate_as_service_role();
do $$
declare
  f public.message_status;
  t public.message_status;
  v_id uuid;
  v_refused boolean;
begin
  foreach f in array enum_range(null::public.message_status) loop
    foreach t in array enum_range(null::public.message_status) loop
      insert into public.messages (workspace_id, contact_id, body, status, lease_expires_at, cancel_reason)
      select c.workspace_id, c.id, 'pair ' || f || ' ' || t, f,
             case when f = 'sending' then now() + interval '1 minute' end,
             case when f = 'cancelled' then 'user_cancelled'::public.cancel_reason end
      from public.contacts c where c.phone = '+14157713001'
      returning id into v_id;
      begin
        update public.messages
        set status = t,
            lease_expires_at = case when t = 'sending' then now() + interval '1 minute' end,
            cancel_reason = case when t = 'cancelled' then 'user_cancelled'::public.cancel_reason end
        where id = v_id;
        v_refused := false;
      exception when sqlstate '55000' then
        v_refused := true;
      end;
      insert into pair_results
      select f, t, v_refused, count(*)::integer from public.message_events e where e.message_id = v_id;
    end loop;
  end loop;
end;
$$;
select tests.clear_authentication();
select is((select count(*)::int from pair_results), 81, 'all 81 pairs of statuses tried');
select is_empty($$ select from_status, to_status from pair_results where refused = herald.message_transition_ok(from_status, to_status) $$,
  'a plain UPDATE is refused exactly where herald.message_transition_ok has no move');
select is_empty($$ select from_status, to_status, ledger_rows from pair_results
                   where ledger_rows <> case when refused or from_status = to_status then 1 else 2 end $$,
  'a move adds one ledger row, a refused one none, a status set to itself none');

/** Section - the refusal */
select tests.message(:'c', now() - interval '1 minute', 'scheduled') as m_one \gset
select tests.mark_sent(array[:'m_one']::uuid[]);
select tests.authenticate_as_service_role();
select throws_ok(format($$ update messages set status = 'queued' where id = %L $$, :'m_one'), '55000',
  format('message %s cannot go from sent to queued', :'m_one'), 'a sent message cannot be queued again: 55000, naming it and the move');
create temp table refusal as select null::text as hint;
grant all on refusal to service_role;
do $$
declare v_hint text;
begin
  update public.messages set status = 'scheduled' where body like 'hello%' and status = 'sent';
exception when sqlstate '55000' then
  get stacked diagnostics v_hint = pg_exception_hint;
  update refusal set hint = v_hint;
end;
$$;
select is((select hint from refusal), 'A message only moves forward; cancelled, failed, undelivered and read are final.',
  'with the hint that says why');
select tests.clear_authentication();

-- Several rows in one statement, one of them a move out of the graph: the smallest such id is
-- named and nothing is written, the other rows' moves and ledger rows included.
select tests.message(:'c', now() + interval '1 day', 'scheduled') as m_a \gset
select tests.message(:'c', now() + interval '1 day', 'scheduled') as m_b \gset
select tests.message(:'c', now() + interval '1 day', 'scheduled') as m_x \gset
select tests.message(:'c', now() + interval '1 day', 'scheduled') as m_y \gset
update messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now() where id in (:'m_x', :'m_y');
select least(:'m_x'::uuid, :'m_y'::uuid) as m_first \gset
select count(*) as events_before from message_events where workspace_id = :'ws' \gset
select tests.authenticate_as_service_role();
select throws_ok(format($$ update messages set status = 'failed', failed_at = now(), cancel_reason = null where id in (%L, %L, %L, %L) $$,
                        :'m_a', :'m_b', :'m_x', :'m_y'), '55000',
  format('message %s cannot go from cancelled to failed', :'m_first'),
  'a statement with one or more refused moves among allowed ones: the first refused message by id is named');
select tests.clear_authentication();
select results_eq(format($$ select status::text from messages where id in (%L, %L) $$, :'m_a', :'m_b'),
  $$ values ('scheduled'::text), ('scheduled') $$, 'and its allowed moves did not happen either');
select is((select count(*) from message_events where workspace_id = :'ws'), :'events_before'::bigint, 'nor any of its ledger rows');

/** Section - the ledger rows, written by plain UPDATEs */
select tests.message(:'c', now() + interval '1 day', 'scheduled') as m_plain \gset
select results_eq(format($$ select from_status, to_status::text, reason, actor from message_events where message_id = %L $$, :'m_plain'),
  $$ values (null::message_status, 'scheduled'::text, 'created'::text, 'postgres'::text) $$,
  'an insert: one row, created, by the database role with no JWT');
select tests.authenticate_as_service_role();
update messages set send_at = send_at + interval '2 hours' where id = :'m_plain';
update messages set status = 'queued' where id = :'m_plain';
update messages set status = 'sending', lease_expires_at = now() + interval '2 minutes', attempts = 1 where id = :'m_plain';
select count(*) as events_sending from message_events where message_id = :'m_plain' \gset
select n_tup_hot_upd as hot_before from pg_stat_xact_user_tables where relid = 'public.messages'::regclass \gset
update messages set lease_expires_at = greatest(lease_expires_at, now() + interval '15 seconds') where id = :'m_plain';
select n_tup_hot_upd as hot_after from pg_stat_xact_user_tables where relid = 'public.messages'::regclass \gset
update messages set provider_sid = 'SM' || repeat('7', 32) where id = :'m_plain';
select is((select count(*) from message_events where message_id = :'m_plain'), :'events_sending'::bigint,
  'a lease stretched and a sid recorded move neither status nor send_at: no ledger row');
select set_config('herald.actor', 'a declared actor', true);
update messages set status = 'failed', lease_expires_at = null, failed_at = now(), last_error_code = 30003 where id = :'m_plain';
select set_config('herald.actor', '', true);
select tests.clear_authentication();
select results_eq(
  format($$ select from_status::text, to_status::text, reason, actor, (detail ->> 'send_at_to')::timestamptz - (detail ->> 'send_at_from')::timestamptz
            from message_events where message_id = %L and from_status is not null order by id $$, :'m_plain'),
  $$ values ('scheduled'::text, 'scheduled'::text, null::text, 'service_role'::text, interval '2 hours'),
            ('scheduled', 'queued', null, 'service_role', null), ('queued', 'sending', null, 'service_role', null),
            ('sending', 'failed', 'provider_error_30003', 'a declared actor', null) $$,
  'a send_at move with both times, each status change once, with its reason and actor, as before');
select cmp_ok(:'hot_after'::bigint, '>', :'hot_before'::bigint,
  'the lease stretch, whose expiry did not move, is a HOT update (room on the page, no indexed column changed)');

select tests.message(:'c', now() + interval '1 day', 'scheduled') as m_reason \gset
select tests.authenticate_as_service_role();
select set_config('herald.reason', 'checked by hand', true);
update messages set status = 'cancelled', cancel_reason = 'replied', cancelled_at = now() where id = :'m_reason';
select set_config('herald.reason', '', true);
select tests.clear_authentication();
select is((select reason from message_events where message_id = :'m_reason' and to_status = 'cancelled'), 'replied',
  'a cancellation records its cancel reason, whatever reason the caller declared');

-- A message whose id is changed: the ledger's foreign key refuses it before the ledger trigger
-- pairs old and new rows by id.
select tests.authenticate_as_service_role();
select throws_ok(format($$ update messages set id = gen_random_uuid() where id = %L $$, :'m_reason'), '23503', null,
  'a message''s id cannot be changed: its ledger rows point at it');
select tests.clear_authentication();

/** Section - beside the RPCs and the dispatcher's functions */
select tests.workspace_of('rowena', 'Rows Co') as ws2 \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'ws2', 'sms', '+15557713002', 'connected', 100, true);
-- In an early-afternoon zone: the message is marketing, and a Los Angeles number would be in
-- the legal night for runs late in the UTC day.
insert into contacts (workspace_id, phone, timezone) values (:'ws2', '+14157713002', tests.daytime_zone()) returning id as c2 \gset
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00', automation_enabled = true where id = :'ws2';
select tests.authenticate_as('rowena');
select schedule_message(:'c2', 'through the API', now() - interval '1 minute') as m_api \gset
select schedule_message(:'c2', 'cancelled by its author', now() + interval '1 day') as m_cancel \gset
select cancel_message(:'m_cancel');
select tests.clear_authentication();
select results_eq(format($$ select coalesce(from_status::text, '-') || '>' || to_status, reason, actor from message_events where message_id = %L order by id $$, :'m_cancel'),
  format($$ values ('->scheduled'::text, 'created'::text, %1$L::text), ('scheduled>cancelled', 'user_cancelled', %1$L) $$, tests.get_user_id('rowena')),
  'schedule_message and cancel_message: created and user_cancelled, by the member');
update messages set status = 'queued' where id = :'m_api';
select tests.authenticate_as_service_role();
select attempt_no as att from herald.claim_messages(10, interval '2 minutes') where message_id = :'m_api' \gset
select results_eq(format($$ select verdict from herald.confirm_send(array[%L::uuid], array[%s], interval '15 seconds') $$, :'m_api', :'att'),
  $$ values ('send'::text) $$, 'claimed and confirmed by the dispatcher''s functions');
select is(herald.record_send_result(:'m_api', :'att', 'sent', 'SM' || repeat('8', 32), 'queued'), 'sent'::message_status,
  'and its answer recorded');
select tests.clear_authentication();
select results_eq(format($$ select from_status::text || '>' || to_status, actor from message_events where message_id = %L and from_status is not null order by id $$, :'m_api'),
  $$ values ('scheduled>queued'::text, 'postgres'::text), ('queued>sending', 'dispatcher'), ('sending>sent', 'dispatcher') $$,
  'the dispatcher''s claim and record each write their move, its confirmation (a lease stretch) none');

/** Section - a plan kept from a one-row statement serves a 20,000-row one */
-- This session's ledger statements were planned by the one-row updates above. A nested loop
-- kept from those would take minutes here; the full join takes a second or two.
insert into messages (workspace_id, contact_id, body, send_at)
select :'ws', :'c', 'bulk ' || g, now() + interval '1 day' from generate_series(1, 20000) g;
select count(*) as cancelled_before from message_events
where workspace_id = :'ws' and to_status = 'cancelled' and from_status = 'scheduled' and reason = 'user_cancelled' \gset
set local statement_timeout = '60s';
select lives_ok(format($$ update messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now()
                          where workspace_id = %L and body like 'bulk %%' $$, :'ws'),
  'cancelling 20,000 messages in one statement, after one-row statements planned the trigger');
reset statement_timeout;
select is((select count(*) - :'cancelled_before' from message_events
           where workspace_id = :'ws' and to_status = 'cancelled' and from_status = 'scheduled' and reason = 'user_cancelled'),
  20000::bigint, 'each with its ledger row');

/** Section - indexes and fill factor */
select hasnt_index('public', 'messages', 'messages_workspace_created_idx',
  'messages_workspace_created_idx is gone: no query reads messages by created_at');
set local enable_seqscan = off;
select matches(tests.plan_of(format($$ select id from messages where workspace_id = %L $$, :'ws')), 'Index',
  'a workspace''s messages are still read through an index led by workspace_id');
reset enable_seqscan;
select is((select reloptions from pg_class where oid = 'public.messages'::regclass), array['fillfactor=80'],
  'messages pages keep a fifth free for HOT updates');

select * from finish();
rollback;
