/**
 * The RPCs of the contract for contacts, messages and sequences, and the sequence engine.
 *
 * Each RPC is security definer because it writes tables clients cannot write directly; each
 * checks the caller's membership itself first. An id that does not exist and an id of another
 * workspace give the same P0002 error, so nothing leaks across tenants.
 *
 * Error codes (stable, documented in the README):
 *   22023 invalid parameter (empty body, unknown entity, send_at too far ahead…)
 *   42501 not signed in / not a member / role too low
 *   P0002 no such row (or not yours)
 *   55000 the row is in the wrong state (deleted contact, opted out, archived sequence…)
 *   23505 conflicting duplicate (idempotency key reused for another message, phone taken)
 */

/** Section - templates */
-- Renders one template for many contacts in one statement: the template is split once, and
-- the contacts are joined to its pieces (prepare_queue renders 100,000 bodies at a time; a
-- per-contact function call was re-planned on every row). One pass, left to right: each piece
-- of text between placeholders, then the value of the placeholder after it. A value is never
-- read as a template in turn (a first name written "{{last_name}}" stays as written), and no
-- value goes through regexp_replace(), so one containing \1 or & comes out as written.
create function herald.render_bodies(p_workspace_id uuid, p_body text, p_contact_ids uuid[])
returns table (contact_id uuid, body text)
language sql
stable
set search_path = ''
as $$
  with parts as materialized (
    select t.n, t.piece, m.token[1] as token, m.token[2] as var_key
    from unnest(regexp_split_to_array(p_body, '\{\{\s*(first_name|last_name|var\.([a-z][a-z0-9_]*))\s*\}\}'))
         with ordinality t(piece, n)
    left join regexp_matches(p_body, '\{\{\s*(first_name|last_name|var\.([a-z][a-z0-9_]*))\s*\}\}', 'g')
         with ordinality m(token, n) on m.n = t.n
  )
  select c.id,
         string_agg(p.piece || coalesce(case p.token when 'first_name' then c.first_name
                                                     when 'last_name' then c.last_name
                                                     else v.value end, ''), '' order by p.n)
  from (select distinct u.id from unnest(p_contact_ids) u(id)) ids
  join public.contacts c on c.workspace_id = p_workspace_id and c.id = ids.id
  cross join parts p
  left join public.contact_variables v
    on v.workspace_id = p_workspace_id and v.contact_id = c.id and v.key = p.var_key
  group by c.id
$$;
comment on function herald.render_bodies(uuid, text, uuid[]) is 'Fills {{first_name}}, {{last_name}} and {{var.KEY}} of one template for each of the contacts; a missing value renders empty. Contacts not in the workspace are left out.';

create function herald.render_template(p_body text, p_workspace_id uuid, p_contact_id uuid) returns text
language sql
stable
set search_path = ''
as $$
  select r.body from herald.render_bodies(p_workspace_id, p_body, array[p_contact_id]) r
$$;
comment on function herald.render_template(text, uuid, uuid) is 'Fills {{first_name}}, {{last_name}} and {{var.KEY}} from the contact; a missing value renders empty.';

alter table public.sequence_steps add constraint sequence_steps_template_tokens
  check (body !~ '\{\{(?!\s*(first_name|last_name|var\.[a-z][a-z0-9_]*)\s*\}\})');
comment on constraint sequence_steps_template_tokens on public.sequence_steps is 'Only {{first_name}}, {{last_name}} and {{var.KEY}} are placeholders: a typo fails at save time, not at send time.';

/** Section - shared checks */
-- Why Herald may not message this contact now, or null if it may. The one definition used when
-- queueing, when claiming, and when a message comes back from a lost lease or an unsent attempt.
create function herald.contact_block_reason(c public.contacts) returns public.cancel_reason
language sql
stable
set search_path = ''
as $$
  select case
    when c.deleted_at is not null then 'contact_deleted'
    when c.opted_out_at is not null then 'contact_opted_out'
    when exists (select 1 from public.suppressions s
                 where s.workspace_id = c.workspace_id and s.phone_hash = c.phone_hash) then 'contact_opted_out'
    when c.controlled_by = 'human' then 'human_takeover'
  end::public.cancel_reason
$$;

