/**
 * The law and the recipient on the send path. The rules of consent, legal sending hours, the
 * recipient's zones, per-contact caps and send-by deadlines (their own migrations) are applied
 * where a message moves: when pg_cron queues it, when a dispatcher claims it, and right before
 * the provider call. One function decides for one message (herald.send_rule) and one applies a
 * batch of decisions (herald.apply_send_rules), so the three places cannot drift apart.
 *
 *   cancelled   opted out, deleted or taken over (herald.contact_block_reason); marketing without
 *               consent where the workspace requires it (no_consent); past its deadline, or a
 *               wait that would pass it (expired); marketing that no window allows at all: the
 *               workspace's quiet hours leave nothing of the legal hours (no_send_window)
 *   deferred    to the first instant every zone the recipient may be in allows (quiet_hours), or
 *               for marketing over the contact's daily cap to the next day's window (frequency_cap)
 */
alter type public.cancel_reason add value if not exists 'no_send_window';

/** Section - one message */
create function herald.send_rule(
  p_message public.messages,
  p_contact public.contacts,
  p_workspace public.workspaces,
  p_at timestamptz,
  p_pending integer,
  out cancel_reason public.cancel_reason,
  out defer_reason text,
  out defer_until timestamptz
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_open timestamptz;
  -- spread a deferred batch over a quarter of the workspace's open window, at most 30 minutes
  v_span interval := least(interval '30 minutes',
    case when p_workspace.quiet_hours_start = p_workspace.quiet_hours_end then interval '24 hours'
         when p_workspace.quiet_hours_start > p_workspace.quiet_hours_end then p_workspace.quiet_hours_start - p_workspace.quiet_hours_end
         else interval '24 hours' - (p_workspace.quiet_hours_end - p_workspace.quiet_hours_start) end / 4);
begin
  cancel_reason := coalesce(herald.contact_block_reason(p_contact),
                            herald.consent_block_reason(p_contact, p_message.channel, p_message.category));
  if cancel_reason is null and p_message.expires_at <= p_at then
    cancel_reason := 'expired';
  end if;
  if cancel_reason is not null then
    return;
  end if;
  v_open := herald.allowed_send_time(p_contact, p_message.category, p_workspace, p_at);
  if v_open is null then
    cancel_reason := 'no_send_window';
    return;
  end if;
  if v_open > p_at then
    defer_reason := 'quiet_hours';
    defer_until := v_open + herald.spread(p_message.id, v_span);
  elsif p_pending is not null and p_message.category = 'marketing' then
    defer_until := herald.contact_cap_next_time(p_contact, p_at, p_pending);
    if defer_until is not null then
      defer_reason := 'frequency_cap';
      defer_until := defer_until + herald.spread(p_message.id, v_span);
    end if;
  end if;
  if defer_until >= p_message.expires_at then
    cancel_reason := 'expired';
    defer_reason := null;
    defer_until := null;
  end if;
end;
$$;
comment on function herald.send_rule(public.messages, public.contacts, public.workspaces, timestamptz, integer) is 'Whether this message may be sent at p_at: a cancel reason, or a deferral (quiet_hours, frequency_cap) and the instant to wait for, or neither. p_pending counts the contact''s earlier marketing messages of the same batch; null skips the per-contact cap (claims and confirmations: the cap was applied at queueing).';
revoke execute on function herald.send_rule(public.messages, public.contacts, public.workspaces, timestamptz, integer) from public;
grant execute on function herald.send_rule(public.messages, public.contacts, public.workspaces, timestamptz, integer) to service_role;

/** Section - a batch */
create function herald.apply_send_rules(p_ids uuid[], p_at timestamptz, p_apply_caps boolean)
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
    select m.id, m as msg, c as contact, w as workspace,
           case when p_apply_caps then
             (count(*) filter (where m.category = 'marketing')
                over (partition by m.contact_id order by m.send_at, m.id rows between unbounded preceding and 1 preceding))::integer
           end as pending
    from public.messages m
    join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
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
comment on function herald.apply_send_rules(uuid[], timestamptz, boolean) is 'Applies herald.send_rule to a batch of scheduled or queued messages: cancels (with the reason) or defers (back to scheduled, ledger reason quiet_hours or frequency_cap) those that may not go at p_at, and says for each message what became of it. p_apply_caps: queueing counts the per-contact cap; claims do not.';
revoke execute on function herald.apply_send_rules(uuid[], timestamptz, boolean) from public;
grant execute on function herald.apply_send_rules(uuid[], timestamptz, boolean) to service_role;

/** Section - queueing */
create or replace function herald.queue_due_messages(p_limit integer default 20000, p_now timestamptz default now()) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[];
  v_cancelled integer;
  v_failed integer;
  v_quiet integer;
  v_ruled_out integer;
  v_limited integer;
  v_queued integer;
  v_prev text;
begin
  perform set_config('herald.actor', coalesce(nullif(current_setting('herald.actor', true), ''), 'cron'), true);
  -- Paused workspaces are left out here, so their held backlog cannot starve anyone else's.
  select array_agg(id) into v_ids from (
    select m.id from public.messages m
    join public.workspaces w on w.id = m.workspace_id
    where m.status = 'scheduled' and m.send_at <= p_now and w.automation_enabled
    order by m.send_at
    limit p_limit
    for update of m skip locked
  ) due;
  if v_ids is null then
    return jsonb_build_object('queued', 0, 'cancelled', 0, 'failed', 0, 'deferred_quiet_hours', 0, 'deferred_daily_limit', 0);
  end if;

  -- 1. Whatever may no longer be sent is cancelled, with the reason.
  with verdict as (
    select m.id,
           case
             when herald.contact_block_reason(c) is not null then herald.contact_block_reason(c)
             when m.appointment_id is not null and a.status = 'completed' then 'appointment_completed'
             when m.appointment_id is not null and a.status is distinct from 'scheduled' then 'appointment_cancelled'
             when m.enrollment_id is not null and e.status is distinct from 'active' then 'sequence_stopped'
             when m.expires_at <= p_now then 'expired'
             else herald.consent_block_reason(c, m.channel, m.category)
           end as reason
    from public.messages m
    join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
    left join public.appointments a on a.workspace_id = m.workspace_id and a.id = m.appointment_id
    left join public.sequence_enrollments e on e.workspace_id = m.workspace_id and e.id = m.enrollment_id
    where m.id = any (v_ids)
  ), done as (
    update public.messages m set status = 'cancelled', cancel_reason = v.reason, cancelled_at = now()
    from verdict v where m.id = v.id and v.reason is not null
    returning 1
  ) select count(*) into v_cancelled from done;

  -- 2. Nothing to send from: failed, visibly, rather than stuck.
  v_prev := herald.set_reason('no_sender');
  with done as (
    update public.messages m
    set status = 'failed', failed_at = now(), last_error = 'no sender: the message names none and the workspace has no default '
          || m.channel || ' sender with a phone number'
    where m.id = any (v_ids) and m.status = 'scheduled'
      and not exists (
        select 1 from public.senders s
        where s.workspace_id = m.workspace_id and s.channel = m.channel and s.phone_number is not null
          and (s.id = m.sender_id or (m.sender_id is null and s.is_default))
      )
    returning 1
  ) select count(*) into v_failed from done;

  -- 3. The sending window and the contact's cap (herald.apply_send_rules): legal hours and the
  -- workspace's quiet hours in every zone the recipient may be in, a deadline the wait would
  -- pass, and for marketing the per-contact daily cap, counting this batch's earlier messages.
  select count(*) filter (where r.outcome = 'deferred'), count(*) filter (where r.outcome = 'cancelled')
  into v_quiet, v_ruled_out
  from herald.apply_send_rules(array(select m.id from public.messages m
                                     where m.id = any (v_ids) and m.status = 'scheduled'), p_now, true) r;
  v_cancelled := v_cancelled + v_ruled_out;

  -- 4. Daily limit per workspace-local day: what is already sent or on its way today counts.
  perform herald.set_reason('daily_limit');
  with ws as (
    select w.id, w.daily_limit, w.timezone,
           (date_trunc('day', p_now at time zone w.timezone)) at time zone w.timezone as day_start
    from public.workspaces w
    where w.daily_limit is not null
      and w.id in (select m.workspace_id from public.messages m where m.id = any (v_ids) and m.status = 'scheduled' and m.send_at <= p_now)
  ), used as (
    select ws.id, ws.daily_limit, ws.timezone, ws.day_start,
           (select count(*) from public.messages m
            where m.workspace_id = ws.id
              and (m.status = 'queued' or m.status = any (herald.in_flight_statuses()) or m.sent_at >= ws.day_start)) as used
    from ws
  ), ranked as (
    select m.id, u.daily_limit - u.used as room, u.timezone, u.day_start,
           row_number() over (partition by m.workspace_id order by m.send_at, m.id) as n
    from public.messages m join used u on u.id = m.workspace_id
    where m.id = any (v_ids) and m.status = 'scheduled' and m.send_at <= p_now
  ), done as (
    update public.messages m
    set send_at = ((r.day_start at time zone r.timezone) + interval '1 day') at time zone r.timezone
                  + herald.spread(m.id, interval '30 minutes')
    from ranked r where m.id = r.id and r.n > greatest(r.room, 0)
    returning 1
  ) select count(*) into v_limited from done;

  -- 5. The rest is queued for the dispatcher (messages_bind_sender binds the default sender of
  -- those that name none; step 2 made sure there is one).
  perform herald.set_reason(null);
  with done as (
    update public.messages m set status = 'queued'
    where m.id = any (v_ids) and m.status = 'scheduled' and m.send_at <= p_now
    returning 1
  ) select count(*) into v_queued from done;
  perform herald.set_reason(v_prev);

  return jsonb_build_object('queued', v_queued, 'cancelled', v_cancelled, 'failed', v_failed,
                            'deferred_quiet_hours', v_quiet, 'deferred_daily_limit', v_limited);
end;
$$;
comment on function herald.queue_due_messages(integer, timestamptz) is 'pg_cron, every minute: validates due scheduled messages in SQL and queues, defers, fails or cancels each with a reason. p_now is the clock (tests pass a fixed one).';
revoke execute on function herald.queue_due_messages(integer, timestamptz) from public, authenticated;
grant execute on function herald.queue_due_messages(integer, timestamptz) to service_role;

/** Section - claiming */
create or replace function herald.claim_messages(
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

  -- 4. The send window (herald.apply_send_rules: legal and workspace hours in every zone the
  -- recipient may be in, consent, the deadline; the per-contact cap was applied at queueing and
  -- counts queued messages), then the daily limit of each workspace that has one.
  select array_agg(r.message_id) into v_skip
  from herald.apply_send_rules(array(select m.id from public.messages m
                                     where m.id = any (v_ids) and not m.provider_check_required), now(), false) r
  where r.outcome <> 'send';
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

/** Section - the confirmation before the provider call */
create or replace function herald.confirm_send(
  p_message_ids uuid[],
  p_attempt_nos integer[],
  p_call_timeout interval default '15 seconds'
) returns table (message_id uuid, verdict text, reason text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  m public.messages;
  c public.contacts;
  w public.workspaces;
  v_block public.cancel_reason;
  v_rule record;
  v_day timestamptz;
begin
  if p_message_ids is null or p_attempt_nos is null or cardinality(p_message_ids) <> cardinality(p_attempt_nos) then
    raise exception 'message ids and attempt numbers must pair up' using errcode = '22023';
  end if;
  if p_call_timeout is null or p_call_timeout <= interval '0' then
    raise exception 'the provider call timeout must be positive' using errcode = '22023';
  end if;
  perform set_config('herald.actor', 'dispatcher', true);
  for i in 1 .. cardinality(p_message_ids) loop
    message_id := p_message_ids[i];
    verdict := 'skip';
    reason := null;
    select * into m from public.messages x where x.id = p_message_ids[i] for update;
    if not found then
      reason := 'gone';
    elsif m.status <> 'sending' or m.attempts <> p_attempt_nos[i] then
      reason := 'not_ours'; -- recorded meanwhile, or reaped and claimed again by another attempt
    elsif m.lease_expires_at <= now() then
      reason := 'lease_expired'; -- the reaper takes it back; sending now could send it twice
    else
      select * into c from public.contacts x where x.workspace_id = m.workspace_id and x.id = m.contact_id;
      select * into w from public.workspaces x where x.id = m.workspace_id;
      select r.cancel_reason, r.defer_reason, r.defer_until into v_rule
      from herald.send_rule(m, c, w, now(), null) r;
      v_block := v_rule.cancel_reason;
      if v_block is not null then
        update public.messages
        set status = 'cancelled', cancel_reason = v_block, cancelled_at = now(), lease_expires_at = null,
            attempts = attempts - 1
        where id = m.id;
        delete from public.message_attempts a where a.message_id = m.id and a.attempt_no = m.attempts;
        verdict := 'cancelled';
        reason := v_block::text;
      elsif v_rule.defer_reason is not null then
        perform herald.defer_sending(m.id, m.attempts, v_rule.defer_until, v_rule.defer_reason);
        verdict := 'deferred';
        reason := v_rule.defer_reason;
      elsif w.daily_limit is not null
            and herald.day_use(w.id, herald.local_day_start(now(), w.timezone)) > w.daily_limit then
        v_day := herald.local_day_start(now(), w.timezone);
        perform herald.defer_sending(m.id, m.attempts,
          ((v_day at time zone w.timezone) + interval '1 day') at time zone w.timezone + herald.spread(m.id, interval '30 minutes'),
          'daily_limit');
        verdict := 'deferred';
        reason := 'daily_limit';
      else
        update public.messages set lease_expires_at = greatest(lease_expires_at, now() + p_call_timeout) where id = m.id;
        update public.message_attempts a set confirmed_at = now() where a.message_id = m.id and a.attempt_no = m.attempts;
        verdict := 'send';
      end if;
    end if;
    return next;
  end loop;
end;
$$;
comment on function herald.confirm_send(uuid[], integer[], interval) is 'Right before each provider call: send (lease stretched over the call, attempt marked confirmed), skip (gone, not this attempt''s, lease expired), cancelled (the contact may no longer be messaged) or deferred (quiet hours, daily limit), per message.';
revoke execute on function herald.confirm_send(uuid[], integer[], interval) from public, authenticated;
grant execute on function herald.confirm_send(uuid[], integer[], interval) to service_role;
