/**
 * The deletion RPCs of the contract: delete_contact (soft by default, hard erases personal data),
 * restore_contact (undoes a soft delete) and preview_delete (what deleting any entity would do).
 *
 * They are thin on purpose: the cancellations, the deletion_log row and the provider erasure
 * queue are the triggers' work (deletion_rules), so a delete done any other way follows the same
 * rules; the preview and the log both read herald.delete_impact() (delete_impact), so they cannot
 * disagree. Membership and error codes as in message_rpcs.
 */

/** Section - delete and restore */
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
revoke execute on function public.delete_contact(uuid, boolean) from public, anon;
grant execute on function public.delete_contact(uuid, boolean) to authenticated, service_role;

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
revoke execute on function public.restore_contact(uuid) from public, anon;
grant execute on function public.restore_contact(uuid) to authenticated, service_role;

/** Section - preview */
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
  perform herald.require_user();
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
  perform herald.require_member(v_workspace, 'agent', preview_delete.entity, preview_delete.id);

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
revoke execute on function public.preview_delete(text, uuid) from public, anon;
grant execute on function public.preview_delete(text, uuid) to authenticated, service_role;
