-- Status callbacks in batches (…_status_callback_batches.sql): herald.apply_status_callbacks
-- applies a batch exactly as herald.apply_provider_status (now a batch of one) applies the same
-- callbacks one after another. Two identical worlds get the same mixed batch: out of order,
-- several per sid, duplicates in the batch and already stored, an unknown sid, a transient
-- failure (sent again), an erased sid; one as a batch, the other one by one. Outcomes, messages,
-- attempts, ledgers, stored events and resends must match. As service_role, the twilio-status
-- function's role; refused for authenticated and anon; bad input is 22023 and changes nothing.
begin;
select plan(17);
update workspaces set automation_enabled = false;

/** Section - two identical worlds of sent messages */
select tests.workspace('Batch world a') as ws_a \gset
select tests.workspace('Batch world b') as ws_b \gset
update workspaces set retry_base_seconds = 60, max_attempts = 3 where id in (:'ws_a', :'ws_b');
select tests.sender(:'ws_a', '+15550041001');
select tests.sender(:'ws_b', '+15550041002');

create temp table cases (world text, name text, message uuid, sid text, primary key (world, name));
insert into cases (world, name, message, sid)
select w.world, n.name,
       case when n.name not in ('unknown', 'erased')
            then tests.message(tests.contact(w.ws, '+1415554' || w.k || lpad(n.k::text, 3, '0')), now() - interval '1 minute', 'queued') end,
       'SM' || md5(w.world || n.name)
from (values ('a', :'ws_a'::uuid, 1), ('b', :'ws_b'::uuid, 2)) w (world, ws, k),
     unnest(array['plain', 'late', 'inorder', 'stored', 'queued', 'untokened', 'mixed', 'walk', 'reused', 'transient',
                   'unknown', 'erased']) with ordinality n (name, k);
grant select on cases to service_role;
select is((select count(*)::int from herald.claim_messages(100, interval '1 minute')), 20, 'ten messages a world, claimed');
select herald.record_send_result(c.message, 1, 'sent', c.sid, 'queued') from cases c where c.message is not null order by c.world, c.name;
-- A hard-deleted contact's message: its sid is being erased at the provider.
insert into herald.provider_erasures (workspace_id, provider_sid)
select case c.world when 'a' then :'ws_a'::uuid else :'ws_b'::uuid end, c.sid from cases c where c.name = 'erased';

-- The batch, in arrival order; a token is the world's letter and what follows.
create temp table callbacks (i integer primary key, name text, status text, code integer, token text);
insert into callbacks values
  (1, 'plain', 'delivered', null, 'plain-d'),
  (2, 'late', 'delivered', null, 'late-d'),
  (3, 'late', 'sent', null, 'late-s'),            -- out of order: after delivered, nothing
  (4, 'plain', 'delivered', null, 'plain-d'),     -- Twilio's redelivery in the same batch
  (5, 'inorder', 'sent', null, 'inorder-s'),
  (6, 'unknown', 'delivered', null, 'unknown-d'),
  (7, 'inorder', 'delivered', null, 'inorder-d'),
  (8, 'stored', 'delivered', null, 'stored-d'),   -- stored before the batch
  (9, 'queued', 'queued', null, 'queued-q'),
  (10, 'untokened', 'delivered', null, null),
  (11, 'mixed', 'delivered', null, 'mixed-d'),
  (12, 'mixed', 'undelivered', 30003, 'mixed-u'), -- a failure on the same sid: all of it one by one
  (13, 'erased', 'delivered', null, 'shared'),
  (14, 'reused', 'delivered', null, 'shared'),    -- the erased callback stored nothing: not a duplicate
  (15, 'walk', 'queued', null, 'walk-q'),
  (16, 'walk', 'delivered', null, 'walk-d'),
  (17, 'transient', 'failed', 30001, 'transient-f'),
  (18, 'walk', 'read', null, 'walk-r'),
  (19, 'untokened', 'delivered', null, null),
  (20, 'walk', 'sent', null, 'walk-s');
grant select on callbacks to service_role;
create temp table one_by_one (i integer primary key, outcome text);
grant insert on one_by_one to service_role;