-- The contact, locked, if the caller is a member of its workspace with at least p_min_role.
-- An unknown id and another workspace's id give the same P0002, so nothing leaks.
create function herald.member_contact(p_contact_id uuid, p_min_role text default 'agent') returns public.contacts
language plpgsql
set search_path = ''
as $$
declare
  v public.contacts;
begin
  if p_contact_id is null then
    raise exception 'contact_id is required' using errcode = '22023';
  end if;
  select * into v from public.contacts where id = p_contact_id for update;
  if not found or not herald.has_role(v.workspace_id) then
    raise exception 'contact % not found', p_contact_id using errcode = 'P0002';
  end if;
  perform herald.require_role(v.workspace_id, p_min_role);
  return v;
end;
$$;

-- The same for a message.
create function herald.member_message(p_message_id uuid) returns public.messages
language plpgsql
set search_path = ''
as $$
declare
  v public.messages;
begin
  if p_message_id is null then
    raise exception 'message_id is required' using errcode = '22023';
  end if;
  select * into v from public.messages where id = p_message_id for update;
  if not found or not herald.has_role(v.workspace_id) then
    raise exception 'message % not found', p_message_id using errcode = 'P0002';
  end if;
  perform herald.require_role(v.workspace_id);
  return v;
end;
$$;

-- The contact, locked, if Herald may message it now; raises why not otherwise, with a hint.
create function herald.sendable_contact(p_contact_id uuid, p_min_role text default 'agent') returns public.contacts
language plpgsql
set search_path = ''
as $$
declare
  v public.contacts := herald.member_contact(p_contact_id, p_min_role);
begin
  case herald.contact_block_reason(v)
    when 'contact_deleted' then
      raise exception 'contact % is deleted', p_contact_id using errcode = '55000',
        hint = 'restore_contact() brings a soft-deleted contact back.';
    when 'contact_opted_out' then
      if v.opted_out_at is null then
        raise exception 'contact %''s number is suppressed', p_contact_id using errcode = '55000',
          hint = 'The number opted out before; only a START reply from it lifts the suppression.';
      end if;
      raise exception 'contact % has opted out', p_contact_id using errcode = '55000',
        hint = 'Only the contact can opt back in, by replying START.';
    when 'human_takeover' then
      raise exception 'contact % is handled by a human', p_contact_id using errcode = '55000',
        hint = 'release_lead() hands the contact back to automation.';
    else
      return v;
  end case;
end;
$$;

/** Section - schedule and cancel */
create function public.schedule_message(
  contact_id uuid,
  body text,
  send_at timestamptz default now(),
  channel text default 'sms',
  idempotency_key text default null,
  appointment_id uuid default null
) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_contact public.contacts;
  v_channel public.channel;
  v_id uuid;
  v_existing public.messages;
begin
  if body is null or length(btrim(body)) = 0 then
    raise exception 'message body must not be empty' using errcode = '22023';
  end if;
  if length(btrim(body)) > 1600 then
    raise exception 'message body is % characters; the most is 1600', length(btrim(body)) using errcode = '22023';
  end if;
  if send_at > now() + interval '1 year' then
    raise exception 'send_at % is more than a year ahead', send_at using errcode = '22023';
  end if;
  if channel is null or channel not in ('sms', 'whatsapp') then
    raise exception 'unknown channel "%"', channel using errcode = '22023', hint = 'Use sms or whatsapp.';
  end if;
  v_channel := channel::public.channel;
  if idempotency_key is not null and length(idempotency_key) not between 1 and 200 then
    raise exception 'idempotency_key must be 1 to 200 characters' using errcode = '22023';
  end if;

  v_contact := herald.sendable_contact(schedule_message.contact_id);

  if schedule_message.idempotency_key is not null then
    select * into v_existing from public.messages m
    where m.workspace_id = v_contact.workspace_id and m.idempotency_key = schedule_message.idempotency_key;
    if found then
      if v_existing.contact_id <> v_contact.id or v_existing.body <> btrim(schedule_message.body) then
        raise exception 'idempotency_key "%" was already used for a different message', schedule_message.idempotency_key
          using errcode = '23505';
      end if;
      return v_existing.id;
    end if;
  end if;

  if schedule_message.appointment_id is not null and not exists (
    select 1 from public.appointments a
    where a.workspace_id = v_contact.workspace_id and a.id = schedule_message.appointment_id
      and a.contact_id = v_contact.id and a.status = 'scheduled'
  ) then
    raise exception 'appointment % is not a scheduled appointment of this contact', schedule_message.appointment_id
      using errcode = 'P0002';
  end if;

  insert into public.messages (workspace_id, contact_id, channel, body, send_at, idempotency_key, appointment_id, max_attempts)
  select v_contact.workspace_id, v_contact.id, v_channel, btrim(schedule_message.body),
         coalesce(schedule_message.send_at, now()), schedule_message.idempotency_key,
         schedule_message.appointment_id, w.max_attempts
  from public.workspaces w where w.id = v_contact.workspace_id
  on conflict (workspace_id, idempotency_key) where idempotency_key is not null do nothing
  returning id into v_id;

  if v_id is null then
    -- A concurrent call with the same key won the insert.
    select m.id into v_id from public.messages m
    where m.workspace_id = v_contact.workspace_id and m.idempotency_key = schedule_message.idempotency_key;
  end if;
  return v_id;
