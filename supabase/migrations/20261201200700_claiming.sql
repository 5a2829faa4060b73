/**
 * Claiming, again: fair across workspaces, inside the send window, under leases that cover the send.
 *
 *   - Fair claims. Claims went to the sender with the oldest due message until the batch was full:
 *     a workspace with a 3,000-message backlog on a fast sender filled every batch, and another
 *     workspace's one-time code waited behind all of it. Senders are now taken interleaved across
 *     workspaces (each workspace's first sender, then each one's second…), and the batch is shared
 *     among them round by round, so every sender with a due message gets its part of each claim:
 *     one workspace's backlog delays another's due message by at most one batch.
 *   - The send window at claim time. Quiet hours and daily limits were checked only when a
 *     message was queued: a backlog queued before the window began (a resumed pause, a dispatcher
 *     outage) went out at night. The claim checks them again and defers what falls outside, with
 *     the reason, as queueing does (confirm_send checks them once more right before the call).
 *   - Leases that cover the send. A batch could outlive its lease (slots up to half the lease
 *     away, then the provider call): the reaper re-queued messages the first dispatcher was about
 *     to send. Each message's lease now ends no earlier than its reserved slot plus the provider
 *     call's timeout (p_call_timeout), and confirm_send stretches it again when the call starts.
 */
drop function herald.claim_messages(integer, interval);
create function herald.claim_messages(
  p_limit integer default 100,
  p_lease interval default '2 minutes',
  p_call_timeout interval default '15 seconds'
)
returns table (
  message_id uuid,
  workspace_id uuid,
  attempt_no integer,
  to_phone text,
  from_phone text,
  body text,
  channel public.channel,
  send_not_before timestamptz,
  provider_check_required boolean,
  previous_attempt_requested_at timestamptz,
  blocked_reason public.cancel_reason
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[] := '{}';
  v_batch uuid[];
  v_skip uuid[];
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
  -- it can send within half the lease at its rate. Each workspace's first sender, then more until
  -- the batch can be filled.
  for s in
    select se.id, se.mps, due.n, row_number() over (partition by se.workspace_id order by due.oldest) as ws_rank
    from public.senders se
    join public.workspaces w on w.id = se.workspace_id
    cross join lateral (
      select count(*)::integer as n, min(d.send_at) as oldest from (
        select m.send_at from public.messages m
        where m.sender_id = se.id and m.status = 'queued' and m.send_at <= now()
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
    v_take := least(s.n, floor(extract(epoch from (now() + p_lease / 2 - v_free)) * s.mps)::integer + 1);
    continue when v_take < 1;
    v_senders := v_senders || s.id;
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
      where m.sender_id = v_senders[i] and m.status = 'queued' and m.send_at <= now()
      order by m.send_at
      limit v_takes[i]
      for update of m skip locked
    ) m;
    v_ids := v_ids || coalesce(v_batch, '{}');
  end loop;
  if cardinality(v_ids) = 0 then
    return;
  end if;

  -- 3. Eligibility, re-checked for the locked rows in the claiming transaction (see the comment
  -- of the first version): a blocked contact's message is cancelled with the reason. A message
  -- back from a lost lease is claimed whatever its contact's state: the dispatcher asks the
  -- provider first, and confirm_send cancels it if it was never sent.
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

  -- 4. The send window: quiet hours in the recipient's zone (materialized: once per message),
  -- then the daily limit of each workspace that has one. Deferred as queueing defers.
  v_prev := herald.set_reason('quiet_hours');
  with q as materialized (
    select m.id, herald.quiet_until(now(), coalesce(c.timezone, w.timezone), w.quiet_hours_start, w.quiet_hours_end) as until,
           least(interval '30 minutes',
                 case when w.quiet_hours_start > w.quiet_hours_end then w.quiet_hours_start - w.quiet_hours_end
                      else interval '24 hours' - (w.quiet_hours_end - w.quiet_hours_start) end / 4) as span
    from public.messages m
    join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
    join public.workspaces w on w.id = m.workspace_id
    where m.id = any (v_ids) and w.quiet_hours_start <> w.quiet_hours_end
  ), deferred as (
    update public.messages m set status = 'scheduled', send_at = q.until + herald.spread(m.id, q.span)
    from q where m.id = q.id and q.until is not null
    returning m.id
  ) select array_agg(d.id) into v_skip from deferred d;
  if v_skip is not null then
    v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
  end if;

  if exists (select 1 from public.workspaces w
             where w.daily_limit is not null and w.id in (select m.workspace_id from public.messages m where m.id = any (v_ids))) then
    perform herald.set_reason('daily_limit');
    with ws as (
      select w.id, w.daily_limit, w.timezone, herald.local_day_start(now(), w.timezone) as day_start
      from public.workspaces w
      where w.daily_limit is not null and w.id in (select m.workspace_id from public.messages m where m.id = any (v_ids))
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
    if v_skip is not null then
      v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
    end if;
  end if;
  perform herald.set_reason(v_prev);
  if cardinality(v_ids) = 0 then
    return;
  end if;

  -- 5. Slots 1/mps apart from each sender's next free one (its row is locked by this claim), and
  -- a lease that covers the slot and the provider call.
  return query
  with slotted as (
    select m.id, m.sender_id, se.mps, se.phone_number,
           greatest(sl.next_slot_at, now())
             + make_interval(secs => (row_number() over (partition by m.sender_id order by m.send_at, m.id) - 1) / se.mps) as slot
    from public.messages m
    join public.senders se on se.id = m.sender_id
    join herald.sender_slots sl on sl.sender_id = m.sender_id
    where m.id = any (v_ids)
  ), reserved as (
    update herald.sender_slots sl
    set next_slot_at = t.last_slot + make_interval(secs => 1 / t.mps)
    from (select sl2.sender_id, max(sl2.slot) as last_slot, max(sl2.mps) as mps from slotted sl2 group by sl2.sender_id) t
    where sl.sender_id = t.sender_id
    returning 1
  ), claimed as (
    update public.messages m
    set status = 'sending', lease_expires_at = greatest(now() + p_lease, t.slot + p_call_timeout), attempts = m.attempts + 1
    from slotted t
    where m.id = t.id
    returning m.id, m.workspace_id, m.contact_id, m.attempts, m.body, m.channel, m.provider_check_required,
              t.slot, t.phone_number
  ), attempts as (
    insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_status)
    select cl.workspace_id, cl.id, cl.attempts, 'requested' from claimed cl
    returning 1
  )
  select cl.id, cl.workspace_id, cl.attempts, c.phone, cl.phone_number, cl.body, cl.channel, cl.slot,
         cl.provider_check_required,
         (select a.requested_at from public.message_attempts a
          where a.workspace_id = cl.workspace_id and a.message_id = cl.id and a.attempt_no = cl.attempts - 1),
         herald.contact_block_reason(c)
  from claimed cl
  join public.contacts c on c.workspace_id = cl.workspace_id and c.id = cl.contact_id
  order by cl.slot;
end;
$$;
comment on function herald.claim_messages(integer, interval, interval) is 'Claims due queued messages for sending (for update skip locked), shared fairly across workspaces and their senders, deferring what falls in quiet hours or over a daily limit, with one attempt row each, the time each may go out (every sender''s mps holds across dispatchers) and a lease covering that slot plus the provider call.';
revoke execute on function herald.claim_messages(integer, interval, interval) from public, authenticated;
grant execute on function herald.claim_messages(integer, interval, interval) to service_role;
