-- The dispatcher's plans on tables that grow (…_dispatch_plans.sql). A dispatcher's connection
-- claims, confirms and records a first cycle with its statements planned as for tables of a few
-- rows (reading a table whole made as cheap as a small table makes it) and kept as the session's
-- generic plans; messages, message_attempts and contacts then grow by hundreds of rows, twice.
-- The cycles after each growth, through the same plans, reach each table by index probes, and
-- the second reads no more than the first. Before, the kept plans scanned those tables whole 63
-- times a cycle; with enable_seqscan off alone, the second cycle read 2,906 index entries more
-- than the first (whole indexes instead of whole tables).
-- One workspace has a daily limit, so its messages take the per-message confirmation
-- (herald.confirm_send_each) and the other's the set-based one (herald.confirm_send); the
-- claim (herald.claim_messages, herald.apply_send_rules) and the record
-- (herald.record_send_results, herald.record_send_result for the answer it does not apply
-- set-based, a transient error) are the same for both.
begin;
select plan(11);
update workspaces set automation_enabled = false;

select tests.workspace('Dispatch plans') as ws \gset
select tests.workspace('Dispatch plans, limited', p_daily_limit => 1000) as ws_limited \gset
select tests.sender(:'ws', '+15550049001') as sender \gset
select tests.sender(:'ws_limited', '+15550049002') as sender_limited \gset
create temp table due (n integer primary key, message uuid);
grant select on due to service_role;
-- Two due messages in each workspace for a cycle, p_from onwards.
create function pg_temp.queue_two_each(p_from integer) returns void language sql as $$
  insert into due
  select p_from + g, tests.message(tests.contact(w.id, '+1415556' || lpad((4900 + p_from + g)::text, 4, '0'),
                                                 tests.daytime_zone()),
                                   now() - interval '1 minute', 'queued')
  from generate_series(0, 3) g,
       lateral (select id from workspaces where name = case when g < 2 then 'Dispatch plans' else 'Dispatch plans, limited' end) w
$$;
-- A cycle as the dispatcher runs it: claim, confirm, record (one of the answers an error).
create function pg_temp.cycle(p_tag text) returns text[] language sql as $$
  with claimed as (select * from herald.claim_messages(50, interval '1 minute')),
  confirmed as (
    select c.message_id, c.verdict from herald.confirm_send(array(select message_id from claimed order by message_id),
                                                            array(select attempt_no from claimed order by message_id)) c
  ), recorded as (
    select r.status::text from herald.record_send_results(
      array(select message_id from confirmed order by message_id),
      array(select 1 from confirmed order by message_id),
      array(select case when row_number() over (order by message_id) = 1 then 'transient' else 'sent' end
            from confirmed order by message_id),
      array(select 'SM' || md5(p_tag || message_id) from confirmed order by message_id),
      array(select 'queued' from confirmed order by message_id)) r
  )
  select array(select verdict from confirmed order by 1) || array(select status from recorded order by 1)
$$;
grant execute on function pg_temp.cycle(text) to service_role;
select pg_temp.queue_two_each(1);

-- The plans as a new project's first calls make them: for tables of a few rows, where reading a
-- table whole is the cheapest way to find anything. (Not by ANALYZE: its row counts outlive the
-- rollback and would mislead every later test on this cluster.) Each statement's generic plan
-- from its first call, as a session settles on after five, and kept.
set local seq_page_cost = 0;
set local cpu_tuple_cost = 0;
set local plan_cache_mode = force_generic_plan;
select tests.authenticate_as_service_role();
select is(pg_temp.cycle('first'), array['send', 'send', 'send', 'send', 'scheduled', 'sent', 'sent', 'sent'],
  'a first cycle, planned on the small tables: four claimed and confirmed, three sent, one to be retried');
select tests.clear_authentication();
reset seq_page_cost;
reset cpu_tuple_cost;

