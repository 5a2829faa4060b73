/**
 * The sequence engine: enrolling a contact schedules the first step, and each step's send
 * schedules the next one (the previous step's send time + the next step's delay) until the last
 * step completes the enrollment. A step message that ends cancelled, failed or undelivered stops
 * its enrollment, and what the enrollment still has pending is cancelled with it.
 *
 * It runs in the database, in the statement that moves a message, so no worker has to remember
 * to schedule the next step and a stopped enrollment never sends again. herald.enroll() enrolls
 * one contact for enroll_contact() (prepare_queue enrolls a day's leads set-based, in one
 * statement of its own); herald.advance_enrollments() is one statement-level trigger over
 * transition tables, so a statement that moves many step messages advances their enrollments in
 * one pass.
 */

/** Section - enrolling */
-- Enrolls one contact and schedules the first step at p_start + its delay (enroll_contact();
-- prepare_queue enrolls in bulk in its own statement). Callers have checked membership and the
-- contact.
create function herald.enroll(p_seq public.sequences, p_contact_id uuid, p_start timestamptz) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_step public.sequence_steps;
  v_id uuid;
begin
  if p_seq.status <> 'active' then
    raise exception 'sequence % is %', p_seq.id, p_seq.status using errcode = '55000',
      hint = 'Only active sequences take enrollments.';
  end if;
  select * into v_step from public.sequence_steps s
  where s.workspace_id = p_seq.workspace_id and s.sequence_id = p_seq.id order by s.position limit 1;
  if not found then
    raise exception 'sequence % has no steps', p_seq.id using errcode = '55000';
  end if;

  insert into public.sequence_enrollments (workspace_id, sequence_id, contact_id, current_position)
  values (p_seq.workspace_id, p_seq.id, p_contact_id, v_step.position)
  on conflict (sequence_id, contact_id) where status = 'active' do nothing
  returning id into v_id;
  if v_id is null then
    select e.id into v_id from public.sequence_enrollments e
    where e.sequence_id = p_seq.id and e.contact_id = p_contact_id and e.status = 'active';
    return v_id;
  end if;

  insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id, max_attempts)
  select p_seq.workspace_id, p_contact_id, v_step.channel,
         herald.render_template(v_step.body, p_seq.workspace_id, p_contact_id),
         p_start + v_step.delay, v_id, v_step.id, w.max_attempts
  from public.workspaces w where w.id = p_seq.workspace_id;
  return v_id;
end;
$$;

/** Section - advancing */
-- The sequence engine, set-based: a step message that reaches sent schedules the next step at
-- its send time + the next step's delay, or completes the enrollment after the last step; a step
-- message that ends cancelled, failed or undelivered stops its enrollment.
create function herald.advance_enrollments() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_relevant boolean;
  v_stopped_workspaces uuid[];
  v_stopped uuid[];
begin
  -- Most updates of messages (claims, leases, callbacks before sent) move no enrollment: one
  -- pass over the new rows tells, before planning the statements below.
  execute $sql$
    select coalesce(bool_or(n.enrollment_id is not null and n.retry_of is null
                            and n.status = any (herald.final_statuses())), false)
    from new_rows n
  $sql$ into v_relevant;
  if not v_relevant then
    return null;
  end if;

  -- Through EXECUTE: statements over transition tables planned for this firing's rows.
  execute $sql$
  with done as (
    select n.workspace_id, n.enrollment_id, n.step_id, coalesce(n.sent_at, now()) as sent_at
    from old_rows o join new_rows n on n.id = o.id
    where n.enrollment_id is not null and n.step_id is not null and n.retry_of is null
      and not o.status = any (herald.sent_statuses()) and n.status = any (herald.sent_statuses())
  ), cur as (
    select d.*, e.sequence_id, e.contact_id, s.position
    from done d
    join public.sequence_enrollments e on e.workspace_id = d.workspace_id and e.id = d.enrollment_id and e.status = 'active'
    join public.sequence_steps s on s.workspace_id = d.workspace_id and s.id = d.step_id
  ), nxt as (
    select c.*, ns.id as next_step_id, ns.position as next_position, ns.delay, ns.body, ns.channel
    from cur c
    left join lateral (
      select x.* from public.sequence_steps x
      where x.workspace_id = c.workspace_id and x.sequence_id = c.sequence_id and x.position > c.position
      order by x.position limit 1
    ) ns on true
  ), rendered as (
    -- One render per distinct step template, for all the contacts that reached it.
    select g.workspace_id, g.body as template, r.contact_id, r.body
    from (select n.workspace_id, n.body, array_agg(n.contact_id) as contact_ids
          from nxt n where n.next_step_id is not null group by n.workspace_id, n.body) g
    cross join lateral herald.render_bodies(g.workspace_id, g.body, g.contact_ids) r
  ), scheduled as (
    insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id, max_attempts)
    select n.workspace_id, n.contact_id, n.channel, r.body,
           n.sent_at + n.delay, n.enrollment_id, n.next_step_id, w.max_attempts
    from nxt n
    join rendered r on r.workspace_id = n.workspace_id and r.template = n.body and r.contact_id = n.contact_id
    join public.workspaces w on w.id = n.workspace_id
    where n.next_step_id is not null
    on conflict do nothing
    returning 1
  )
  update public.sequence_enrollments e
  set current_position = coalesce(n.next_position, n.position),
      status = case when n.next_step_id is null then 'completed'::public.enrollment_status else e.status end,
      completed_at = case when n.next_step_id is null then now() else e.completed_at end
  from nxt n
  where e.workspace_id = n.workspace_id and e.id = n.enrollment_id
  $sql$;
  execute $sql$
  with stopped as (
    update public.sequence_enrollments e
    set status = case when n.status = 'cancelled' then 'cancelled' else 'failed' end::public.enrollment_status,
        stopped_reason = case when n.status = 'cancelled' then n.cancel_reason::text
                              else 'step_' || n.status || coalesce('_' || n.last_error_code, '') end,
        completed_at = now()
    from old_rows o join new_rows n on n.id = o.id
    where n.enrollment_id is not null and n.retry_of is null and o.status <> n.status
      and (n.status = 'cancelled' or n.status = any (herald.failed_statuses()))
      and e.workspace_id = n.workspace_id and e.id = n.enrollment_id and e.status = 'active'
    returning e.workspace_id, e.id
  ) select array_agg(s.workspace_id), array_agg(s.id) from stopped s
  $sql$ into v_stopped_workspaces, v_stopped;

  -- A stopped enrollment keeps nothing pending. A step that was sent has already scheduled the
  -- next one when the provider reports it undelivered or failed: that next step is cancelled
  -- here, in the statement that stopped its enrollment, not left scheduled until queueing
  -- would find it.
  if v_stopped is not null then
    update public.messages m
    set status = 'cancelled', cancel_reason = 'sequence_stopped', cancelled_at = now()
    from unnest(v_stopped_workspaces, v_stopped) s(workspace_id, enrollment_id)
    where m.workspace_id = s.workspace_id and m.enrollment_id = s.enrollment_id
      and m.status = any (herald.pending_statuses());
  end if;
  return null;
end;
$$;
comment on function herald.advance_enrollments() is 'Sequence engine: a sent step schedules the next (or completes the enrollment); a cancelled, failed or undelivered one stops it and cancels what it still has pending (sequence_stopped).';
create trigger messages_advance_enrollments after update on public.messages
referencing old table as old_rows new table as new_rows
for each statement execute function herald.advance_enrollments();
