/**
 * The dispatcher's plans hold on tables that grow, and are made once per session.
 *
 * The same trap as the status callbacks' (…_callback_plans.sql), on the dispatcher's path: its
 * connections live long, PL/pgSQL keeps each statement's plan for the session, and after five
 * calls the session may settle on a generic plan costed for the tables as they were then, kept
 * until the next ANALYZE. Planned while messages, message_attempts and contacts held a few rows
 * (a new project's first sends), the claim, the confirmations and the record read those tables
 * whole for every batch, the foreign-key checks their writes fire among them: a cycle of four
 * messages after 800 more had arrived scanned them whole 63 times (dispatch_plans.test.sql).
 *
 * Every row the dispatcher reads or writes it reaches by a key (an id, a sender's due messages,
 * a contact), for at most a batch: an index probe is the right plan at any size.
 *   - The five entry points run with enable_seqscan off, so a statement planned while they run
 *     (their own, the helpers they call, the foreign-key checks and triggers their writes fire)
 *     reads a table sequentially only where no index serves it (quiet_hour_rules, a short
 *     reference table).
 *   - And with jit off. A plan that still reads a table sequentially carries the planner's
 *     penalty for it (10^10 in its cost), far over jit_above_cost: each such statement was
 *     compiled by LLVM on every call, 200-500 ms a time, and a claim of 250 messages, which
 *     reads the quiet-hour rules per message, took 18 s. apply_status_callbacks
 *     (…_callback_plans.sql) runs with enable_seqscan off too and gets jit off here; none of
 *     these statements reads enough rows for compiling to pay.
 *   - Where a join still let a small-table plan read an index whole, the statement probes:
 *     claim_messages reads its batch by primary key alone and takes the workspaces whose daily
 *     limits apply from its senders (plans walked other indexes of messages whole and filtered
 *     the batch out), its update names the batch's ids as an index condition (a plan read
 *     messages_pkey whole to hash-join the batch), and it and apply_send_rules find each
 *     message's contact by one probe (plans read every contact, or every contact of the
 *     workspace for each message).
 * Plans made on large tables were already these probes.
 *
 * With every statement a probe, a plan made once serves at any size, so these functions now
 * plan each statement once per session (plan_cache_mode = force_generic_plan). Under auto,
 * PL/pgSQL made a new plan on every call wherever one made for the call's arrays looked cheaper
 * than one made for any arrays (costed for ten elements): a confirmation of one message always
 * did. In a drain of 20,000 one-message confirmations its main statement was planned 20,052
 * times in 20,080 calls (12.3 s of planning), and the lease and attempt updates as often. On
 * the peers bench, server CPU per 1,000 messages went from ~2.2 s to 1.42 s for one round trip
 * per message, from ~362 ms to 333 batched, and ~193 ms to 177 for the claim alone. The same
 * setting was measured before and left out (…_plans_made_once.sql) because then a plan made on
 * a first drain's small tables scanned them whole; the probes above are what make it safe.
 *
 *   claim_messages, apply_send_rules   as before; the batch and the contacts by probes.
 *   confirm_send, confirm_send_each, record_send_results, record_send_result
 *                                      as before, with enable_seqscan and jit off, planned once.
 *   apply_status_callbacks             as before, with jit off, planned once.
 */

