/**
 * Lead queue operations (a queue UI whose buttons report success must have done the work: no
 * status the check constraint refuses, no foreign key that blocks the insert, a ledger entry).
 * Each one is a database function that really does the work:
 *
 *   prepare_queue     enrolls up to daily_capacity new leads per day into the default sequence,
 *                     first sends spread over the send window in each contact's own time zone
 *   set_automation    pauses (holds, never cancels) or resumes a workspace's sending
 *   take_lead         a human takes over: automation for the contact is cancelled at once
 *   release_lead      hands the contact back to automation (nothing cancelled comes back)
 *   retry_message     sends a failed or undelivered message again, as a new message
 *
 * and two views for the UI: queue_metrics and failed_messages.
 */

/** Section - the queue ledger */
create table public.queue_entries (
  workspace_id uuid not null,
  contact_id uuid not null,
  for_date date not null,
  sequence_id uuid,
  enrollment_id uuid,
  first_send_at timestamptz not null,
  actor text not null,
  queued_at timestamptz not null default now(),
  primary key (workspace_id, contact_id),
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  foreign key (workspace_id, sequence_id) references public.sequences (workspace_id, id) on delete set null (sequence_id),
  foreign key (workspace_id, enrollment_id) references public.sequence_enrollments (workspace_id, id) on delete set null (enrollment_id)
);
comment on table public.queue_entries is 'Which lead prepare_queue() queued for which day, by whom. A lead is queued at most once: the primary key is the guarantee, even under concurrent calls.';
create index queue_entries_workspace_date_idx on public.queue_entries (workspace_id, for_date);
create index queue_entries_workspace_sequence_idx on public.queue_entries (workspace_id, sequence_id) where sequence_id is not null;
create index queue_entries_workspace_enrollment_idx on public.queue_entries (workspace_id, enrollment_id) where enrollment_id is not null;
alter table public.queue_entries enable row level security;
create policy queue_entries_select on public.queue_entries for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
revoke all on public.queue_entries from anon;
revoke insert, update, delete, truncate on public.queue_entries from authenticated;

/** Section - prepare_queue */
create function public.prepare_queue(workspace_id uuid, for_date date default null) returns integer
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_ws public.workspaces := herald.member_workspace(prepare_queue.workspace_id, 'admin');
  v_settings public.queue_settings;
  v_seq public.sequences;
  v_step public.sequence_steps;
  v_date date;
  v_room integer;
  v_count integer;
  v_window interval;
  v_actor text := herald.current_actor();