select tests.authenticate_as_service_role();
select is(herald.apply_provider_status(c.sid, 'delivered', null, '{"MessageStatus": "delivered"}', c.world || 'stored-d'), 'applied',
  'world ' || c.world || ': one callback stored before the batch')
from cases c where c.name = 'stored' order by c.world;

/** Section - the same callbacks: a batch in world a, one by one in world b */
-- Counted for this transaction (pg_stat_xact_user_functions): which callbacks took the per-callback path.
select tests.clear_authentication();
set local track_functions = 'pl';
select coalesce(sum(calls), 0) as per_callback_before from pg_stat_xact_user_functions
where schemaname = 'herald' and funcname = 'apply_status_event' \gset
select tests.authenticate_as_service_role();
select herald.apply_status_callbacks(
  array(select c.sid from callbacks b join cases c on c.world = 'a' and c.name = b.name order by b.i),
  array(select b.status from callbacks b order by b.i),
  array(select b.code from callbacks b order by b.i),
  array(select jsonb_build_object('MessageStatus', b.status, 'i', b.i) from callbacks b order by b.i),
  array(select 'a' || b.token from callbacks b order by b.i)) as batch_outcomes \gset
select tests.clear_authentication();
select is((select sum(calls)::int from pg_stat_xact_user_functions where schemaname = 'herald' and funcname = 'apply_status_event')
          - :per_callback_before, 4,
  'only the unknown sid, the transient failure and the two callbacks of the sid with a failure went one by one');
select tests.authenticate_as_service_role();
do $$
declare
  cb record;
begin
  for cb in select b.i, c.sid, b.status, b.code, b.token from callbacks b join cases c on c.world = 'b' and c.name = b.name order by b.i loop
    insert into one_by_one values (cb.i, herald.apply_provider_status(cb.sid, cb.status, cb.code,
                                                                      jsonb_build_object('MessageStatus', cb.status, 'i', cb.i),
                                                                      'b' || cb.token));
  end loop;
end;
$$;
select tests.clear_authentication();

select is(:'batch_outcomes'::text[], array(select outcome from one_by_one order by i), 'the batch''s outcomes are the one-by-one outcomes');
select is(:'batch_outcomes'::text[], array['applied', 'applied', 'unchanged', 'duplicate', 'unchanged', 'unknown_sid', 'applied',
                                           'duplicate', 'unchanged', 'applied', 'applied', 'unchanged', 'erased', 'applied',
                                           'unchanged', 'applied', 'applied', 'applied', 'unchanged', 'unchanged'],
  'each callback''s outcome, in input order');

-- Everything a callback changes, by case name, in one world.
create function pg_temp.world_messages(p_world text) returns table (name text, status text, last_error_code integer, sent boolean,
                                                                    delivered boolean, failed boolean, lease boolean, sid_kept boolean,
                                                                    attempt_status text, attempt_error integer, called_back boolean,
                                                                    resends bigint)
language sql as $$
  select c.name, m.status::text, m.last_error_code, m.sent_at is not null, m.delivered_at is not null, m.failed_at is not null,
         m.lease_expires_at is not null, m.provider_sid = c.sid, a.provider_status, a.error_code, a.last_callback_at is not null,
         (select count(*) from public.messages r where r.retry_of = m.id)
  from cases c join public.messages m on m.id = c.message join public.message_attempts a on a.message_id = m.id
  where c.world = p_world order by c.name
$$;
create function pg_temp.world_ledger(p_world text) returns table (name text, steps text)
language sql as $$
  select c.name, string_agg(coalesce(e.from_status::text, '-') || '>' || e.to_status || ' ' || coalesce(e.reason, '-') || ' ' || e.actor,
                            ', ' order by e.id)
  from cases c join public.message_events e on e.message_id = c.message
  where c.world = p_world group by c.name order by c.name
$$;
create function pg_temp.world_events(p_world text) returns table (name text, status text, error_code integer, outcome text,
                                                                  token text, attached boolean, payload jsonb)
