/**
 * The law and the recipient on the send path. The rules of consent, legal sending hours, the
 * recipient's zones, per-contact caps and send-by deadlines (their own migrations) are applied
 * where a message moves: when pg_cron queues it, when a dispatcher claims it, and right before
 * the provider call. One function decides for one message (herald.send_rule) and one applies a
 * batch of decisions (herald.apply_send_rules), so the three places cannot drift apart. This
 * migration applies them at queueing; the claim (herald.claim_messages) and the confirmation
 * (herald.confirm_send) call them from their definitions in …_send_content.sql, which also
 * changed what the claim returns.
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