begin
  -- One preparation per workspace at a time: the lock makes capacity and "never twice" exact.
  select * into v_settings from public.queue_settings s where s.workspace_id = v_ws.id for update;
  if not found then
    raise exception 'workspace % has no queue settings', v_ws.id using errcode = '55000',
      hint = 'Insert a queue_settings row with daily_capacity, window_start, window_end and default_sequence_id.';
  end if;
  if v_settings.default_sequence_id is null then
    raise exception 'the queue has no default sequence' using errcode = '55000',
      hint = 'Set queue_settings.default_sequence_id to an active sequence.';
  end if;
  select * into v_seq from public.sequences s where s.workspace_id = v_ws.id and s.id = v_settings.default_sequence_id;
  if v_seq.status <> 'active' then
    raise exception 'the default sequence "%" is %', v_seq.name, v_seq.status using errcode = '55000',
      hint = 'Activate the sequence or choose another default.';
  end if;
  select * into v_step from public.sequence_steps s
  where s.workspace_id = v_ws.id and s.sequence_id = v_seq.id order by s.position limit 1;
  if not found then
    raise exception 'the default sequence "%" has no steps', v_seq.name using errcode = '55000';
  end if;

  v_date := coalesce(prepare_queue.for_date, (now() at time zone v_ws.timezone)::date + 1);
  if v_date < (now() at time zone v_ws.timezone)::date then
    raise exception 'for_date % is in the past', v_date using errcode = '22023';
  end if;
  v_room := v_settings.daily_capacity
            - (select count(*) from public.queue_entries q where q.workspace_id = v_ws.id and q.for_date = v_date);
  if v_room <= 0 then
    return 0;
  end if;
  v_window := case when v_settings.window_end > v_settings.window_start then v_settings.window_end - v_settings.window_start
                   else interval '24 hours' - (v_settings.window_start - v_settings.window_end) end;

  perform set_config('herald.reason', 'prepare_queue', true);
  with picked as (
    select c.id, c.created_at, coalesce(c.timezone, v_ws.timezone) as tz
    from public.contacts c
    where c.workspace_id = v_ws.id and c.lead_status = 'new' and c.controlled_by = 'automation'
      and c.deleted_at is null and c.opted_out_at is null
      and not exists (select 1 from public.suppressions s where s.workspace_id = c.workspace_id and s.phone_hash = c.phone_hash)
      and not exists (select 1 from public.queue_entries q where q.workspace_id = c.workspace_id and q.contact_id = c.id)
      and not exists (select 1 from public.sequence_enrollments e
                      where e.workspace_id = c.workspace_id and e.contact_id = c.id and e.sequence_id = v_seq.id)
    order by c.created_at, c.id
    limit v_room
    for update of c skip locked
  ), slotted as (
    -- Evenly over the window, each at its place in the contact's own local day: wall-clock
    -- arithmetic first, then through the zone, so a daylight-saving day keeps the window.
    select p.id, ((v_date + v_settings.window_start)
                  + v_window * ((row_number() over (order by p.created_at, p.id) - 0.5) / count(*) over ()))
                 at time zone p.tz as first_send_at
    from picked p
  ), enrolled as (
    insert into public.sequence_enrollments (workspace_id, sequence_id, contact_id, current_position)
    select v_ws.id, v_seq.id, s.id, v_step.position from slotted s
    returning id, contact_id
  ), rendered as (
    select r.contact_id, r.body
    from herald.render_bodies(v_ws.id, v_step.body, (select array_agg(s.id) from slotted s)) r
  ), scheduled as (
    insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id, max_attempts)
    select v_ws.id, s.id, v_step.channel, r.body, s.first_send_at, e.id, v_step.id, v_ws.max_attempts
    from slotted s join enrolled e on e.contact_id = s.id join rendered r on r.contact_id = s.id
    returning contact_id
  ), ledger as (
    insert into public.queue_entries (workspace_id, contact_id, for_date, sequence_id, enrollment_id, first_send_at, actor)
    select v_ws.id, s.id, v_date, v_seq.id, e.id, s.first_send_at, v_actor
    from slotted s join enrolled e on e.contact_id = s.id
    returning contact_id, first_send_at
  ), activity as (
    insert into public.contact_activities (workspace_id, contact_id, kind, detail, actor)
    select v_ws.id, l.contact_id, 'queued',
           jsonb_build_object('for_date', v_date, 'sequence_id', v_seq.id, 'first_send_at', l.first_send_at), v_actor
    from ledger l
    returning 1
  )
  update public.contacts c set lead_status = 'queued'
  from ledger l where c.workspace_id = v_ws.id and c.id = l.contact_id;
  get diagnostics v_count = row_count;
  perform set_config('herald.reason', '', true);
  return v_count;
end;
$$;
comment on function public.prepare_queue(uuid, date) is 'Enrolls up to daily_capacity eligible new leads (per day) in the default sequence, first sends spread over the send window in each contact''s time zone. Returns how many. Never queues a lead twice.';
revoke execute on function public.prepare_queue(uuid, date) from public, anon;
grant execute on function public.prepare_queue(uuid, date) to authenticated, service_role;

/** Section - automation switch */
create function public.set_automation(workspace_id uuid, enabled boolean) returns void
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_ws public.workspaces := herald.member_workspace(set_automation.workspace_id, 'admin');
begin
  if enabled is null then
    raise exception 'enabled must be true or false' using errcode = '22023';
  end if;
  -- Conditional, so of two concurrent calls for the same switch only one changes it (the other
  -- re-reads the row once the first commits, and finds nothing to do).
  update public.workspaces w set automation_enabled = enabled where w.id = v_ws.id and w.automation_enabled <> enabled;
  if not found then
    return;
  end if;
  -- Held, not cancelled: each pending message's history says when it was held and released.
  insert into public.message_events (workspace_id, message_id, from_status, to_status, reason, actor)
  select m.workspace_id, m.id, m.status, m.status,
         case when enabled then 'automation_resumed' else 'automation_paused' end, herald.current_actor()
  from public.messages m
  where m.workspace_id = v_ws.id and m.status = any (herald.pending_statuses());
end;
$$;
comment on function public.set_automation(uuid, boolean) is 'Pauses or resumes sending for a workspace. Paused messages are held, never cancelled, and go out when automation resumes.';
revoke execute on function public.set_automation(uuid, boolean) from public, anon;
grant execute on function public.set_automation(uuid, boolean) to authenticated, service_role;

