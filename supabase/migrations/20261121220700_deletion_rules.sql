/**
 * The deletion and cancellation rules, enforced by triggers so that no code path can skip them
 * (a contact deleted from the app must not leave its sequences and scheduled messages running,
 * nor have them block the delete).
 *
 *   contact soft-deleted, opted out or taken over → its pending messages and active enrollments
 *     are cancelled in the same statement (contact_deleted / contact_opted_out / human_takeover);
 *     an opt-out, and an opt-in, is the number's: every row with it follows
 *   contact hard-deleted → the same cancellations, then the contact and all its personal data go
 *     by cascade; provider records are queued for erasure; an opt-out stays as a suppression
 *   sequence archived or deleted → active enrollments stop, their pending messages are cancelled
 *   sender deleted → pending messages re-bound to the default sender of the channel, else cancelled
 *   appointment moved → pending reminders move by the same amount; cancelled, completed or
 *     deleted → they are cancelled
 *   campaign deleted → its pending messages are cancelled
 *
 * Every delete of an entity writes one deletion_log row whose counts come from
 * herald.delete_impact(), the same walk preview_delete() shows.
 */

/** Section - shared pieces */
create function herald.log_deletion(p_entity text, p_table regclass, p_workspace_id uuid, p_id uuid, p_extra jsonb default '{}')
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_impact jsonb := herald.delete_impact(p_table, p_id);
  v_id bigint;
begin
  insert into public.deletion_log (workspace_id, entity, entity_id, mode, actor, counts)
  values (p_workspace_id, p_entity, p_id, 'hard', herald.current_actor(),
          jsonb_build_object('cancelled', v_impact -> 'cancel', 'deleted', v_impact -> 'cascade',
                             'set_null', v_impact -> 'set_null') || p_extra)
  returning id into v_id;
  return v_id;
end;
$$;

-- Sets the reason the ledger trigger records for the next statements of this transaction and
-- returns the previous one, so a trigger can restore whatever its caller had set.
create function herald.set_reason(p_reason text) returns text
language plpgsql
set search_path = ''
as $$
declare
  v_prev text := coalesce(current_setting('herald.reason', true), '');
begin
  perform set_config('herald.reason', coalesce(p_reason, ''), true);
  return v_prev;
end;
$$;

/** Section - contacts */
create function herald.contacts_before_write() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' or new.phone is distinct from old.phone then
    new.phone_hash := herald.phone_hash(new.workspace_id, new.phone);
    -- A number on the suppression list stays opted out when it is added (or changed to) again.
    if new.opted_out_at is null and exists (
      select 1 from public.suppressions s where s.workspace_id = new.workspace_id and s.phone_hash = new.phone_hash
    ) then
      new.opted_out_at := now();
    end if;
  elsif new.phone_hash is distinct from old.phone_hash then
    new.phone_hash := old.phone_hash; -- derived, never set by hand
  end if;
  return new;
end;
$$;
comment on function herald.contacts_before_write() is 'Contact added or phone changed: keeps phone_hash, and a number on the suppression list comes back opted out.';
create trigger contacts_before_write before insert or update of phone, phone_hash on public.contacts
for each row execute function herald.contacts_before_write();

-- Only the contact lifts an opt-out, by replying START (apply_inbound sets herald.opt_in for
-- that one statement). An agent clearing opted_out_at would message someone who said STOP.
create function herald.contacts_guard_opt_in() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.opted_out_at is not null and new.opted_out_at is null
     and coalesce(current_setting('herald.opt_in', true), '') <> 'on' then
    raise exception 'contact % opted out; only the contact can opt back in', old.id using errcode = '42501',
      hint = 'The contact opts back in by replying START (or YES, UNSTOP) to your number.';
  end if;
  return new;
end;
$$;
comment on function herald.contacts_guard_opt_in() is 'Only the contact can lift an opt-out (a START reply); any other update clearing opted_out_at fails 42501.';
create trigger contacts_guard_opt_in before update of opted_out_at on public.contacts
for each row execute function herald.contacts_guard_opt_in();

create function herald.contacts_after_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_actor text := herald.current_actor();
  v_relevant boolean;
  v_opted_out boolean;
  v_opted_in boolean;
