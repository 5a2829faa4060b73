/**
 * Status moves past sending are HOT.
 *
 * A message's row is updated at every step: claimed, sent, then moved by each status callback
 * (delivered, read, undelivered, failed). PostgreSQL can update a row in place on its page (a
 * HOT update: no index touched) only when no column any index reads changes. status sat in the
 * predicates of the partial indexes that find the due, claimable, leased and sent messages, so
 * every status move was a full update: a new entry in each of the table's indexes the row
 * belongs to (eight or nine), and that index work was most of what a delivered callback cost
 * the database.
 *
 *   - messages.pending_status is status while the message is still to be sent (scheduled,
 *     queued, sending) and null after, a stored generated column. The partial indexes of the
 *     queue read it instead of status; the queries that walk them (the claim, the fan-out,
 *     the queueing, the reaper, the expiry, the contact cap, the daily use) name it. A move
 *     from sent on leaves it null, so it changes no indexed column and is HOT when the page
 *     has room (messages keeps a fifth of each page free for that).
 *   - messages_sent_idx goes: it held the sent messages, for status reconciliation to find
 *     the ones whose delivery report is late, and a sent -> delivered move had to leave it.
 *     Reconciliation now finds them through their attempt: message_attempts.provider_final
 *     says whether Twilio reported a final status (delivered, read, undelivered, failed,
 *     canceled), and message_attempts_unreported_idx holds the attempts with a sid still
 *     without one. An attempt changes it once, at its final callback; its other callbacks
 *     (queued, sent) stay HOT on the attempt too.
 *   - message_attempts keeps a fifth of each page free, as messages does: each attempt is
 *     updated three or four times after its insert.
 *
 *   select_status_checks   the sent messages' attempts through message_attempts_unreported_idx;
 *                          an attempt Twilio already gave a final status needs no look-up.
 *   claim_messages, dispatch_fanout, queue_due_messages, reap_expired_leases,
 *   cancel_expired_messages, contact_cap_next_time, day_use
 *                          as before; their scans name pending_status (the same rows as the
 *                          status they named), so the planner still reads the partial index.
 *
 * Adding a stored generated column rewrites both tables once, under an exclusive lock; on a
 * hosted project with millions of messages, run it in a quiet hour.
 */

/** Section - messages: pending_status and the queue's indexes */
alter table public.messages
  add column pending_status public.message_status
    generated always as (case when status in ('scheduled', 'queued', 'sending') then status end) stored;
comment on column public.messages.pending_status is
  'status while the message is still to be sent (scheduled, queued, sending), else null: what the queue''s partial indexes read, so a move after sending changes no indexed column and is a HOT update. Generated; read status for the message''s state.';

drop index public.messages_scheduled_due_idx, public.messages_queued_due_idx, public.messages_sending_lease_idx,
           public.messages_pending_expiry_idx, public.messages_contact_marketing_idx, public.messages_sent_idx;
create index messages_scheduled_due_idx on public.messages (send_at) where pending_status = 'scheduled';
create index messages_queued_due_idx on public.messages (sender_id, send_at) where pending_status = 'queued';
create index messages_sending_lease_idx on public.messages (lease_expires_at) where pending_status = 'sending';
create index messages_pending_expiry_idx on public.messages (expires_at)
  where expires_at is not null and pending_status in ('scheduled', 'queued');
create index messages_contact_marketing_idx on public.messages (workspace_id, contact_id, sent_at)
  include (pending_status) where category = 'marketing';
comment on index public.messages_scheduled_due_idx is 'queue_due_messages: scheduled messages by send_at.';
comment on index public.messages_queued_due_idx is 'claim_messages and dispatch_fanout: each sender''s queued messages by send_at.';
comment on index public.messages_sending_lease_idx is 'reap_expired_leases, select_status_checks and day_use: the messages being sent, by lease expiry.';
comment on index public.messages_pending_expiry_idx is 'cancel_expired_messages: scheduled and queued messages with a deadline, by deadline.';
comment on index public.messages_contact_marketing_idx is 'contact_cap_next_time: a contact''s marketing messages by sent_at, in flight ones (pending_status) read from the index.';

/** Section - message_attempts: provider_final and the unreported attempts */
-- Before the column: the rewrite it causes already leaves the room.
alter table public.message_attempts set (fillfactor = 80);
alter table public.message_attempts
  add column provider_final boolean not null
    generated always as (coalesce(lower(provider_status) in ('delivered', 'read', 'undelivered', 'failed', 'canceled'), false)) stored;