/** Section - human takeover */
create function public.take_lead(contact_id uuid) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v public.contacts := herald.member_contact(take_lead.contact_id);
  v_user uuid := (select auth.uid());
  v_detail jsonb;
begin
  if v.deleted_at is not null then
    raise exception 'contact % is deleted', v.id using errcode = '55000';
  end if;
  if v.controlled_by = 'human' then
    if v.assigned_to is not null and v.assigned_to <> v_user then
      raise exception 'contact % is already handled by another agent', v.id using errcode = '55000',
        hint = 'That agent (or an admin) must release_lead() first.';
    end if;
    if v.assigned_to = v_user then
      return jsonb_build_object('contact_id', v.id, 'assigned_to', v_user, 'already_taken', true,
                                'cancelled', jsonb_build_object('messages', 0, 'sequence_enrollments', 0));
    end if;
    -- Human-controlled with nobody assigned (the agent's user was deleted, which sets assigned_to
    -- null, or a client set controlled_by directly): the caller picks it up. Its automation was
    -- cancelled when it became human-controlled, so there is nothing left to cancel.
    update public.contacts c set assigned_to = v_user where c.id = v.id;
    insert into public.contact_activities (workspace_id, contact_id, kind, detail, actor)
    values (v.workspace_id, v.id, 'taken_over', jsonb_build_object('cancelled_messages', 0, 'cancelled_enrollments', 0),
            v_user::text);
    return jsonb_build_object('contact_id', v.id, 'assigned_to', v_user, 'already_taken', false,
                              'cancelled', jsonb_build_object('messages', 0, 'sequence_enrollments', 0));
  end if;

  update public.contacts c set controlled_by = 'human', assigned_to = v_user where c.id = v.id;
  select a.detail into v_detail from public.contact_activities a
  where a.workspace_id = v.workspace_id and a.contact_id = v.id and a.kind = 'taken_over'
  order by a.id desc limit 1;
  return jsonb_build_object('contact_id', v.id, 'assigned_to', v_user, 'already_taken', false,
                            'cancelled', jsonb_build_object('messages', v_detail -> 'cancelled_messages',
                                                            'sequence_enrollments', v_detail -> 'cancelled_enrollments'));
end;
$$;
comment on function public.take_lead(uuid) is 'A human takes the lead: controlled_by = human, assigned to the caller, and every pending automated message and active enrollment cancelled (human_takeover) in the same transaction.';
revoke execute on function public.take_lead(uuid) from public, anon;
grant execute on function public.take_lead(uuid) to authenticated, service_role;

create function public.release_lead(contact_id uuid) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v public.contacts := herald.member_contact(release_lead.contact_id);
begin
  if v.controlled_by <> 'human' then
    raise exception 'contact % is not handled by a human', v.id using errcode = '55000';
  end if;
  if v.assigned_to is distinct from (select auth.uid()) and not herald.has_role(v.workspace_id, 'admin') then
    raise exception 'only the assigned agent or an admin can release contact %', v.id using errcode = '42501';
  end if;
  update public.contacts c set controlled_by = 'automation', assigned_to = null where c.id = v.id;
end;
$$;
comment on function public.release_lead(uuid) is 'Hands a contact back to automation. What the takeover cancelled stays cancelled.';
revoke execute on function public.release_lead(uuid) from public, anon;
grant execute on function public.release_lead(uuid) to authenticated, service_role;

/** Section - retry */
create function public.retry_message(message_id uuid) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  m public.messages := herald.member_message(retry_message.message_id);
  v_id uuid;
begin
  if not m.status = any (herald.failed_statuses()) then
    raise exception 'message % is %: only failed or undelivered messages can be retried', m.id, m.status
      using errcode = '55000';
  end if;
  perform herald.sendable_contact(m.contact_id);

  -- Retrying twice while the first retry is still on its way returns that retry.
  select x.id into v_id from public.messages x
  where x.workspace_id = m.workspace_id and x.retry_of = m.id
    and x.status = any (herald.pending_statuses() || herald.in_flight_statuses() || herald.sent_statuses());
  if found then
    return v_id;
  end if;
  perform set_config('herald.reason', 'retry_of_' || m.id, true);
  -- A step's failure stops its enrollment (herald.advance_enrollments), and queueing cancels the
  -- messages of a stopped enrollment (sequence_stopped): the retry keeps the enrollment only while
  -- it is active, else it is a one-off that still names its step and, through retry_of, the original.
  insert into public.messages (workspace_id, contact_id, sender_id, channel, body, send_at, enrollment_id, step_id,
                               appointment_id, campaign_id, retry_of, max_attempts)
  select m.workspace_id, m.contact_id, m.sender_id, m.channel, m.body, now(),
         (select e.id from public.sequence_enrollments e
          where e.workspace_id = m.workspace_id and e.id = m.enrollment_id and e.status = 'active'),
         m.step_id, m.appointment_id, m.campaign_id, m.id, w.max_attempts
  from public.workspaces w where w.id = m.workspace_id
  returning id into v_id;
  perform set_config('herald.reason', '', true);
  return v_id;
