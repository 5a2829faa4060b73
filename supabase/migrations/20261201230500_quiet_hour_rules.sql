/**
 * Legal sending hours as a floor under the workspace's own quiet hours. Marketing is never sent
 * outside 08:00–21:00 in the recipient's local time, whatever a workspace sets (it may only
 * narrow that), and stricter regional rules apply where the recipient's number places them; a
 * late-night marketing text is what gets a sender sued.
 *
 *   public.quiet_hour_rules      the rules, each with the statute it comes from; read-only
 *                                reference data, changed only by migrations
 *   herald.next_open_instant()   the earliest instant ≥ p_at inside every window in every zone
 *   herald.allowed_send_time()   that instant for one message: the workspace's window (the only
 *                                one for transactional messages) and, for marketing, every rule
 *                                that applies to the number, in every zone the contact may be in
 *
 * Rules are matched by the number, not the contact's timezone: state laws presume a call to one
 * of the state's area codes reaches a person in the state. Windows are local wall-clock times in
 * each of the contact's zones (herald.contact_zones), so they hold across midnight and
 * daylight-saving changes. Only rules whose statute could be cited are seeded; day-of-week and
 * holiday rules are not modelled.
 */

/** Section - rules */
create table public.quiet_hour_rules (
  id text primary key,
  calling_code text,
  region text,
  window_start time not null,
  window_end time not null,
  applies_to public.message_category not null,
  citation text not null,
  constraint quiet_hour_rules_id_shape check (id ~ '^[a-z0-9][a-z0-9_-]{1,62}$'),
  constraint quiet_hour_rules_calling_code_digits check (calling_code is null or calling_code ~ '^[1-9][0-9]{0,2}$'),
  -- Regions are known from North American area codes only (herald.nanp_area_codes).
  constraint quiet_hour_rules_region_nanp check (region is null or (calling_code = '1' and region ~ '^(US|CA)-[A-Z]{2}$')),
  constraint quiet_hour_rules_window_within_a_day check (window_start < window_end),
  constraint quiet_hour_rules_citation_present check (length(btrim(citation)) >= 10)
);
comment on table public.quiet_hour_rules is 'Legal sending windows in the recipient''s local time: a rule applies to numbers of its calling code (all numbers when null) and region (by North American area code; all of the calling code when null), for messages of its category. Reference data, changed only by migrations.';
comment on column public.quiet_hour_rules.id is 'A short stable name for the rule, e.g. us-fl.';
comment on column public.quiet_hour_rules.applies_to is 'The message category the rule binds: marketing (transactional messages follow the workspace''s own window).';
comment on column public.quiet_hour_rules.calling_code is 'E.164 country calling code the rule applies to (1 for North America); null: every number.';
comment on column public.quiet_hour_rules.region is 'ISO 3166-2 region (US-FL…) whose area codes the rule applies to; null: the whole calling code.';
comment on column public.quiet_hour_rules.window_start is 'Local time from which sending is allowed.';
comment on column public.quiet_hour_rules.window_end is 'Local time from which sending is no longer allowed.';
comment on column public.quiet_hour_rules.citation is 'The statute or regulation the window comes from.';

alter table public.quiet_hour_rules enable row level security;
create policy quiet_hour_rules_select on public.quiet_hour_rules for select to authenticated using (true);
revoke all on public.quiet_hour_rules from anon;
-- The law is not a setting: no API role may loosen it (service_role included).
revoke insert, update, delete, truncate on public.quiet_hour_rules from authenticated, service_role;
grant select on public.quiet_hour_rules to authenticated, service_role;