end;
$$;
comment on function public.schedule_message(uuid, text, timestamptz, text, text, uuid) is 'Schedules one message to a contact. Refuses deleted, opted-out, suppressed and human-controlled contacts; the same idempotency_key returns the same message.';

create function public.cancel_message(message_id uuid) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v public.messages := herald.member_message(cancel_message.message_id);
begin
  if v.status not in ('scheduled', 'queued') then
    return false;
  end if;
  update public.messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now()
  where id = v.id;
  return true;
end;
$$;
comment on function public.cancel_message(uuid) is 'Cancels a message not yet handed to the provider: true if it was cancelled now, false if it was already on its way or final.';

/** Section - sequences */
create function public.enroll_contact(sequence_id uuid, contact_id uuid) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_seq public.sequences;
  v_contact public.contacts;
  v_step public.sequence_steps;
  v_id uuid;
begin
  if enroll_contact.sequence_id is null then
    raise exception 'sequence_id is required' using errcode = '22023';
  end if;
  select * into v_seq from public.sequences s where s.id = enroll_contact.sequence_id;
  if not found or not herald.has_role(v_seq.workspace_id) then
    raise exception 'sequence % not found', enroll_contact.sequence_id using errcode = 'P0002';
  end if;
  v_contact := herald.sendable_contact(enroll_contact.contact_id);
  if v_contact.workspace_id <> v_seq.workspace_id then
    raise exception 'contact % not found', enroll_contact.contact_id using errcode = 'P0002';
  end if;
  return herald.enroll(v_seq, v_contact.id, now());
end;
$$;
comment on function public.enroll_contact(uuid, uuid) is 'Enrolls a contact in an active sequence and schedules step 1; returns the existing enrollment if one is already active.';

-- Shared by enroll_contact() and prepare_queue(): enroll and schedule the first step at
-- p_start + its delay. Callers have checked membership and the contact.
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
begin
  -- Most updates of messages (claims, leases, callbacks before sent) move no enrollment: one
  -- pass over the new rows tells, before planning the statements below.
  execute $sql$
    select coalesce(bool_or(n.enrollment_id is not null and n.retry_of is null
                            and n.status in ('sent', 'delivered', 'read', 'cancelled', 'failed', 'undelivered')), false)
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
      and o.status not in ('sent', 'delivered', 'read') and n.status in ('sent', 'delivered', 'read')
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

  update public.sequence_enrollments e
  set status = case when n.status = 'cancelled' then 'cancelled' else 'failed' end::public.enrollment_status,
      stopped_reason = case when n.status = 'cancelled' then n.cancel_reason::text
                            else 'step_' || n.status || coalesce('_' || n.last_error_code, '') end,
      completed_at = now()
  from old_rows o join new_rows n on n.id = o.id
  where n.enrollment_id is not null and n.retry_of is null and o.status <> n.status
    and n.status in ('cancelled', 'failed', 'undelivered')
    and e.workspace_id = n.workspace_id and e.id = n.enrollment_id and e.status = 'active'
  $sql$;
  return null;