/** Section - the claim */
create or replace function herald.claim_messages(p_limit integer default 100, p_lease interval default '00:02:00'::interval, p_call_timeout interval default '00:00:15'::interval) returns table (message_id uuid, workspace_id uuid, attempt_no integer, to_phone text, from_phone text, body text, content_sid text, content_variables jsonb, validity_period integer, channel public.channel, send_not_before timestamp with time zone, provider_check_required boolean, previous_attempt_requested_at timestamp with time zone, blocked_reason public.cancel_reason)
language plpgsql
security definer
set search_path = ''
-- Every table it reads it reaches through an index, whatever size the table was when a plan was
-- made; no plan is compiled (a sequential read's penalty would put it over jit_above_cost); and
-- each statement is planned once per session.
set enable_seqscan = off
set jit = off
set plan_cache_mode = force_generic_plan
as $$
declare
  v_ids uuid[] := '{}';
  v_batch uuid[];
  v_workspaces uuid[] := '{}';
  v_skip uuid[];
  v_errors text[];
  v_senders uuid[] := '{}';
  v_caps integer[] := '{}';
  v_takes integer[] := '{}';
  v_left integer := p_limit;
  v_open integer;
  v_step integer;
  v_take integer;
  v_free timestamptz;
  v_prev text;
  s record;
begin
  if p_limit is null or p_limit < 1 or p_limit > 5000 then
    raise exception 'limit must be between 1 and 5000' using errcode = '22023';
  end if;
  if p_lease is null or p_lease < interval '10 seconds' then
    raise exception 'lease must be at least 10 seconds' using errcode = '22023';
  end if;
  if p_call_timeout is null or p_call_timeout < interval '0' then
    raise exception 'the provider call timeout must not be negative' using errcode = '22023';
  end if;
  perform set_config('herald.actor', 'dispatcher', true);

  -- 1. The senders to claim from, interleaved across workspaces, each held (its slot row locked,
  -- skipping any another claimer holds) with what it can take: its due messages, and no more than
  -- start within half the lease at its rate, in segments (`starts`: the segments ahead of each
  -- due message, oldest first; a WhatsApp message is one). Each workspace's first sender, then
  -- more until the batch can be filled.
  for s in
    select se.id, se.workspace_id, se.mps, due.n, due.starts,
           row_number() over (partition by se.workspace_id order by due.oldest) as ws_rank
    from public.senders se
    join public.workspaces w on w.id = se.workspace_id
    cross join lateral (
      select count(*)::integer as n, min(d.send_at) as oldest, array_agg(d.ahead order by d.send_at) as starts from (
        select m.send_at,
               coalesce(sum(case when m.channel = 'whatsapp' then 1 else m.segments end)
                          over (order by m.send_at rows between unbounded preceding and 1 preceding), 0) as ahead
        from public.messages m
        where m.sender_id = se.id and m.pending_status = 'queued' and m.send_at <= now()
        order by m.send_at limit p_limit
      ) d
    ) due
    where w.automation_enabled and se.phone_number is not null and due.n > 0
    order by row_number() over (partition by se.workspace_id order by due.oldest), due.oldest
  loop
    -- Every workspace's first sender is taken; past those, no more senders than the batch needs,
    -- so other claimers find senders free and claim side by side.
    exit when cardinality(v_senders) >= p_limit
      or (s.ws_rank > 1 and (select coalesce(sum(c), 0) from unnest(v_caps) c) >= p_limit);
    select greatest(sl.next_slot_at, now()) into v_free
    from herald.sender_slots sl where sl.sender_id = s.id
    for update skip locked;
    continue when not found;
    v_take := (select count(*) from unnest(s.starts) a
               where a <= floor(extract(epoch from (now() + p_lease / 2 - v_free)) * s.mps))::integer;
    continue when v_take < 1;
    v_senders := v_senders || s.id;
    v_workspaces := v_workspaces || s.workspace_id;
    v_caps := v_caps || v_take;
    v_takes := v_takes || 0;
  end loop;

  -- 2. The batch shared round by round: each round gives every sender that can take more an
  -- equal part of what is left (at least one), in the interleaved order.
  loop
    v_open := (select count(*) from generate_subscripts(v_senders, 1) i where v_takes[i] < v_caps[i]);
    exit when v_open = 0 or v_left = 0;
    v_step := greatest(1, v_left / v_open);
    for i in 1 .. cardinality(v_senders) loop
      exit when v_left = 0;
      v_take := least(v_step, v_caps[i] - v_takes[i], v_left);
      if v_take > 0 then
        v_takes[i] := v_takes[i] + v_take;
        v_left := v_left - v_take;
      end if;
    end loop;
  end loop;

  for i in 1 .. coalesce(cardinality(v_senders), 0) loop
    continue when v_takes[i] = 0;
    select array_agg(m.id) into v_batch
    from (
      select m.id from public.messages m
      where m.sender_id = v_senders[i] and m.pending_status = 'queued' and m.send_at <= now()
      order by m.send_at
      limit v_takes[i]
      for update of m skip locked
    ) m;
    v_ids := v_ids || coalesce(v_batch, '{}');
  end loop;
  if cardinality(v_ids) = 0 then
    return;
  end if;

  -- 3. Eligibility, re-checked for the locked rows in the claiming transaction: a blocked
  -- contact's message is cancelled with the reason. A message back from a lost lease is claimed
  -- whatever its contact's state: the dispatcher asks the provider first, and confirm_send
  -- cancels it if it was never sent.
  select array_agg(m.id) into v_skip
  from public.messages m
  join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
  where m.id = any (v_ids) and not m.provider_check_required and herald.contact_block_reason(c) is not null;
  if v_skip is not null then
    update public.messages m
    set status = 'cancelled', cancel_reason = herald.contact_block_reason(c), cancelled_at = now()
    from public.contacts c
    where m.id = any (v_skip) and c.workspace_id = m.workspace_id and c.id = m.contact_id;
    v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
  end if;

  -- 4. The send window (herald.apply_send_rules: legal and workspace hours in every zone the
  -- recipient may be in, consent, the deadline; the per-contact cap was applied at queueing and
  -- counts queued messages).
  select array_agg(r.message_id) into v_skip
  from herald.apply_send_rules(array(select m.id from public.messages m
                                     where m.id = any (v_ids) and not m.provider_check_required), now(), false) r
  where r.outcome <> 'send';
  if v_skip is not null then
    v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
  end if;

  -- 5. What cannot be sent at all fails here, before any provider call and before it takes room
  -- under the daily limit: WhatsApp outside the contact's 24-hour window without a template
  -- (herald.outbound_content). A message back from a lost lease may be at Twilio already: the
  -- dispatcher looks it up first, and confirm_send refuses it if it was never sent.
  -- Only WhatsApp has a window (outbound_content refuses nothing else): SMS skips the look.
  select array_agg(m.id), array_agg(o.refusal_message) into v_skip, v_errors
  from public.messages m
  join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
  cross join lateral herald.outbound_content(m, c, now()) o
  where m.id = any (v_ids) and m.channel = 'whatsapp' and not m.provider_check_required and o.refusal is not null;
  if v_skip is not null then
    v_prev := herald.set_reason('template_required');
    update public.messages m
    set status = 'failed', failed_at = now(), last_error = x.error
    from unnest(v_skip, v_errors) x(id, error)
    where m.id = x.id;
    perform herald.set_reason(v_prev);
    v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
  end if;

  -- 6. The daily limit of each workspace that has one (of the senders' workspaces: as a
  -- semi-join with the batch, a plan made on a small table read an index of messages whole).
  if exists (select 1 from public.workspaces w where w.daily_limit is not null and w.id = any (v_workspaces)) then
    v_prev := herald.set_reason('daily_limit');
    with ws as (
      select w.id, w.daily_limit, w.timezone, herald.local_day_start(now(), w.timezone) as day_start
      from public.workspaces w
      where w.daily_limit is not null and w.id = any (v_workspaces)
    ), ranked as (
      select m.id, ws.daily_limit - herald.day_use(ws.id, ws.day_start) as room, ws.timezone, ws.day_start,
             row_number() over (partition by m.workspace_id order by m.send_at, m.id) as n
      from public.messages m join ws on ws.id = m.workspace_id
      where m.id = any (v_ids)
    ), deferred as (
      update public.messages m
      set status = 'scheduled',
          send_at = ((r.day_start at time zone r.timezone) + interval '1 day') at time zone r.timezone
                    + herald.spread(m.id, interval '30 minutes')
      from ranked r where m.id = r.id and r.n > greatest(r.room, 0)
      returning m.id
    ) select array_agg(d.id) into v_skip from deferred d;
    perform herald.set_reason(v_prev);
    if v_skip is not null then
      v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
    end if;
  end if;
  if cardinality(v_ids) = 0 then
    return;
  end if;

  -- 7. Slots from each sender's next free one (its row is locked by this claim), each message
  -- after the segments ahead of it at the sender's rate, and the sender's next free slot after
  -- the last one's segments; a lease that covers the slot and the provider call. What the call
  -- carries is decided for the message as it is now (herald.outbound_content), with the seconds
  -- its deadline leaves at its slot.
  return query
  with batch as materialized (
    -- The batch by primary key alone: beside the joins, a plan made on a small table walked
    -- another index of messages whole and filtered the batch out of it.
    select m.id, m.sender_id, m.send_at, m.channel, m.segments from public.messages m where m.id = any (v_ids)
  ), slotted as (
    select m.id, m.sender_id, se.mps, se.phone_number, x.base,
           x.base + make_interval(secs => coalesce(sum(x.units) over w_before, 0) / se.mps) as slot,
           x.base + make_interval(secs => sum(x.units) over w_through / se.mps) as slot_end
    from batch m
    join public.senders se on se.id = m.sender_id
    join herald.sender_slots sl on sl.sender_id = m.sender_id
    cross join lateral (select greatest(sl.next_slot_at, now()) as base,
                               case when m.channel = 'whatsapp' then 1 else m.segments end as units) x
    window w_before as (partition by m.sender_id order by m.send_at, m.id rows between unbounded preceding and 1 preceding),
           w_through as (partition by m.sender_id order by m.send_at, m.id rows unbounded preceding)
  ), reserved as (
    update herald.sender_slots sl
    set next_slot_at = t.next_free
    from (select sl2.sender_id, max(sl2.slot_end) as next_free from slotted sl2 group by sl2.sender_id) t
    where sl.sender_id = t.sender_id
    returning 1
  ), claimed as (
    update public.messages m
    set status = 'sending', lease_expires_at = greatest(now() + p_lease, t.slot + p_call_timeout), attempts = m.attempts + 1
    from slotted t
    where m.id = t.id and m.id = any (v_ids)
    returning m.id, m.workspace_id, m.contact_id, m.attempts, m.body, m.channel, m.provider_check_required,
              m.expires_at, t.slot, t.phone_number
  ), attempts as (
    insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_status)
    select cl.workspace_id, cl.id, cl.attempts, 'requested' from claimed cl
    returning 1
  )
  select cl.id, cl.workspace_id, cl.attempts, (cc.c).phone, cl.phone_number, cl.body,
         o.content_sid, o.content_variables, herald.validity_period_seconds(cl.expires_at, cl.slot),
         cl.channel, cl.slot, cl.provider_check_required,
         (select a.requested_at from public.message_attempts a
          where a.workspace_id = cl.workspace_id and a.message_id = cl.id and a.attempt_no = cl.attempts - 1),
         herald.contact_block_reason(cc.c)
  from claimed cl
  -- Each message's contact by one probe: as a join, a plan made on a small table read contacts whole.
  cross join lateral (select c from public.contacts c where c.workspace_id = cl.workspace_id and c.id = cl.contact_id
                      limit 1) cc
  -- The message as it was before this statement's update: what it carries has not changed. SMS
  -- always goes as its body, so only WhatsApp asks.
  left join lateral (
    select x.content_sid, x.content_variables
    from public.messages m cross join lateral herald.outbound_content(m, cc.c, now()) x
    where cl.channel = 'whatsapp' and m.id = cl.id
  ) o on true
  order by cl.slot;