begin
  -- Statements over the transition tables go through EXECUTE: planned for this firing's rows
  -- (a bulk update of 100,000 contacts must not reuse a plan made for one). An aggregate, not
  -- exists(): the planner reads exists() as "stops at the first match" and joins the two
  -- transition tables by nested loop, quadratic when nothing matches; an aggregate hashes them.
  -- Most updates (names, lead_status) touch none of the columns the rules follow: one pass
  -- tells, and the rest is skipped.
  execute $sql$
    select coalesce(bool_or(o.deleted_at is distinct from n.deleted_at
                            or o.opted_out_at is distinct from n.opted_out_at
                            or o.controlled_by is distinct from n.controlled_by), false),
           coalesce(bool_or(o.opted_out_at is null and n.opted_out_at is not null), false),
           coalesce(bool_or(o.opted_out_at is not null and n.opted_out_at is null), false)
    from old_rows o join new_rows n on n.id = o.id
  $sql$ into v_relevant, v_opted_out, v_opted_in;
  if not v_relevant then
    return null;
  end if;

  execute $sql$
  with changed as (
    select n.id, n.workspace_id, n.phone,
           o.deleted_at is null and n.deleted_at is not null as deleted,
           o.deleted_at is not null and n.deleted_at is null as restored,
           o.opted_out_at is null and n.opted_out_at is not null as opted_out,
           o.opted_out_at is not null and n.opted_out_at is null as opted_in,
           o.controlled_by = 'automation' and n.controlled_by = 'human' as taken,
           o.controlled_by = 'human' and n.controlled_by = 'automation' as released
    from old_rows o join new_rows n on n.id = o.id
  ), stopping as (
    select id, workspace_id, deleted,
           (case when deleted then 'contact_deleted' when opted_out then 'contact_opted_out'
                 else 'human_takeover' end)::public.cancel_reason as reason
    from changed where deleted or opted_out or taken
  ), cancelled as (
    update public.messages m
    set status = 'cancelled', cancel_reason = s.reason, cancelled_at = now()
    from stopping s
    where m.workspace_id = s.workspace_id and m.contact_id = s.id and m.status = any (herald.pending_statuses())
    returning m.contact_id
  ), stopped as (
    update public.sequence_enrollments e
    set status = 'cancelled', stopped_reason = s.reason::text, completed_at = now()
    from stopping s
    where e.workspace_id = s.workspace_id and e.contact_id = s.id and e.status = 'active'
    returning e.contact_id
  ), cm as (
    select contact_id, count(*) as n from cancelled group by contact_id
  ), ce as (
    select contact_id, count(*) as n from stopped group by contact_id
  ), logged as (
    insert into public.deletion_log (workspace_id, entity, entity_id, mode, actor, counts)
    select s.workspace_id, 'contact', s.id, 'soft', $1,
           jsonb_build_object('cancelled', jsonb_build_object('messages', coalesce(cm.n, 0),
                                                             'sequence_enrollments', coalesce(ce.n, 0)),
                              'deleted', '{}'::jsonb, 'set_null', '{}'::jsonb)
    from stopping s left join cm on cm.contact_id = s.id left join ce on ce.contact_id = s.id
    where s.deleted
    returning 1
  ), activities as (
    select c.workspace_id, c.id, k.kind,
           jsonb_build_object('cancelled_messages', coalesce(cm.n, 0), 'cancelled_enrollments', coalesce(ce.n, 0)) as detail
    from changed c
    cross join lateral (values
      ('soft_deleted', c.deleted), ('restored', c.restored), ('opted_out', c.opted_out),
      ('opted_in', c.opted_in), ('taken_over', c.taken), ('released', c.released)) k(kind, happened)
    left join cm on cm.contact_id = c.id
    left join ce on ce.contact_id = c.id
    where k.happened
  )
  insert into public.contact_activities (workspace_id, contact_id, kind, detail, actor)
  select workspace_id, id, kind, detail, $1 from activities
  $sql$ using v_actor;

  -- The suppression list follows opt-outs, keyed by a hash so it can outlive the contact.
  execute $sql$
  insert into public.suppressions (workspace_id, phone_hash, reason)
  select n.workspace_id, herald.phone_hash(n.workspace_id, n.phone),
         $1
  from old_rows o join new_rows n on n.id = o.id
  where o.opted_out_at is null and n.opted_out_at is not null
  on conflict (workspace_id, phone_hash) do nothing
  $sql$ using coalesce(nullif(current_setting('herald.opt_out_reason', true), ''), 'opted_out');

  -- An opt-out is the number's: every other row with it (the live contact when a soft-deleted
  -- twin opted out, say through a late 21610) opts out too, which cancels what it had pending
  -- (this trigger again, one level down, with nothing left to propagate). Guarded, because a
  -- statement trigger fires even for an update of no rows: unguarded, it would recurse forever.
  if v_opted_out then
    execute $sql$
      update public.contacts c
      set opted_out_at = n.opted_out_at
      from old_rows o join new_rows n on n.id = o.id
      where o.opted_out_at is null and n.opted_out_at is not null
        and c.workspace_id = n.workspace_id and c.phone = n.phone and c.id <> n.id and c.opted_out_at is null
    $sql$;
  end if;

  -- And so is an opt-in (only the number gives one, by START: herald.opt_in is on for that
  -- statement, and still on here). A twin left opted out, soft-deleted say, would otherwise put
  -- the number back on the suppression list when it is erased, under the contact that said START.
  if v_opted_in then
    execute $sql$
      update public.contacts c
      set opted_out_at = null
      from old_rows o join new_rows n on n.id = o.id
      where o.opted_out_at is not null and n.opted_out_at is null
        and c.workspace_id = n.workspace_id and c.phone = n.phone and c.id <> n.id and c.opted_out_at is not null
    $sql$;
  end if;

  execute $sql$
  delete from public.suppressions s
  using old_rows o join new_rows n on n.id = o.id
  where o.opted_out_at is not null and n.opted_out_at is null
    and s.workspace_id = n.workspace_id and s.phone_hash = herald.phone_hash(n.workspace_id, n.phone)
  $sql$;
  return null;