end;
$$;
create trigger messages_advance_enrollments after update on public.messages
referencing old table as old_rows new table as new_rows
for each statement execute function herald.advance_enrollments();

/** Section - deletion RPCs */
create function public.delete_contact(contact_id uuid, hard boolean default false) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- Erasing personal data for good is an admin's call; any member may soft-delete.
  v public.contacts := herald.member_contact(delete_contact.contact_id,
                                             case when coalesce(hard, false) then 'admin' else 'agent' end);
  v_log public.deletion_log;
begin

  if coalesce(hard, false) then
    delete from public.contacts c where c.id = v.id;
  else
    if v.deleted_at is not null then
      raise exception 'contact % is already deleted', v.id using errcode = '55000',
        hint = 'restore_contact() undoes a soft delete; delete_contact(id, hard => true) erases the contact.';
    end if;
    update public.contacts c set deleted_at = now() where c.id = v.id;
  end if;

  select * into v_log from public.deletion_log l
  where l.entity = 'contact' and l.entity_id = v.id order by l.id desc limit 1;
  return jsonb_build_object(
    'contact_id', v.id,
    'mode', case when coalesce(hard, false) then 'hard' else 'soft' end,
    'deletion_id', v_log.id,
    'provider_erasures_queued', (select count(*) from herald.provider_erasures p where p.deletion_id = v_log.id)
  ) || v_log.counts;
end;
$$;
comment on function public.delete_contact(uuid, boolean) is 'Soft (default) or hard delete of a contact. Both cancel every pending message and active enrollment first; hard also erases the contact and its personal data. Returns what was cancelled, deleted and set null, per table.';

create function public.restore_contact(contact_id uuid) returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v public.contacts := herald.member_contact(restore_contact.contact_id);
begin
  if v.deleted_at is null then
    raise exception 'contact % is not deleted', v.id using errcode = '55000';
  end if;
  if exists (select 1 from public.contacts c
             where c.workspace_id = v.workspace_id and c.phone = v.phone and c.deleted_at is null) then
    raise exception 'another live contact already has phone %', v.phone using errcode = '23505',
      hint = 'Delete or change the other contact first.';
  end if;
  update public.contacts c set deleted_at = null where c.id = v.id;
end;
$$;
comment on function public.restore_contact(uuid) is 'Undoes a soft delete. What the delete cancelled stays cancelled.';

create function public.preview_delete(entity text, id uuid) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_table regclass;
  v_workspace uuid;
  v_impact jsonb;
  v_replacement uuid;