comment on column public.message_attempts.provider_final is
  'Whether Twilio reported a final status for this attempt (delivered, read, undelivered, failed, canceled). Generated from provider_status; status reconciliation looks up only attempts without one.';
create index message_attempts_unreported_idx on public.message_attempts (requested_at)
  where provider_sid is not null and not provider_final;
comment on index public.message_attempts_unreported_idx is 'select_status_checks: attempts Twilio took (a sid) and has not given a final status, by when they were requested.';

/** Section - the scans, on pending_status */

create or replace function herald.claim_messages(p_limit integer default 100, p_lease interval default '00:02:00'::interval, p_call_timeout interval default '00:00:15'::interval) returns table (message_id uuid, workspace_id uuid, attempt_no integer, to_phone text, from_phone text, body text, content_sid text, content_variables jsonb, validity_period integer, channel public.channel, send_not_before timestamp with time zone, provider_check_required boolean, previous_attempt_requested_at timestamp with time zone, blocked_reason public.cancel_reason)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[] := '{}';
  v_batch uuid[];
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
    select se.id, se.mps, due.n, due.starts,
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

  -- 6. The daily limit of each workspace that has one.
  if exists (select 1 from public.workspaces w
             where w.daily_limit is not null and w.id in (select m.workspace_id from public.messages m where m.id = any (v_ids))) then
    v_prev := herald.set_reason('daily_limit');
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
  with slotted as (
    select m.id, m.sender_id, se.mps, se.phone_number, x.base,
           x.base + make_interval(secs => coalesce(sum(x.units) over w_before, 0) / se.mps) as slot,
           x.base + make_interval(secs => sum(x.units) over w_through / se.mps) as slot_end
    from public.messages m
    join public.senders se on se.id = m.sender_id
    join herald.sender_slots sl on sl.sender_id = m.sender_id
    cross join lateral (select greatest(sl.next_slot_at, now()) as base,
                               case when m.channel = 'whatsapp' then 1 else m.segments end as units) x
    where m.id = any (v_ids)
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
    where m.id = t.id
    returning m.id, m.workspace_id, m.contact_id, m.attempts, m.body, m.channel, m.provider_check_required,
              m.expires_at, t.slot, t.phone_number
  ), attempts as (
    insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_status)
    select cl.workspace_id, cl.id, cl.attempts, 'requested' from claimed cl
    returning 1
  )
  select cl.id, cl.workspace_id, cl.attempts, c.phone, cl.phone_number, cl.body,
         o.content_sid, o.content_variables, herald.validity_period_seconds(cl.expires_at, cl.slot),
         cl.channel, cl.slot, cl.provider_check_required,
         (select a.requested_at from public.message_attempts a
          where a.workspace_id = cl.workspace_id and a.message_id = cl.id and a.attempt_no = cl.attempts - 1),
         herald.contact_block_reason(c)
  from claimed cl
  join public.contacts c on c.workspace_id = cl.workspace_id and c.id = cl.contact_id
  -- The message as it was before this statement's update: what it carries has not changed. SMS
  -- always goes as its body, so only WhatsApp asks.
  left join lateral (
    select x.content_sid, x.content_variables
    from public.messages m cross join lateral herald.outbound_content(m, c, now()) x
    where cl.channel = 'whatsapp' and m.id = cl.id
  ) o on true
  order by cl.slot;
end;
$$;

create or replace function herald.dispatch_fanout(p_every interval default '00:00:10'::interval) returns table (calls integer, needed integer, running integer, sendable integer, call_budget interval)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_settings herald.dispatch_settings;
  v_budget_s numeric;
