/**
 * Queueing due messages, in the database (a sending worker should not have to re-check
 * cancellation, quiet hours, daily limits and deleted appointments by hand). Every minute pg_cron
 * runs herald.queue_due_messages(), which takes due `scheduled` messages and, set-based:
 *
 *   cancels those whose contact is deleted, opted out, suppressed or human-controlled, whose
 *     appointment is no longer scheduled, or whose enrollment stopped (with the reason);
 *   fails those with no sender to send from (no_sender: visible in failed_messages, retryable);
 *   defers those inside quiet hours in the recipient's time zone to the window's end, spread
 *     over the first minutes of the window so it does not open with one burst;
 *   defers those over the workspace's daily limit (counted per local day) to the next day;
 *   holds (leaves untouched) those of workspaces with automation paused;
 *   and queues the rest.
 *
 * Each deferral and cancellation writes a message_events row with its reason (ledger trigger).
 */

/** Section - time windows */
-- The end of the quiet window containing p_at in zone p_tz, or null if p_at is outside it.
-- Windows may cross midnight (21:00–08:00). Local wall-clock arithmetic, converted back through
-- the zone, so the answer is right across daylight-saving changes.
create function herald.quiet_until(p_at timestamptz, p_tz text, p_start time, p_end time) returns timestamptz
language sql
stable
set search_path = ''
as $$
  with l as (select (p_at at time zone p_tz) as local_ts)
  select case
    when p_start = p_end then null
    when p_start < p_end then
      case when l.local_ts::time >= p_start and l.local_ts::time < p_end
           then (l.local_ts::date + p_end) at time zone p_tz end
    else
      case when l.local_ts::time >= p_start then ((l.local_ts::date + 1) + p_end) at time zone p_tz
           when l.local_ts::time < p_end then (l.local_ts::date + p_end) at time zone p_tz end
  end
  from l
$$;
comment on function herald.quiet_until(timestamptz, text, time, time) is 'When the quiet window around p_at (local time in p_tz) ends; null outside quiet hours.';

-- A stable spread of 0..p_span over the message id: a deferred batch lands spread out, and the
-- same message always lands at the same offset (re-running the job moves nothing).
create function herald.spread(p_id uuid, p_span interval) returns interval
language sql
immutable
set search_path = ''
as $$
  select make_interval(secs => (('x' || substr(md5(p_id::text), 1, 8))::bit(32)::bigint % 1000000)
                               / 1000000.0 * extract(epoch from p_span))
$$;

/** Section - queueing */
create function herald.queue_due_messages(p_limit integer default 20000, p_now timestamptz default now()) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[];
  v_cancelled integer;
  v_failed integer;
  v_quiet integer;
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

  -- 3. Quiet hours in the recipient's zone: deferred to the window's end, spread over its start.
  -- Materialized, so quiet_until() runs once per message: inlined, the planner may push
  -- `until is not null` down into the contacts scan and call it for every message × contact
  -- pair of the workspace (minutes for a 5,000-message batch right after a bulk load).
  perform herald.set_reason('quiet_hours');
  with q as materialized (
    select m.id, herald.quiet_until(p_now, coalesce(c.timezone, w.timezone), w.quiet_hours_start, w.quiet_hours_end) as until,
           -- spread over a quarter of the open window, at most 30 minutes
           least(interval '30 minutes',
                 case when w.quiet_hours_start > w.quiet_hours_end then w.quiet_hours_start - w.quiet_hours_end
                      else interval '24 hours' - (w.quiet_hours_end - w.quiet_hours_start) end / 4) as span
    from public.messages m
    join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
    join public.workspaces w on w.id = m.workspace_id
    where m.id = any (v_ids) and m.status = 'scheduled'
  ), done as (
    update public.messages m set send_at = q.until + herald.spread(m.id, q.span)
    from q where m.id = q.id and q.until is not null
    returning 1
  ) select count(*) into v_quiet from done;

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

select cron.schedule('herald-queue-due-messages', '* * * * *', $$select herald.queue_due_messages()$$);