end;
$$;
comment on function herald.contacts_after_update() is 'Soft delete, opt-out or takeover: cancels pending messages and active enrollments in the same statement (contact_deleted / contact_opted_out / human_takeover), writes deletion_log and contact_activities, extends an opt-out or an opt-in to every row with the number, keeps suppressions in step.';
create trigger contacts_after_update after update on public.contacts
referencing old table as old_rows new table as new_rows
for each statement execute function herald.contacts_after_update();

create function herald.contacts_before_delete() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_log bigint;
  v_cancelled bigint;
  v_stopped bigint;
begin
  -- Inside a workspace delete the workspace's own log covers this row.
  if not exists (select 1 from public.workspaces w where w.id = old.workspace_id) then
    return old;
  end if;

  -- Measured before anything changes, so the log says what preview_delete() showed: the
  -- cancellations below add one ledger row per pending message, which go with their messages
  -- and are not history the delete erased.
  v_log := herald.log_deletion('contact', 'public.contacts', old.workspace_id, old.id);

  -- Cancel, exactly as a soft delete would, before the rows go. Enrollments first: cancelling
  -- a step message stops its enrollment by itself (herald.advance_enrollments), which would
  -- hide it from this count.
  with e as (
    update public.sequence_enrollments set status = 'cancelled', stopped_reason = 'contact_deleted', completed_at = now()
    where workspace_id = old.workspace_id and contact_id = old.id and status = 'active'
    returning 1
  ) select count(*) into v_stopped from e;
  with c as (
    update public.messages set status = 'cancelled', cancel_reason = 'contact_deleted', cancelled_at = now()
    where workspace_id = old.workspace_id and contact_id = old.id and status = any (herald.pending_statuses())
    returning 1
  ) select count(*) into v_cancelled from c;
  update public.deletion_log
  set counts = jsonb_set(counts, '{cancelled}', jsonb_build_object('messages', v_cancelled, 'sequence_enrollments', v_stopped))
  where id = v_log;

  if old.opted_out_at is not null then
    insert into public.suppressions (workspace_id, phone_hash, reason)
    values (old.workspace_id, herald.phone_hash(old.workspace_id, old.phone), 'opted_out')
    on conflict (workspace_id, phone_hash) do nothing;
  end if;

  -- Twilio keeps a copy of every message; erase those too (the delete-contact function and the
  -- dispatcher work this outbox until each is erased).
  insert into herald.provider_erasures (deletion_id, workspace_id, provider_sid)
  select v_log, old.workspace_id, a.provider_sid
  from public.messages m
  join public.message_attempts a on a.workspace_id = m.workspace_id and a.message_id = m.id
  where m.workspace_id = old.workspace_id and m.contact_id = old.id and a.provider_sid is not null
  on conflict (provider_sid) do nothing;
  return old;