begin
  if p_every is null or p_every < interval '1 second' or p_every > interval '1 hour' then
    raise exception 'the caller''s cadence must be between 1 second and 1 hour, not %', coalesce(p_every::text, 'null')
      using errcode = '22023', hint = 'Pass how often you ask, e.g. interval ''10 seconds'' for the pg_cron job.';
  end if;
  select * into v_settings from herald.dispatch_settings;
  if not found then
    raise exception 'herald.dispatch_settings has no row' using errcode = '55000',
      hint = 'insert into herald.dispatch_settings default values';
  end if;
  v_budget_s := extract(epoch from v_settings.call_budget);
  call_budget := v_settings.call_budget;

  -- What each sender can send within one budget: its due queued messages, oldest first, as long
  -- as their segments fit in mps × budget (a WhatsApp message is one, whatever its length). More
  -- calls cannot make a sender faster, so its share stops there; the per-sender limit keeps the
  -- scan short however long the backlog.
  select coalesce(sum(w.n), 0)::integer into sendable
  from public.senders se
  join public.workspaces ws on ws.id = se.workspace_id
  cross join lateral (
    select count(*) filter (where d.spent <= se.mps * v_budget_s) as n
    from (
      select sum(case when m.channel = 'whatsapp' then 1 else m.segments end)
               over (order by m.send_at rows unbounded preceding) as spent
      from public.messages m
      where m.sender_id = se.id and m.pending_status = 'queued' and m.send_at <= now()
      order by m.send_at
      limit ceil(se.mps * v_budget_s)::integer
    ) d
  ) w
  where ws.automation_enabled and se.phone_number is not null;

  needed := least(v_settings.max_calls, ceil(sendable / (v_settings.call_rate * v_budget_s)))::integer;
  -- A call still claiming at the caller's next tick does this tick's work; one ending before it
  -- is replaced now, so the senders do not wait a tick between generations.
  running := (select count(*) from herald.dispatch_runs r where r.claims_until > now() + p_every)::integer;
  calls := greatest(0, needed - running);
  return next;
end;
$$;

create or replace function herald.queue_due_messages(p_limit integer default 20000, p_now timestamp with time zone default now()) returns jsonb
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
    where m.pending_status = 'scheduled' and m.send_at <= p_now and w.automation_enabled
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
              and (m.pending_status = 'queued' or m.pending_status = any (herald.in_flight_statuses()) or m.sent_at >= ws.day_start)) as used
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

create or replace function herald.reap_expired_leases() returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[];
  v_id uuid;
  v_failed integer;
  v_count integer := 0;
  v_prev text := herald.set_reason('sender_deleted');
begin
  perform set_config('herald.actor', coalesce(nullif(current_setting('herald.actor', true), ''), 'cron'), true);
  select array_agg(id) into v_ids from (
    select m.id from public.messages m where m.pending_status = 'sending' and m.lease_expires_at < now()
    order by m.lease_expires_at limit 10000
    for update skip locked
  ) expired;
  if v_ids is null then
    perform herald.set_reason(v_prev);
    return 0;
  end if;

  -- Confirmed for sending, so perhaps at the provider, and no sender left to look it up and
  -- resend from: failed, with what is known.
  with done as (
    update public.messages m
    set status = 'failed', failed_at = now(), lease_expires_at = null,
        last_error = 'the sender was deleted while this message was being sent; whether the provider took it is unknown'
    where m.id = any (v_ids) and m.sender_id is null
      and not exists (select 1 from public.senders s
                      where s.workspace_id = m.workspace_id and s.channel = m.channel and s.is_default and s.phone_number is not null)
      and exists (select 1 from public.message_attempts a
                  where a.message_id = m.id and a.attempt_no = m.attempts and a.confirmed_at is not null)
    returning 1
  ) select count(*) into v_failed from done;

  -- Whether the provider got the others is unknown: queue them again, flagged so the dispatcher
  -- looks them up at the provider before sending anything (never lost, never sent twice).
  perform herald.set_reason('lease_expired');
  begin
    with reaped as (
      update public.messages m
      set status = 'queued', lease_expires_at = null, provider_check_required = true
      where m.id = any (v_ids) and m.status = 'sending'
      returning 1
    ) select count(*) into v_count from reaped;
  exception when others then
    v_count := 0;
    foreach v_id in array v_ids loop
      begin
        update public.messages m
        set status = 'queued', lease_expires_at = null, provider_check_required = true
        where m.id = v_id and m.status = 'sending';
        if found then
          v_count := v_count + 1;
        end if;
      exception when others then
        raise warning 'herald: the expired lease of message % could not be reaped: % (%)', v_id, sqlerrm, sqlstate;
      end;
    end loop;
  end;
  perform herald.set_reason(v_prev);
  return v_count + v_failed;
end;
$$;

create or replace function herald.cancel_expired_messages(p_now timestamp with time zone default now()) returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  perform set_config('herald.actor', coalesce(nullif(current_setting('herald.actor', true), ''), 'cron'), true);
  -- herald.past_deadline() spelled out, so messages_pending_expiry_idx serves it. Skip locked: a
  -- message a claimer holds is the claimer's to decide.
  with expired as (
    update public.messages m
    set status = 'cancelled', cancel_reason = 'expired', cancelled_at = now()
    where m.id in (select x.id from public.messages x
                   where x.expires_at <= p_now and x.pending_status in ('scheduled', 'queued')
                   for update skip locked)
    returning 1
  ) select count(*) into v_count from expired;
  return v_count;
