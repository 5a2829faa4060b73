/**
 * The RPCs of the contract for single messages and enrollments (schedule_message, cancel_message,
 * enroll_contact), and the member lookups every RPC starts from.
 *
 * Each RPC is security definer because it writes tables clients cannot write directly; each
 * checks the caller first: a signed-in user (herald.require_user, before anything is read), then
 * membership of the row's workspace through herald.member_contact(), member_message(),
 * member_sequence() or member_workspace(). An id that does not exist and an id of another
 * workspace give the same P0002 error (herald.require_member), so nothing leaks across tenants.
 * herald.contact_block_reason() is the one answer to "may Herald message this contact now?",
 * shared with queueing and claiming.
 *
 * Error codes of every RPC (stable, documented in the README):
 *   22023 invalid parameter (empty body, unknown entity, send_at too far ahead…)
 *   42501 not signed in (every RPC, before anything else) / not a member / role too low
 *   P0002 no such row (or not yours)
 *   55000 the row is in the wrong state (deleted contact, opted out, archived sequence…)
 *   23505 conflicting duplicate (idempotency key reused for another message, phone taken)
 */

/** Section - member lookups */
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

-- The end of every member lookup, once the row is read: no id is a bad parameter (22023); a row
-- of another workspace, or none (p_workspace_id null), is "not found" (P0002: the same answer
-- for both, so a probe learns nothing about other tenants); a member whose role is too low gets
-- 42501.
create function herald.require_member(p_workspace_id uuid, p_min_role text, p_entity text, p_id uuid) returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_id is null then
    raise exception '%_id is required', p_entity using errcode = '22023';
  end if;
  if p_workspace_id is null or not herald.has_role(p_workspace_id) then
    raise exception '% % not found', p_entity, p_id using errcode = 'P0002';
  end if;
  perform herald.require_role(p_workspace_id, p_min_role);
end;
$$;
comment on function herald.require_member(uuid, text, text, uuid) is 'Raises 22023 "<entity>_id is required" without an id, P0002 "<entity> <id> not found" unless the caller belongs to the workspace, 42501 if her role is below p_min_role.';

-- The contact, locked, if the caller is a member of its workspace with at least p_min_role.
create function herald.member_contact(p_contact_id uuid, p_min_role text default 'agent') returns public.contacts
language plpgsql
set search_path = ''
as $$
declare
  v public.contacts;
begin
  perform herald.require_user();
  select * into v from public.contacts where id = p_contact_id for update;
  perform herald.require_member(v.workspace_id, p_min_role, 'contact', p_contact_id);
  return v;
end;
$$;
comment on function herald.member_contact(uuid, text) is 'The contact, locked, for a caller with at least p_min_role in its workspace; 42501 without a user, 22023 without an id, P0002 when unknown or another workspace''s.';

-- The same for a message.
create function herald.member_message(p_message_id uuid) returns public.messages
language plpgsql
set search_path = ''
as $$
declare
  v public.messages;
begin
  perform herald.require_user();
  select * into v from public.messages where id = p_message_id for update;
  perform herald.require_member(v.workspace_id, 'agent', 'message', p_message_id);
  return v;
end;
$$;
comment on function herald.member_message(uuid) is 'The message, locked, for a member of its workspace; 42501 without a user, 22023 without an id, P0002 when unknown or another workspace''s.';

-- The same for a sequence, held with a share lock until the caller commits: an archive (which
-- stops the sequence's active enrollments) waits for an enrollment made under it and then stops
-- that one too, and an enrollment that comes after an archive sees the sequence archived.
create function herald.member_sequence(p_sequence_id uuid, p_min_role text default 'agent') returns public.sequences
language plpgsql
set search_path = ''
as $$
declare
  v public.sequences;
begin
  perform herald.require_user();
  select * into v from public.sequences where id = p_sequence_id for share;
  perform herald.require_member(v.workspace_id, p_min_role, 'sequence', p_sequence_id);
  return v;
end;
$$;
comment on function herald.member_sequence(uuid, text) is 'The sequence, share-locked, for a caller with at least p_min_role in its workspace; 42501 without a user, 22023 without an id, P0002 when unknown or another workspace''s.';

-- The same for a workspace. Not locked: a workspace row is the parent of everything in it, and
-- a lock held through a long RPC (prepare_queue) would hold up every write to it; an RPC that
-- changes the row does so with a conditional update instead.
create function herald.member_workspace(p_workspace_id uuid, p_min_role text default 'agent') returns public.workspaces
language plpgsql
set search_path = ''
as $$
declare
  v public.workspaces;
begin
  perform herald.require_user();
  select * into v from public.workspaces where id = p_workspace_id;
  perform herald.require_member(v.id, p_min_role, 'workspace', p_workspace_id);
  return v;
end;
$$;
comment on function herald.member_workspace(uuid, text) is 'The workspace, for a caller with at least p_min_role in it; 42501 without a user (or with too low a role), 22023 without an id, P0002 when unknown or not hers.';

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
  perform herald.require_user();
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
revoke execute on function public.schedule_message(uuid, text, timestamptz, text, text, uuid) from public, anon;
grant execute on function public.schedule_message(uuid, text, timestamptz, text, text, uuid) to authenticated, service_role;

create function public.cancel_message(message_id uuid) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v public.messages := herald.member_message(cancel_message.message_id);
begin
  if not v.status = any (herald.pending_statuses()) then
    return false;
  end if;
  update public.messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now()
  where id = v.id;
  return true;
end;
$$;
comment on function public.cancel_message(uuid) is 'Cancels a message not yet handed to the provider: true if it was cancelled now, false if it was already on its way or final.';
revoke execute on function public.cancel_message(uuid) from public, anon;
grant execute on function public.cancel_message(uuid) to authenticated, service_role;

/** Section - enroll */
-- The membership and contact checks; herald.enroll() (the sequence engine) does the enrolling.
create function public.enroll_contact(sequence_id uuid, contact_id uuid) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_seq public.sequences := herald.member_sequence(enroll_contact.sequence_id);
  v_contact public.contacts := herald.sendable_contact(enroll_contact.contact_id);
begin
  if v_contact.workspace_id <> v_seq.workspace_id then
    raise exception 'contact % not found', enroll_contact.contact_id using errcode = 'P0002';
  end if;
  return herald.enroll(v_seq, v_contact.id, now());
end;
$$;
comment on function public.enroll_contact(uuid, uuid) is 'Enrolls a contact in an active sequence and schedules step 1; returns the existing enrollment if one is already active.';
revoke execute on function public.enroll_contact(uuid, uuid) from public, anon;
grant execute on function public.enroll_contact(uuid, uuid) to authenticated, service_role;