end;
$$;
comment on function public.retry_message(uuid) is 'Sends a failed or undelivered message again as a new message (retry_of points back). Cancelled and delivered messages cannot be retried.';
revoke execute on function public.retry_message(uuid) from public, anon;
grant execute on function public.retry_message(uuid) to authenticated, service_role;

/** Section - views */
create view public.failed_messages with (security_invoker = true) as
select m.id, m.workspace_id, m.contact_id, c.phone, c.first_name, c.last_name, m.channel, m.body, m.status,
       m.attempts, m.last_error_code, m.last_error, m.failed_at, m.send_at, m.created_at,
       exists (select 1 from public.messages r where r.workspace_id = m.workspace_id and r.retry_of = m.id) as retried
from public.messages m
join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
where m.status = any (herald.failed_statuses());
comment on view public.failed_messages is 'Failed and undelivered messages with their last error code and message; retry_message() sends one again.';

create view public.queue_metrics with (security_invoker = true) as
with per_message as (
  select m.workspace_id, (coalesce(m.sent_at, m.cancelled_at, m.failed_at, m.send_at) at time zone w.timezone)::date as day,
         m.status, m.cancel_reason, m.sent_at, m.send_at
  from public.messages m join public.workspaces w on w.id = m.workspace_id
), deferrals as (
  select e.workspace_id, (e.at at time zone w.timezone)::date as day, e.reason, count(*) as n
  from public.message_events e join public.workspaces w on w.id = e.workspace_id
  where e.from_status = e.to_status and e.reason in ('quiet_hours', 'daily_limit', 'automation_paused', 'appointment_moved')
  group by 1, 2, 3
), totals as (
  select workspace_id, day,
         count(*) filter (where status = any (herald.pending_statuses() || herald.in_flight_statuses())) as scheduled,
         count(*) filter (where sent_at is not null) as sent,
         count(*) filter (where status = any (herald.delivered_statuses())) as delivered,
         count(*) filter (where status = any (herald.failed_statuses())) as failed,
         count(*) filter (where status = 'cancelled') as cancelled,
         percentile_cont(0.5) within group (order by extract(epoch from sent_at - send_at))
           filter (where sent_at is not null) as median_delay_seconds
  from per_message group by 1, 2
), by_reason as (
  select workspace_id, day, jsonb_object_agg(cancel_reason, n) as cancelled_by_reason
  from (select workspace_id, day, cancel_reason, count(*) as n from per_message
        where status = 'cancelled' group by 1, 2, 3) r
  group by 1, 2
), deferred as (
  select workspace_id, day, jsonb_object_agg(reason, n) as deferred_by_reason from deferrals group by 1, 2
)
select coalesce(t.workspace_id, d.workspace_id) as workspace_id, coalesce(t.day, d.day) as day,
       coalesce(t.scheduled, 0) as scheduled, coalesce(t.sent, 0) as sent, coalesce(t.delivered, 0) as delivered,
       coalesce(t.failed, 0) as failed, coalesce(t.cancelled, 0) as cancelled,
       coalesce(b.cancelled_by_reason, '{}') as cancelled_by_reason,
       coalesce(d.deferred_by_reason, '{}') as deferred_by_reason,
       round(t.delivered::numeric / nullif(t.sent, 0), 4) as delivery_rate,
       t.median_delay_seconds
from totals t
full join deferred d on d.workspace_id = t.workspace_id and d.day = t.day
left join by_reason b on b.workspace_id = coalesce(t.workspace_id, d.workspace_id) and b.day = coalesce(t.day, d.day);
comment on view public.queue_metrics is 'Per workspace and local day: scheduled, sent, delivered, failed, cancelled (and by reason), deferred by reason, delivery rate and the median seconds from send_at to sent_at.';

revoke all on public.failed_messages, public.queue_metrics from anon;
grant select on public.failed_messages, public.queue_metrics to authenticated, service_role;