insert into public.quiet_hour_rules (id, calling_code, region, window_start, window_end, applies_to, citation) values
  -- Herald applies the US federal window to every recipient, wherever the number is from.
  ('floor', null, null, '08:00', '21:00', 'marketing',
   'Telephone Consumer Protection Act, 47 U.S.C. § 227(c), and 47 CFR § 64.1200(c)(1): no telephone solicitation before 8 a.m. or after 9 p.m. local time at the called party''s location. Applied by Herald to every recipient as its floor.'),
  ('us-fl', '1', 'US-FL', '08:00', '20:00', 'marketing',
   'Florida Telemarketing Act, Fla. Stat. § 501.616(6)(a), as amended by ch. 2021-94, Laws of Fla. (SB 1120, effective 1 July 2021): no commercial telephone solicitation before 8 a.m. or after 8 p.m. local time at the called person''s location; Fla. Stat. § 501.059 presumes a call to a Florida area code reaches a person in Florida.'),
  ('us-ok', '1', 'US-OK', '08:00', '20:00', 'marketing',
   'Oklahoma Telephone Solicitation Act of 2022, 15 O.S. § 775C.1 et seq. (HB 3168, effective 1 November 2022): commercial telephonic sales calls only between 8 a.m. and 8 p.m.; a call to an Oklahoma area code is presumed made to a person in Oklahoma.'),
  ('us-md', '1', 'US-MD', '08:00', '20:00', 'marketing',
   'Maryland Stop the Spam Calls Act of 2023, Md. Code, Com. Law § 14-4501 et seq. (SB 90, effective 1 January 2024): telephone solicitations only between 8 a.m. and 8 p.m. in the called party''s time zone.');

/** Section - the earliest allowed instant */
-- Quiet windows are given as (start, end) pairs of local times, as workspaces hold them
-- (quiet_hours_start → quiet_hours_end, possibly across midnight); an allowed window [s, e) is the
-- quiet pair (e, s). Each pass moves the instant to the end of any quiet window it is in, in any
-- zone (what herald.quiet_until computes, written out here as plain expressions: this runs for
-- every message queued), until one pass moves nothing: then it is outside all of them in all
-- zones. Local wall-clock arithmetic converted back through the zone, so it holds across
-- daylight-saving changes. Null when no instant within 8 days is open (windows that never meet).
create function herald.next_open_instant(p_zones text[], p_quiet_starts time[], p_quiet_ends time[], p_at timestamptz)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  v_t timestamptz := p_at;
  v_local timestamp;
  v_until timestamptz;
  v_moved boolean;
  v_zone text;
  s time;
  e time;
  i integer;
begin
  if cardinality(p_quiet_starts) is distinct from cardinality(p_quiet_ends) then
    raise exception 'quiet window starts and ends must pair up' using errcode = '22023';
  end if;
  loop
    v_moved := false;
    foreach v_zone in array p_zones loop
      for i in 1 .. coalesce(cardinality(p_quiet_starts), 0) loop
        s := p_quiet_starts[i];
        e := p_quiet_ends[i];
        v_local := v_t at time zone v_zone;
        v_until := case
          when s < e and v_local::time >= s and v_local::time < e then (v_local::date + e) at time zone v_zone
          when s > e and v_local::time >= s then (v_local::date + 1 + e) at time zone v_zone
          when s > e and v_local::time < e then (v_local::date + e) at time zone v_zone
        end;
        if v_until > v_t then
          v_t := v_until;
          v_moved := true;
        end if;
      end loop;
    end loop;
    if not v_moved then
      return v_t;
    end if;
    if v_t > p_at + interval '8 days' then
      return null;
    end if;
  end loop;
end;
$$;
comment on function herald.next_open_instant(text[], time[], time[], timestamptz) is 'The earliest instant at or after p_at that lies outside every quiet window (local start → end, possibly across midnight) in every zone; null when none does within 8 days.';
grant execute on function herald.next_open_instant(text[], time[], time[], timestamptz) to service_role;

create function herald.allowed_send_time(p_contact public.contacts, p_category public.message_category,
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
    and (r.region is null or r.region = any (herald.phone_regions(p_contact.phone)));

  v_at := herald.next_open_instant(v_zones, v_starts, v_ends, p_at);
  -- A number placed in zones whose windows never overlap (a +1 toll-free number could be
  -- anywhere from Guam to Newfoundland): the workspace's zone is the last resort.
  if v_at is null and v_zones is distinct from array[p_workspace.timezone] then
    v_at := herald.next_open_instant(array[p_workspace.timezone], v_starts, v_ends, p_at);
  end if;
  return v_at;
end;
$$;
comment on function herald.allowed_send_time(public.contacts, public.message_category, public.workspaces, timestamptz) is 'The earliest instant at or after p_at at which this message may be sent in every zone the contact may be in: inside the workspace''s window and, for marketing, every legal rule that applies to the number. Transactional messages follow the workspace''s window (and rules written for them) only. Falls back to the workspace''s zone when the number''s zones share no open instant; null when even that has none within 8 days (a workspace window outside the legal hours).';
grant execute on function herald.allowed_send_time(public.contacts, public.message_category, public.workspaces, timestamptz) to service_role;