end;
$$;
comment on function herald.contacts_before_delete() is 'Hard delete: logs the impact, cancels pending messages and active enrollments (contact_deleted), keeps an opt-out as a suppression, queues provider erasure. Skipped inside a workspace delete.';
create trigger contacts_before_delete before delete on public.contacts
for each row execute function herald.contacts_before_delete();

/** Section - sequences */
create function herald.stop_sequence(p_workspace_id uuid, p_sequence_id uuid) returns void
language sql
set search_path = ''
as $$
  update public.messages m
  set status = 'cancelled', cancel_reason = 'sequence_stopped', cancelled_at = now()
  from public.sequence_enrollments e
  where e.workspace_id = p_workspace_id and e.sequence_id = p_sequence_id and e.status = 'active'
    and m.workspace_id = e.workspace_id and m.enrollment_id = e.id and m.status = any (herald.pending_statuses());
  update public.sequence_enrollments
  set status = 'cancelled', stopped_reason = 'sequence_stopped', completed_at = now()
  where workspace_id = p_workspace_id and sequence_id = p_sequence_id and status = 'active';
$$;

create function herald.sequences_after_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.status = 'archived' and old.status <> 'archived' then
    perform herald.stop_sequence(new.workspace_id, new.id);
  end if;
  return null;
end;
$$;
comment on function herald.sequences_after_update() is 'Sequence archived: stops active enrollments and cancels their pending messages (sequence_stopped).';
create trigger sequences_after_update after update of status on public.sequences
for each row execute function herald.sequences_after_update();

create function herald.sequences_before_delete() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.workspaces w where w.id = old.workspace_id) then
    return old;
  end if;
  perform herald.log_deletion('sequence', 'public.sequences', old.workspace_id, old.id);
  perform herald.stop_sequence(old.workspace_id, old.id);
  return old;
end;
$$;
comment on function herald.sequences_before_delete() is 'Sequence delete: logs the impact, stops active enrollments, cancels their pending messages (sequence_stopped); sent history stays.';
create trigger sequences_before_delete before delete on public.sequences
for each row execute function herald.sequences_before_delete();

/** Section - senders */
create function herald.replacement_sender(p_workspace_id uuid, p_sender_id uuid) returns uuid
language sql
stable
set search_path = ''
as $$
  select r.id from public.senders s
  join public.senders r on r.workspace_id = s.workspace_id and r.channel = s.channel and r.is_default and r.id <> s.id
  where s.workspace_id = p_workspace_id and s.id = p_sender_id
$$;
comment on function herald.replacement_sender(uuid, uuid) is 'The default sender of the same channel that takes over a deleted sender''s pending messages, if any.';

create function herald.senders_before_delete() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_replacement uuid := herald.replacement_sender(old.workspace_id, old.id);
  v_rebound bigint := 0;
begin
  if not exists (select 1 from public.workspaces w where w.id = old.workspace_id) then
    return old;
  end if;
  if v_replacement is not null then
    with r as (
      update public.messages set sender_id = v_replacement
      where workspace_id = old.workspace_id and sender_id = old.id and status = any (herald.pending_statuses())
      returning 1
    ) select count(*) into v_rebound from r;
  end if;
  -- Logged after the re-binding, so the impact's pending count is exactly what gets cancelled.
  perform herald.log_deletion('sender', 'public.senders', old.workspace_id, old.id,
                              jsonb_build_object('rebound', jsonb_build_object('messages', v_rebound)));
  update public.messages
  set status = 'cancelled', cancel_reason = 'sender_deleted', cancelled_at = now()
  where workspace_id = old.workspace_id and sender_id = old.id and status = any (herald.pending_statuses());
  return old;
end;
$$;
comment on function herald.senders_before_delete() is 'Sender delete: re-binds pending messages to the default sender of the channel, else cancels them (sender_deleted); logs the impact.';
create trigger senders_before_delete before delete on public.senders
for each row execute function herald.senders_before_delete();

