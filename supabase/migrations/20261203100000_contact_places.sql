/**
 * Where a contact's number places it, kept on the contact. The send rules ask where the recipient
 * may be twice for every message (at the claim and right before the provider call), and looking
 * the number up in the prefix and area-code tables each time was a fifth of a message's server
 * time. A number's places change only when the number does (or the zone data does), so they are
 * worked out then and read from the row after that.
 *
 *   contacts.phone_zones     herald.phone_zones(phone): the IANA zones of the number's longest
 *                            known prefix, or null
 *   contacts.phone_regions   herald.phone_regions(phone): the ISO 3166-2 regions of a North
 *                            American number, or null
 *
 * Both are derived, like phone_hash: contacts_before_write sets them on every insert and every
 * update that touches the phone or them, so a value written by hand is replaced by the number's.
 * A change to the zone data (npm run zones writes it as a migration) brings every contact's
 * places up to date in the same statement.
 */

alter table public.contacts add column phone_zones text[], add column phone_regions text[];
comment on column public.contacts.phone_zones is 'Derived from phone (herald.phone_zones): the IANA zones the number may be in, or null when its country is unknown. Set by Herald; a value written by hand is replaced.';
comment on column public.contacts.phone_regions is 'Derived from phone (herald.phone_regions): the ISO 3166-2 regions (US-FL…) of a North American number, or null. Set by Herald; a value written by hand is replaced.';

/** Section - kept with the number */
create or replace function herald.contacts_before_write() returns trigger
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
  -- Also derived: worked out from the number whenever the number or they are written.
  new.phone_zones := herald.phone_zones(new.phone);
  new.phone_regions := herald.phone_regions(new.phone);
  return new;
end;
$$;
comment on function herald.contacts_before_write() is 'Contact added or phone changed: keeps phone_hash, phone_zones and phone_regions (all derived from the number), and a number on the suppression list comes back opted out.';
drop trigger contacts_before_write on public.contacts;
create trigger contacts_before_write before insert or update of phone, phone_hash, phone_zones, phone_regions on public.contacts
for each row execute function herald.contacts_before_write();

-- The zone data changed: every contact whose places it moves gets them again (the update goes
-- through contacts_before_write, which works them out from the number).
create function herald.refresh_contact_places() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.contacts c set phone_zones = null
  where c.phone_zones is distinct from herald.phone_zones(c.phone)
     or c.phone_regions is distinct from herald.phone_regions(c.phone);
  return null;
end;
$$;
comment on function herald.refresh_contact_places() is 'After a change to the zone data (phone_prefix_zones, nanp_area_codes): contacts whose stored phone_zones or phone_regions no longer match their number get them again.';
revoke execute on function herald.refresh_contact_places() from public;
create trigger phone_prefix_zones_refresh_contacts after insert or update or delete or truncate on herald.phone_prefix_zones
for each statement execute function herald.refresh_contact_places();
create trigger nanp_area_codes_refresh_contacts after insert or update or delete or truncate on herald.nanp_area_codes
for each statement execute function herald.refresh_contact_places();

-- Contacts that exist already.
update public.contacts set phone_zones = null;

/** Section - read from the row */
create or replace function herald.contact_zones(p_contact public.contacts) returns text[]
language plpgsql
stable
set search_path = ''
as $$
begin
  if p_contact.timezone is not null then
    return array[p_contact.timezone];
  end if;
  return coalesce(p_contact.phone_zones,
                  (select array[w.timezone] from public.workspaces w where w.id = p_contact.workspace_id));
end;
$$;

create or replace function herald.allowed_send_time(p_contact public.contacts, p_category public.message_category,
                                                    p_workspace public.workspaces, p_at timestamptz) returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  v_starts time[] := array[p_workspace.quiet_hours_start];
  v_ends time[] := array[p_workspace.quiet_hours_end];
  v_zones text[] := herald.contact_zones(p_contact);
  v_at timestamptz;
begin
  select v_starts || array_agg(r.window_end), v_ends || array_agg(r.window_start)
  into v_starts, v_ends
  from public.quiet_hour_rules r
  where r.applies_to = p_category
    and (r.calling_code is null or p_contact.phone like '+' || r.calling_code || '%')
    and (r.region is null or r.region = any (p_contact.phone_regions));

  v_at := herald.next_open_instant(v_zones, v_starts, v_ends, p_at);
  -- A number placed in zones whose windows never overlap (a +1 toll-free number could be
  -- anywhere from Guam to Newfoundland): the workspace's zone is the last resort.
  if v_at is null and v_zones is distinct from array[p_workspace.timezone] then
    v_at := herald.next_open_instant(array[p_workspace.timezone], v_starts, v_ends, p_at);
  end if;
  return v_at;
end;
$$;