end;
$$;

create or replace function herald.contact_cap_next_time(p_contact public.contacts, p_at timestamp with time zone, p_pending integer default 0) returns timestamp with time zone
language plpgsql
stable
set search_path = ''
as $$
declare
  w public.workspaces;
  v_zone text;
  v_day_start timestamptz;
  v_next_day timestamptz;
  v_used bigint;
begin
  select * into w from public.workspaces where id = p_contact.workspace_id;
  if w.contact_daily_cap is null then
    return null;
  end if;
  -- The contact's local day, in the first of its possible zones (a number spanning two zones
  -- has days an hour apart; the allowed window below holds in all of them).
  v_zone := (herald.contact_zones(p_contact))[1];
  v_day_start := date_trunc('day', p_at at time zone v_zone) at time zone v_zone;
  v_next_day := (date_trunc('day', p_at at time zone v_zone) + interval '1 day') at time zone v_zone;

  select (select count(*) from public.messages m
          where m.workspace_id = p_contact.workspace_id and m.contact_id = p_contact.id and m.category = 'marketing'
            and m.sent_at >= v_day_start and m.sent_at < v_next_day)
       + (select count(*) from public.messages m
          where m.workspace_id = p_contact.workspace_id and m.contact_id = p_contact.id and m.category = 'marketing'
            and m.sent_at is null and m.pending_status in ('queued', 'sending'))
  into v_used;
  if v_used + greatest(coalesce(p_pending, 0), 0) < w.contact_daily_cap then
    return null;
  end if;
  return herald.allowed_send_time(p_contact, 'marketing', w, v_next_day);
end;
$$;

create or replace function herald.day_use(p_workspace_id uuid, p_day_start timestamp with time zone) returns bigint
language sql
stable
set search_path = ''
as $$
  select (select count(*) from public.messages m
          where m.workspace_id = p_workspace_id and m.sent_at >= p_day_start)
       + (select count(*) from public.messages m
          where m.workspace_id = p_workspace_id and m.pending_status = 'sending' and m.sent_at is null)
$$;

create or replace function herald.select_status_checks(p_older_than interval default '00:10:00'::interval, p_give_up_after interval default '3 days'::interval) returns integer
language plpgsql
security definer
set search_path = ''
as $$
begin
  if p_older_than is null or p_older_than <= interval '0' then
    raise exception 'the wait before a status check must be positive' using errcode = '22023';
  end if;
  if p_give_up_after is null or p_give_up_after <= p_older_than then
    raise exception 'status checks must give up (after %) later than they start (after %)', p_give_up_after, p_older_than
      using errcode = '22023';
  end if;

  -- Nothing left to find: the message moved on, or the attempt is older than any report.
  delete from herald.status_checks s
  using public.message_attempts a, public.messages m
  where a.id = s.attempt_id and m.workspace_id = a.workspace_id and m.id = a.message_id
    and (m.status not in ('sent', 'sending') or a.requested_at < now() - p_give_up_after);

  -- The attempts of sent messages that Twilio has not given a final status (an attempt that
  -- has one needs no look-up), and every attempt of a message still being sent.
  insert into herald.status_checks (attempt_id, every)
  select a.id, p_older_than
  from public.message_attempts a
  join public.messages m on m.workspace_id = a.workspace_id and m.id = a.message_id
  where a.provider_sid is not null and not a.provider_final
    and a.requested_at >= now() - p_give_up_after
    and coalesce(a.last_callback_at, a.responded_at, a.requested_at) < now() - p_older_than
    and m.status = 'sent' and m.sent_at >= now() - p_give_up_after
  union all
  select a.id, p_older_than
  from public.messages m
  join public.message_attempts a on a.workspace_id = m.workspace_id and a.message_id = m.id
  where m.pending_status = 'sending'
    and a.provider_sid is not null
    and a.requested_at >= now() - p_give_up_after
    and coalesce(a.last_callback_at, a.responded_at, a.requested_at) < now() - p_older_than
  on conflict (attempt_id) do nothing;

  return (select count(*) from herald.status_checks s where s.due_at <= now());
end;
$$;