create function herald.whatsapp_groups_before_delete() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Only a delete of the group itself is logged; a sender's delete logs its groups.
  if exists (select 1 from public.senders s where s.workspace_id = old.workspace_id and s.id = old.sender_id) then
    perform herald.log_deletion('whatsapp_group', 'public.whatsapp_groups', old.workspace_id, old.id);
  end if;
  return old;
end;
$$;
comment on function herald.whatsapp_groups_before_delete() is 'Group deleted on its own: logs the impact (a sender delete logs its groups).';
create trigger whatsapp_groups_before_delete before delete on public.whatsapp_groups
for each row execute function herald.whatsapp_groups_before_delete();

/** Section - appointments */
create function herald.appointments_after_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_prev text;
begin
  if new.status <> old.status and new.status in ('cancelled', 'completed') then
    update public.messages
    set status = 'cancelled', cancelled_at = now(),
        cancel_reason = case new.status when 'cancelled' then 'appointment_cancelled'
                                        else 'appointment_completed' end::public.cancel_reason
    where workspace_id = new.workspace_id and appointment_id = new.id and status = any (herald.pending_statuses());
  elsif new.starts_at <> old.starts_at and new.status = 'scheduled' then
    v_prev := herald.set_reason('appointment_moved');
    update public.messages
    set send_at = send_at + (new.starts_at - old.starts_at),
        -- a queued reminder moved into the future waits to be queued again
        status = case when send_at + (new.starts_at - old.starts_at) > now() then 'scheduled'::public.message_status
                      else status end
    where workspace_id = new.workspace_id and appointment_id = new.id and status = any (herald.pending_statuses());
    perform herald.set_reason(v_prev);
  end if;
  return null;
end;
$$;
comment on function herald.appointments_after_update() is 'Appointment cancelled or completed: cancels pending reminders (appointment_cancelled / appointment_completed); moved: shifts them by the same amount.';
create trigger appointments_after_update after update of status, starts_at on public.appointments
for each row execute function herald.appointments_after_update();

create function herald.appointments_before_delete() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Inside a contact's hard delete the reminders go with the contact.
  if not exists (select 1 from public.contacts c where c.workspace_id = old.workspace_id and c.id = old.contact_id) then
    return old;
  end if;
  perform herald.log_deletion('appointment', 'public.appointments', old.workspace_id, old.id);
  update public.messages
  set status = 'cancelled', cancel_reason = 'appointment_cancelled', cancelled_at = now()
  where workspace_id = old.workspace_id and appointment_id = old.id and status = any (herald.pending_statuses());
  return old;
end;
$$;
comment on function herald.appointments_before_delete() is 'Appointment delete: logs the impact, cancels pending reminders (appointment_cancelled); inside a contact delete they go with the contact.';
create trigger appointments_before_delete before delete on public.appointments
for each row execute function herald.appointments_before_delete();

/** Section - campaigns and workspaces */
create function herald.campaigns_before_delete() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.workspaces w where w.id = old.workspace_id) then
    return old;
  end if;
  perform herald.log_deletion('campaign', 'public.campaigns', old.workspace_id, old.id);
  update public.messages
  set status = 'cancelled', cancel_reason = 'campaign_deleted', cancelled_at = now()
  where workspace_id = old.workspace_id and campaign_id = old.id and status = any (herald.pending_statuses());
  return old;
end;
$$;
comment on function herald.campaigns_before_delete() is 'Campaign delete: logs the impact, cancels pending messages (campaign_deleted).';
create trigger campaigns_before_delete before delete on public.campaigns
for each row execute function herald.campaigns_before_delete();

create function herald.workspaces_before_delete() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_log bigint := herald.log_deletion('workspace', 'public.workspaces', old.id, old.id);
begin
  insert into herald.provider_erasures (deletion_id, workspace_id, provider_sid)
  select v_log, old.id, a.provider_sid from public.message_attempts a
  where a.workspace_id = old.id and a.provider_sid is not null
  on conflict (provider_sid) do nothing;
  return old;
end;
$$;
comment on function herald.workspaces_before_delete() is 'Workspace delete: logs the impact, queues every provider message record of the workspace for erasure.';
create trigger workspaces_before_delete before delete on public.workspaces
for each row execute function herald.workspaces_before_delete();