end;
$$;


/** Section - the send rules of a batch */
create or replace function herald.apply_send_rules(p_ids uuid[], p_at timestamptz, p_apply_caps boolean)
returns table (message_id uuid, outcome text, reason text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[];
  v_cancel public.cancel_reason[];
  v_defer text[];
  v_until timestamptz[];
  v_prev text;
begin
  -- Decided once per message (send_rule reads the zones and the contact's day), then applied
  -- one statement per outcome so the ledger records each with its reason.
  select array_agg(b.id), array_agg(r.cancel_reason), array_agg(r.defer_reason), array_agg(r.defer_until)
  into v_ids, v_cancel, v_defer, v_until
  from (
    select m.id, m as msg, cc.c as contact, w as workspace,
           case when p_apply_caps then
             (count(*) filter (where m.category = 'marketing')
                over (partition by m.contact_id order by m.send_at, m.id rows between unbounded preceding and 1 preceding))::integer
           end as pending
    from public.messages m
    -- Each message's contact by one probe: as a join, a plan made on a small table looked the
    -- contact up by workspace alone and read all of the workspace's contacts for each message.
    cross join lateral (select c from public.contacts c where c.workspace_id = m.workspace_id and c.id = m.contact_id
                        limit 1) cc
    join public.workspaces w on w.id = m.workspace_id
    where m.id = any (p_ids)
  ) b
  cross join lateral herald.send_rule(b.msg, b.contact, b.workspace, p_at, b.pending) r;
  if v_ids is null then
    return;
  end if;

  update public.messages m
  set status = 'cancelled', cancel_reason = x.reason, cancelled_at = now()
  from unnest(v_ids, v_cancel) x(id, reason) where m.id = x.id and x.reason is not null;
  v_prev := herald.set_reason('quiet_hours');
  update public.messages m set status = 'scheduled', send_at = x.until
  from unnest(v_ids, v_defer, v_until) x(id, reason, until) where m.id = x.id and x.reason = 'quiet_hours';
  perform herald.set_reason('frequency_cap');
  update public.messages m set status = 'scheduled', send_at = x.until
  from unnest(v_ids, v_defer, v_until) x(id, reason, until) where m.id = x.id and x.reason = 'frequency_cap';
  perform herald.set_reason(v_prev);

  return query
  select x.id,
         case when x.c is not null then 'cancelled' when x.d is not null then 'deferred' else 'send' end,
         coalesce(x.c::text, x.d)
  from unnest(v_ids, v_cancel, v_defer) x(id, c, d);
end;
$$;

/** Section - the confirmation, the record and the status callbacks */
alter function herald.confirm_send(uuid[], integer[], interval)
  set enable_seqscan = off set jit = off set plan_cache_mode = force_generic_plan;
alter function herald.confirm_send_each(uuid[], integer[], interval)
  set enable_seqscan = off set jit = off set plan_cache_mode = force_generic_plan;
alter function herald.record_send_results(uuid[], integer[], text[], text[], text[], integer[], text[], integer[])
  set enable_seqscan = off set jit = off set plan_cache_mode = force_generic_plan;
alter function herald.record_send_result(uuid, integer, text, text, text, integer, text, integer)
  set enable_seqscan = off set jit = off set plan_cache_mode = force_generic_plan;
alter function herald.apply_status_callbacks(text[], text[], integer[], jsonb[], text[])
  set jit = off set plan_cache_mode = force_generic_plan;
