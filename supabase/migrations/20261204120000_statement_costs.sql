/**
 * What every update of messages pays, once per statement. Each statement that updates messages
 * (a claim, a confirmation, an answer, a batch of callbacks) fires two statement triggers; with
 * nothing to batch a message with, the dispatcher makes three such statements per message, so
 * their fixed costs were paid per message.
 *
 *   - herald.current_actor, read by the ledger's triggers once per statement, was a SQL function
 *     with its own search_path: never inlined, its body (and auth.uid()'s and auth.role()'s) was
 *     parsed and planned again on every statement that called it, ~75 µs each time. As PL/pgSQL
 *     its plans are kept for the session: ~9 µs.
 *   - herald.advance_enrollments asked "does this statement end any sequence step?" through
 *     EXECUTE, planning the question for every firing. Most firings (claims, confirmations,
 *     callbacks before sent) end none. The question is now a static statement, planned once
 *     per session: a pass over the new rows, which needs no statistics to be planned well. The
 *     statements that do the work still go through EXECUTE, planned for the rows at hand.
 *
 *   current_actor        who is acting, as before; PL/pgSQL.
 *   advance_enrollments  as before, the first look static.
 */

/** Section - who is acting */
create or replace function herald.current_actor() returns text
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce(auth.uid()::text,
                  nullif(current_setting('herald.actor', true), ''),
                  nullif(auth.role(), ''),
                  current_user);
end;
$$;

/** Section - the sequence engine's first look */
create or replace function herald.advance_enrollments() returns trigger
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
  -- pass over the new rows tells, before planning the statements below. A static statement,
  -- planned once per session: a scan of the new rows whatever their number, so nothing is
  -- planned at all for the updates that concern no enrollment.
  select coalesce(bool_or(n.enrollment_id is not null and n.retry_of is null
                          and n.status = any (herald.final_statuses())), false)
  into v_relevant
  from new_rows n;
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
    select c.*, ns.id as next_step_id, ns.position as next_position, ns.delay, ns.body, ns.channel, ns.template_id
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
    insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id, max_attempts,
                                 template_id, template_variables)
    select n.workspace_id, n.contact_id, n.channel, r.body,
           n.sent_at + n.delay, n.enrollment_id, n.next_step_id, w.max_attempts,
           n.template_id,
           case when n.template_id is not null then herald.render_template_variables(n.template_id, n.contact_id) end
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
