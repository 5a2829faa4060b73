/**
 * Role boundaries at the table, not only in the RPCs.
 *
 * The RPCs checked roles, but a member's plain UPDATE or DELETE went around them:
 *   - an agent set deleted_at = '2000-01-01' and the nightly purge then hard-deleted the contact
 *     (a hard delete is an admin's call): deleted_at is now the server's clock;
 *   - an agent handed an admin's lead back to automation (release_lead refuses that) or rewrote
 *     assigned_to: controlled_by and assigned_to now move only as take_lead / release_lead move them;
 *   - an admin removed an owner: only owners remove owners (and never the last one, as before).
 *
 * These guards apply to statements a client runs as `authenticated`. Herald's RPCs are security
 * definer (they run as their owner, after their own checks), and cron and the service role are the
 * server: they are not limited here.
 */

/** Section - contacts */
create function herald.contacts_guard_roles() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
begin
  if current_user <> 'authenticated' then
    return new;
  end if;

  -- A soft delete happens now, whatever time the client wrote.
  if new.deleted_at is not null and (tg_op = 'INSERT' or old.deleted_at is null) then
    new.deleted_at := now();
  elsif tg_op = 'UPDATE' and new.deleted_at is not null and new.deleted_at is distinct from old.deleted_at then
    new.deleted_at := old.deleted_at;
  end if;

  if tg_op = 'INSERT' then
    -- Added human-controlled, it is unassigned (anyone picks it up with take_lead) or the caller's.
    if new.assigned_to is not null and (new.controlled_by <> 'human' or new.assigned_to <> v_user) then
      raise exception 'a new contact can be assigned only to yourself, and only when a human handles it'
        using errcode = '42501', hint = 'take_lead() assigns a lead to the member who calls it.';
    end if;
    return new;
  end if;

  if old.controlled_by = 'automation' and new.controlled_by = 'human' then
    -- Taking the lead, as take_lead() does: it becomes the caller's.
    if new.assigned_to is distinct from old.assigned_to and new.assigned_to is distinct from v_user then
      raise exception 'contact % can be taken only by the member who takes it', old.id using errcode = '42501',
        hint = 'take_lead() assigns the lead to its caller.';
    end if;
    new.assigned_to := v_user;
  elsif old.controlled_by = 'human' and new.controlled_by = 'automation' then
    -- Releasing, as release_lead() does: the assigned agent or an admin.
    if old.assigned_to is distinct from v_user and not herald.has_role(old.workspace_id, 'admin') then
      raise exception 'only the assigned agent or an admin can release contact %', old.id using errcode = '42501',
        hint = 'release_lead() hands a contact back to automation.';
    end if;
    new.assigned_to := null;
  elsif new.assigned_to is distinct from old.assigned_to then
    -- Picking up a human-controlled lead nobody holds (as take_lead() does) is the only reassignment.
    if not (new.controlled_by = 'human' and old.assigned_to is null and new.assigned_to = v_user) then
      raise exception 'assigned_to of contact % changes only through take_lead() and release_lead()', old.id
        using errcode = '42501', hint = 'The assigned agent or an admin releases the lead first.';
    end if;
  end if;
  return new;
end;
$$;
create trigger contacts_guard_roles before insert or update of deleted_at, controlled_by, assigned_to on public.contacts
for each row execute function herald.contacts_guard_roles();
comment on function herald.contacts_guard_roles() is 'A member''s own writes: deleted_at takes the server''s time (no backdating); controlled_by / assigned_to move only as take_lead / release_lead would move them (42501 otherwise).';

/** Section - workspace members */
create function herald.workspace_members_guard_owners() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if current_user = 'authenticated' and old.role = 'owner' and old.user_id is distinct from (select auth.uid())
     and not herald.has_role(old.workspace_id, 'owner') then
    raise exception 'only an owner can remove an owner' using errcode = '42501',
      hint = 'Ask an owner of the workspace.';
  end if;
  return old;
end;
$$;
create trigger workspace_members_guard_owners before delete on public.workspace_members
for each row execute function herald.workspace_members_guard_owners();
comment on function herald.workspace_members_guard_owners() is 'Only an owner removes an owner (an owner may leave, unless last: keep_an_owner).';