-- Then the tables grow, twice: each time a third workspace, sending too, gets 400 contacts, each
-- with a sent message and its attempt, and a message queued for later on its sender, and each
-- of the two workspaces two more due messages. (In a workspace of its own, so the foreign-key
-- checks' look-ups, which PostgreSQL plans, read a workspace's few rows; a plan that reads a
-- table or an index whole reads each growth's 800 messages or 400 contacts more each time.)
select tests.workspace('Dispatch plans, others') as ws_others \gset
select tests.sender(:'ws_others', '+15550049003') as sender_others \gset
create function pg_temp.grow(p_round integer, p_ws uuid, p_sender uuid) returns void language sql as $$
  insert into public.contacts (workspace_id, phone, timezone)
  select p_ws, '+1416' || p_round || lpad(g::text, 6, '0'), 'UTC' from generate_series(1, 400) g;
  insert into public.messages (workspace_id, contact_id, sender_id, channel, body, send_at, status, attempts,
                               provider_sid, sent_at)
  select p_ws, c.id, p_sender, 'sms', 'Grown ' || c.phone, now() - interval '1 minute', 'sent', 1,
         'SM' || md5('grown' || c.id), now() - interval '1 minute'
  from public.contacts c where c.workspace_id = p_ws and c.phone like '+1416' || p_round || '%';
  insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_sid, provider_status,
                                       requested_at, responded_at)
  select m.workspace_id, m.id, 1, m.provider_sid, 'sent', m.sent_at, m.sent_at
  from public.messages m join public.contacts c on c.id = m.contact_id
  where m.workspace_id = p_ws and c.phone like '+1416' || p_round || '%';
  insert into public.messages (workspace_id, contact_id, sender_id, channel, body, send_at, status)
  select p_ws, c.id, p_sender, 'sms', 'Later ' || c.phone, now() + interval '1 hour', 'queued'
  from public.contacts c where c.workspace_id = p_ws and c.phone like '+1416' || p_round || '%';
  select pg_temp.queue_two_each(p_round * 10);
$$;

-- What a cycle reads of the tables that grow, and of their indexes.
create temp view reads as
select * from tests.table_reads(array['public.messages', 'public.message_attempts', 'public.contacts',
                                      'public.message_events', 'public.provider_events']::regclass[]);
create temp table cycle_reads (round integer primary key, table_scans numeric, index_entries numeric);
create function pg_temp.grow_and_cycle(p_round integer, p_ws uuid, p_sender uuid) returns text[] language plpgsql as $$
declare
  v_before record;
  v_result text[];
begin
  perform pg_temp.grow(p_round, p_ws, p_sender);
  select * into v_before from reads;
  perform tests.authenticate_as_service_role();
  v_result := pg_temp.cycle('round ' || p_round);
  perform tests.clear_authentication();
  insert into cycle_reads
  select p_round, r.table_scans - v_before.table_scans, r.index_entries - v_before.index_entries from reads r;
  return v_result;
end;
$$;

select is(pg_temp.grow_and_cycle(1, :'ws_others', :'sender_others'), array['send', 'send', 'send', 'send', 'scheduled', 'sent', 'sent', 'sent'],
  'a cycle after 800 messages more, through the same plans: the four due messages, none of those queued for later');
select is(pg_temp.grow_and_cycle(2, :'ws_others', :'sender_others'), array['send', 'send', 'send', 'send', 'scheduled', 'sent', 'sent', 'sent'],
  'and another after 800 more');
select is((select count(*)::int from messages where workspace_id = :'ws_others'), 1600,
  'the third workspace holds 1,600 messages, 800 of them queued for later');
select is((select sum(table_scans) from cycle_reads), 0::numeric,
  'neither cycle scans messages, message_attempts, contacts, message_events or provider_events sequentially');
-- (A whole read of an index of messages returns 800 more entries after each growth, of contacts 400.)
select cmp_ok((select abs(max(index_entries) filter (where round = 2) - max(index_entries) filter (where round = 1))
               from cycle_reads), '<', 100::numeric,
  'and the second reads as many index entries as the first: its reads do not grow with the tables');
select is((select count(*)::int from messages m join due d on d.message = m.id where m.status = 'sent'), 9,
  'nine of the twelve due messages are sent');
select is((select count(*)::int from messages m join due d on d.message = m.id where m.status = 'scheduled'), 3,
  'and the three whose answer was transient wait for their retry');

-- A plan that still reads a table sequentially under enable_seqscan off carries the planner's
-- penalty (10^10) in its cost, over jit_above_cost: without jit off, each such statement was
-- compiled on every call (200-500 ms; a claim of 250 took 18 s on the bench).
select is((select array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text) from pg_proc p
           where p.proconfig @> array['enable_seqscan=off'] and not p.proconfig @> array['jit=off']),
  null, 'every function that runs with enable_seqscan off runs with jit off too');
select is((select array_agg(p.proname::text order by p.proname) from pg_proc p where p.proconfig @> array['enable_seqscan=off']),
  array['apply_status_callbacks', 'claim_messages', 'confirm_send', 'confirm_send_each', 'record_send_result',
        'record_send_results'],
  'they are the claim, the confirmations, the record and the status callbacks');
-- Their plans hold at any size (above), so each statement is planned once per session: under
-- auto, a confirmation of one message was planned again on every call.
select is((select array_agg(p.proname::text order by p.proname) from pg_proc p
           where p.proconfig @> array['enable_seqscan=off'] and not p.proconfig @> array['plan_cache_mode=force_generic_plan']),
  null, 'and each of them plans its statements once per session');

select * from finish();
rollback;
