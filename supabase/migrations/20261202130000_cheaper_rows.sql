/**
 * Cheaper message rows. Every dispatched message is updated three times or more (claimed, its
 * lease stretched before the provider call, its answer recorded, then each status callback),
 * and every update of a message fired the ledger trigger, which planned two statements through
 * EXECUTE (and the SQL functions they called) afresh each time, whether or not the update moved
 * anything: about a third of the database's time per dispatched message.
 *
 *   - The ledger triggers run static statements over the transition tables, prepared once per
 *     session. herald.messages_ledger_update writes the ledger rows and checks the status graph
 *     in one statement; an update that moves neither status nor send_at (the lease stretched
 *     before the provider call, a sid recorded) finds no row, computes no actor and writes
 *     nothing. The graph is folded into the plan as a constant (herald.message_moves) instead of
 *     a SQL function called, and planned, per statement. What the ledger records and what it
 *     refuses (55000) are unchanged.
 *   - messages_workspace_created_idx goes: no query filters or orders messages by created_at;
 *     the lookups by workspace that used it have three other indexes led by workspace_id, and
 *     every insert and every update that is not HOT paid for one more index entry.
 *   - messages keeps a fifth of each new page free, so an update that changes no indexed
 *     column (the lease stretch, whose new expiry is usually the claim's own) finds room on
 *     its page and is HOT: no index entry at all. Status moves cannot be HOT: status is in the
 *     predicates of the partial indexes the claims, the queueing, the reaper and the reports
 *     read.
 */

/** Section - the status graph as one constant */
-- The graph stays written once, in herald.message_transition_ok. A function call in a trigger's
-- statement is evaluated per row and, being a SQL function with its own search_path, is never
-- inlined: its body is parsed and planned again for every statement that calls it. The moves as
-- one immutable function of no argument are folded into a constant array when the trigger's
-- statement is planned, once per session, and checking a row against it costs a comparison.
create function herald.message_moves() returns text[]
language sql
immutable
parallel safe
set search_path = ''
as $$
  select array_agg(f::text || '>' || t::text order by f, t)
  from unnest(enum_range(null::public.message_status)) f, unnest(enum_range(null::public.message_status)) t
  where f <> t and herald.message_transition_ok(f, t)
$$;
comment on function herald.message_moves() is 'Every move of the message status graph (herald.message_transition_ok) between two different statuses, as ''from>to'': a constant the ledger trigger''s plan folds in.';
revoke all on function herald.message_moves() from public;

/** Section - the ledger in static statements */
-- Static statements over the transition tables: PL/pgSQL prepares each once per session and
-- keeps its plan (EXECUTE planned both statements, and the functions they called, on every
-- update of a message). The tables carry no statistics and the plan is kept from the first
-- firing, often a one-row statement, for which the planner would join old and new rows by
-- nested loop: kept, that loop compares every old row with every new one in a 20,000-row
-- update (queueing, cancelling a sequence). The join is therefore written as a full join,
-- which a nested loop cannot do: it is hashed (or merged) at any size. Both sides hold the
-- same ids (an update that changed a message's id fails its ledger's foreign key before this
-- trigger runs), so it pairs exactly the rows an inner join would. A planner setting such as
-- enable_nestloop = off on the function would reach every statement nested in it too, and its
-- cost penalty switches JIT compilation on for them.
create or replace function herald.messages_ledger_insert() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.message_events (workspace_id, message_id, from_status, to_status, reason, actor)
  select n.workspace_id, n.id, null, n.status,
         coalesce(n.cancel_reason::text, (select coalesce(nullif(current_setting('herald.reason', true), ''), 'created'))),
         (select herald.current_actor())
  from new_rows n;
  return null;
end;
$$;
comment on function herald.messages_ledger_insert() is 'Ledger: one message_events row per new message.';

-- One statement per firing: the rows whose status or send_at changed are written to the ledger
-- and, in the same statement, checked against the graph; a move outside it raises, and the
-- whole UPDATE (ledger rows included) is undone. An update that moves neither (a dispatcher
-- stretching its lease, a provider sid recorded) finds no row and writes nothing: the actor and
-- the reason are scalar subqueries, evaluated only once a row needs them.
create or replace function herald.messages_ledger_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_bad record;
begin
  with ledger as (
    insert into public.message_events (workspace_id, message_id, from_status, to_status, reason, actor, detail)
    select n.workspace_id, n.id, o.status, n.status,
           case
             when n.status = 'cancelled' then n.cancel_reason::text
             when n.status = any (herald.failed_statuses()) and n.last_error_code is not null
               then coalesce((select nullif(current_setting('herald.reason', true), '')), 'provider_error_' || n.last_error_code)
             else (select nullif(current_setting('herald.reason', true), ''))
           end,
           (select herald.current_actor()),
           case when o.send_at is distinct from n.send_at
             then jsonb_build_object('send_at_from', o.send_at, 'send_at_to', n.send_at) end
    from old_rows o full join new_rows n on n.id = o.id
    where o.status is distinct from n.status or o.send_at is distinct from n.send_at
    returning message_id, from_status, to_status
  )
  select l.message_id as id, l.from_status, l.to_status into v_bad
  from ledger l
  where l.from_status <> l.to_status and not (l.from_status::text || '>' || l.to_status::text) = any (herald.message_moves())
  order by l.message_id
  limit 1;
  if found then
    raise exception 'message % cannot go from % to %', v_bad.id, v_bad.from_status, v_bad.to_status
      using errcode = '55000', hint = 'A message only moves forward; cancelled, failed, undelivered and read are final.';
  end if;
  return null;
end;
$$;
comment on function herald.messages_ledger_update() is 'Ledger: rejects a move outside the status graph (55000); one message_events row per status change or send_at move, with reason and actor.';

/** Section - indexes and room for HOT updates */
drop index public.messages_workspace_created_idx;

-- Fill factor applies to pages written from now on; existing pages keep what they have.
alter table public.messages set (fillfactor = 80);