language sql as $$
  select c.name, e.provider_status, e.error_code, e.outcome, substr(e.idempotency_token, 2), e.message_id is not null, e.payload
  from cases c join public.provider_events e on e.provider_sid = c.sid
  where c.world = p_world order by c.name, (e.payload ->> 'i')::integer, e.provider_status, e.outcome
$$;

select results_eq($$ select * from pg_temp.world_messages('a') $$, $$ select * from pg_temp.world_messages('b') $$,
  'every message and its attempt end as one by one');
select results_eq($$ select * from pg_temp.world_ledger('a') $$, $$ select * from pg_temp.world_ledger('b') $$,
  'every ledger has the same steps, reasons and actors');
select results_eq($$ select * from pg_temp.world_events('a') $$, $$ select * from pg_temp.world_events('b') $$,
  'the same callbacks are stored, with the same outcomes');
select results_eq($$ select name, status, attempt_status, resends from pg_temp.world_messages('a') $$,
  $$ values ('inorder', 'delivered', 'delivered', 0::bigint), ('late', 'delivered', 'delivered', 0), ('mixed', 'delivered', 'delivered', 0),
            ('plain', 'delivered', 'delivered', 0), ('queued', 'sent', 'queued', 0), ('reused', 'delivered', 'delivered', 0),
            ('stored', 'delivered', 'delivered', 0), ('transient', 'failed', 'failed', 1), ('untokened', 'delivered', 'delivered', 0),
            ('walk', 'read', 'read', 0) $$,
  'and where they end is right: forward by rank, the transient failure sent again');
select results_eq($$ select steps from pg_temp.world_ledger('a') where name = 'walk' $$,
  $$ values ('->queued created postgres, queued>sending - dispatcher, sending>sent - dispatcher, sent>delivered provider_delivered provider, delivered>read provider_read provider') $$,
  'a message walked forward in one batch has each step in its ledger, with the provider''s reason');
select is((select count(*)::int from provider_events e join cases c on c.sid = e.provider_sid where c.name = 'erased'), 0,
  'nothing of an erased sid is stored');

/** Section - who may call */
select tests.create_user('batch_mallory');
select tests.authenticate_as('batch_mallory');
select throws_ok($$ select herald.apply_status_callbacks(array['SMx'], array['delivered'], array[null::integer], array['{}'::jsonb], array[null::text]) $$,
  '42501', null, 'authenticated cannot apply a batch of callbacks');
select tests.authenticate_as_anon();
select throws_ok($$ select herald.apply_status_callbacks(array['SMx'], array['delivered'], array[null::integer], array['{}'::jsonb], array[null::text]) $$,
  '42501', null, 'nor can anon');
select tests.clear_authentication();

/** Section - bad input changes nothing */
select count(*) as events_before from provider_events \gset
select max(id) as ledger_before from message_events \gset
select tests.authenticate_as_service_role();
select throws_ok(format($$ select herald.apply_status_callbacks(array[%L, %L], array['delivered', 'read'], array[null::integer],
                                                                  array['{}'::jsonb, '{}'], array['x1', 'x2']) $$,
                        (select sid from cases where world = 'a' and name = 'queued'), (select sid from cases where world = 'a' and name = 'walk')),
  '22023', 'one element per callback in every array: 2 sids, 2 statuses, 1 error codes, 2 payloads, 2 idempotency tokens',
  'arrays of different lengths: 22023, naming each length');
select throws_ok(format($$ select herald.apply_status_callbacks(array[%L, null], array['delivered', 'delivered'], array[null::integer, null],
                                                                  array['{}'::jsonb, '{}'], array['x3', 'x4']) $$,
                        (select sid from cases where world = 'a' and name = 'queued')),
  '22023', 'callback 2 has no sid', 'a callback without a sid: 22023, naming it');
select tests.clear_authentication();
select results_eq($$ select (select count(*) from provider_events), (select max(id) from message_events),
                            (select status::text from messages m join cases c on c.message = m.id where c.world = 'a' and c.name = 'queued') $$,
  format($$ values (%s::bigint, %s::bigint, 'sent') $$, :events_before, :ledger_before),
  'and neither stored a callback nor moved a message');

select * from finish();
rollback;