begin
  v_table := case preview_delete.entity
    when 'workspace' then 'public.workspaces' when 'contact' then 'public.contacts'
    when 'sequence' then 'public.sequences' when 'sender' then 'public.senders'
    when 'campaign' then 'public.campaigns' when 'appointment' then 'public.appointments'
    when 'whatsapp_group' then 'public.whatsapp_groups' end;
  if v_table is null then
    raise exception 'unknown entity "%"', preview_delete.entity using errcode = '22023',
      hint = 'Use one of workspace, contact, sequence, sender, campaign, appointment, whatsapp_group.';
  end if;
  if preview_delete.id is null then
    raise exception 'id is required' using errcode = '22023';
  end if;
  execute format('select %s from %s where id = $1',
                 case when preview_delete.entity = 'workspace' then 'id' else 'workspace_id' end, v_table)
    into v_workspace using preview_delete.id;
  if v_workspace is null or not herald.has_role(v_workspace) then
    raise exception '% % not found', preview_delete.entity, preview_delete.id using errcode = 'P0002';
  end if;
  perform herald.require_role(v_workspace);

  v_impact := herald.delete_impact(v_table, preview_delete.id);
  if preview_delete.entity = 'sender' then
    v_replacement := herald.replacement_sender(v_workspace, preview_delete.id);
    v_impact := v_impact || jsonb_build_object('rebind', jsonb_build_object(
      'messages', case when v_replacement is null then 0 else (v_impact -> 'cancel' ->> 'messages')::bigint end,
      'to_sender_id', v_replacement));
    if v_replacement is not null then
      -- Re-bound messages keep a sender: they are neither set null nor cancelled, and stop no
      -- enrollment (a sender's delete removes none itself).
      v_impact := jsonb_set(v_impact, '{set_null,public.messages.sender_id}', to_jsonb(
        (v_impact -> 'set_null' ->> 'public.messages.sender_id')::bigint - (v_impact -> 'rebind' ->> 'messages')::bigint));
      v_impact := jsonb_set(v_impact, '{cancel}', '{"messages": 0, "sequence_enrollments": 0}');
    end if;
  end if;
  return jsonb_build_object('entity', preview_delete.entity, 'id', preview_delete.id) || v_impact;
end;
$$;
comment on function public.preview_delete(text, uuid) is 'What deleting the row would cancel, cascade to, set null or be blocked by, per table with counts. Derived from the live catalog.';

/** Section - housekeeping */
create function public.cleanup_stale_senders(older_than interval default '1 day') returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_user uuid := (select auth.uid());
begin
  if older_than is null or older_than < interval '0' then
    raise exception 'older_than must be a positive interval' using errcode = '22023';
  end if;
  if v_user is null and coalesce((select auth.role()), '') not in ('', 'service_role') then
    raise exception 'not signed in' using errcode = '42501';
  end if;
  if v_user is null then
    perform set_config('herald.actor', coalesce(nullif(current_setting('herald.actor', true), ''), 'cron'), true);
  end if;
  -- A user cleans up the workspaces they administer; cron and the service role clean up all.
  with gone as (
    delete from public.senders s
    where s.status <> 'connected' and s.phone_number is null
      and coalesce(s.last_seen_at, s.created_at) < now() - older_than
      and (v_user is null or s.workspace_id in (select herald.my_workspace_ids('admin')))
    returning 1
  ) select count(*) into v_count from gone;
  return v_count;
end;
$$;
comment on function public.cleanup_stale_senders(interval) is 'Deletes senders that are not connected and have no number, with their groups and campaign links; their pending messages are re-bound to the default sender or cancelled (sender_deleted).';

create function herald.purge_deleted_contacts(p_retention interval default '30 days') returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_actor text := coalesce(current_setting('herald.actor', true), '');
begin
  perform set_config('herald.actor', 'cron', true);
  with gone as (
    delete from public.contacts where deleted_at < now() - p_retention returning 1
  ) select count(*) into v_count from gone;
  perform set_config('herald.actor', v_actor, true);
  return v_count;
end;
$$;
comment on function herald.purge_deleted_contacts(interval) is 'Hard-deletes contacts soft-deleted longer ago than the retention period (pg_cron, daily).';
-- Cron's alone: any other caller could erase every workspace's soft-deleted contacts early.
-- (`alter default privileges in schema herald` cannot take back the global default EXECUTE for
-- PUBLIC, so a security-definer function in herald is revoked by name.)
revoke execute on function herald.purge_deleted_contacts(interval) from public;

select cron.schedule('herald-purge-deleted-contacts', '17 3 * * *', $$select herald.purge_deleted_contacts()$$);
select cron.schedule('herald-cleanup-stale-senders', '7 * * * *', $$select public.cleanup_stale_senders()$$);

/** Section - grants */
revoke execute on function public.schedule_message(uuid, text, timestamptz, text, text, uuid),
  public.cancel_message(uuid), public.enroll_contact(uuid, uuid), public.delete_contact(uuid, boolean),
  public.restore_contact(uuid), public.preview_delete(text, uuid), public.cleanup_stale_senders(interval)
  from public, anon;
grant execute on function public.schedule_message(uuid, text, timestamptz, text, text, uuid),
  public.cancel_message(uuid), public.enroll_contact(uuid, uuid), public.delete_contact(uuid, boolean),
  public.restore_contact(uuid), public.preview_delete(text, uuid), public.cleanup_stale_senders(interval)
  to authenticated, service_role;
-- Not to authenticated: it answers for any workspace, so a member could ask about another
-- tenant's opt-outs. The RPCs call it as their owner.
revoke execute on function herald.is_suppressed(uuid, text) from public;
grant execute on function herald.is_suppressed(uuid, text) to service_role;

/** Section - what each trigger function does (shown in docs/deletion-rules.md) */
comment on function herald.advance_enrollments() is 'Sequence engine: a sent step schedules the next (or completes the enrollment); a cancelled, failed or undelivered one stops it.';
