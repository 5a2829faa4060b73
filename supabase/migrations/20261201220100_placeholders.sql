/**
 * Placeholders, extended for appointments: the text of a reminder names its appointment, in the
 * recipient's own time (a reminder that says "14:00" means 14:00 where the contact is).
 *
 *   {{first_name}}, {{last_name}}, {{var.KEY}}   as in the templates migration
 *   {{appointment.title}}                        the appointment's title
 *   {{appointment.starts_at}}                    its start in the contact's zone (contacts.timezone,
 *                                                else the workspace's), e.g. "Tuesday 3 March, 14:30 CET"
 *
 * herald.render_text() fills one text for one contact (and appointment) under the rules of
 * herald.render_bodies(): one pass, left to right; a value is data, never read as a template in
 * turn, never a regular-expression replacement; a missing value renders empty; text that is not
 * a placeholder stays as written. Appointment reminders and Twilio content templates' variables
 * render through it. Sequence steps keep their own, narrower rule (a step has no appointment).
 */

/** Section - the placeholders */
-- The one pattern: group 1 is the placeholder's name as placeholder_values() keys it.
create function herald.placeholder_pattern() returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select '\{\{\s*(first_name|last_name|appointment\.title|appointment\.starts_at|var\.[a-z][a-z0-9_]*)\s*\}\}'
$$;
comment on function herald.placeholder_pattern() is 'The placeholders a reminder or a content template''s variable may use, as one regular expression; group 1 is the name.';
revoke execute on function herald.placeholder_pattern() from public;
grant execute on function herald.placeholder_pattern() to authenticated, service_role;

-- For check constraints: every "{{" must open a known placeholder, so a typo is refused when the
-- text is saved, not sent with its braces.
create function herald.placeholders_valid(p_text text) returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
  select p_text !~ '\{\{(?!\s*(first_name|last_name|appointment\.title|appointment\.starts_at|var\.[a-z][a-z0-9_]*)\s*\}\})'
$$;
comment on function herald.placeholders_valid(text) is 'True when every {{ in the text opens a known placeholder: {{first_name}}, {{last_name}}, {{var.KEY}}, {{appointment.title}}, {{appointment.starts_at}}.';
revoke execute on function herald.placeholders_valid(text) from public;
grant execute on function herald.placeholders_valid(text) to authenticated, service_role;

/** Section - values */
-- The zone is set for this call only (the SET clause confines set_config to the function), so
-- to_char prints the abbreviation in force at that instant there: GMT in winter, BST in summer.
create function herald.appointment_time_text(p_at timestamptz, p_tz text) returns text
language plpgsql
stable
set search_path = ''
set timezone = 'UTC'
as $$
begin
  perform set_config('timezone', herald.check_time_zone(p_tz), true);
  return to_char(p_at, 'FMDay FMDD FMMonth, HH24:MI TZ');
end;
$$;
comment on function herald.appointment_time_text(timestamptz, text) is 'An instant as a person in the zone reads it, e.g. "Tuesday 3 March, 14:30 CET" (the abbreviation in force then, daylight saving included).';
revoke execute on function herald.appointment_time_text(timestamptz, text) from public;
grant execute on function herald.appointment_time_text(timestamptz, text) to service_role;

-- Every value a placeholder of this contact (and appointment) can take, keyed by its name.
create function herald.placeholder_values(p_workspace_id uuid, p_contact_id uuid, p_appointment_id uuid default null)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object('first_name', c.first_name, 'last_name', c.last_name)
         || coalesce((select jsonb_object_agg('var.' || v.key, v.value) from public.contact_variables v
                      where v.workspace_id = c.workspace_id and v.contact_id = c.id), '{}')
         || coalesce((select jsonb_build_object('appointment.title', a.title,
                                                'appointment.starts_at', herald.appointment_time_text(a.starts_at, coalesce(c.timezone, w.timezone)))
                      from public.appointments a
                      where a.workspace_id = c.workspace_id and a.id = p_appointment_id and a.contact_id = c.id), '{}')
  from public.contacts c
  join public.workspaces w on w.id = c.workspace_id
  where c.workspace_id = p_workspace_id and c.id = p_contact_id
$$;
comment on function herald.placeholder_values(uuid, uuid, uuid) is 'The values of the placeholders for one contact of the workspace, and one of its appointments: {"first_name", "last_name", "var.KEY"…, "appointment.title", "appointment.starts_at"}. Null for a contact outside the workspace; no appointment keys for an appointment not the contact''s.';
revoke execute on function herald.placeholder_values(uuid, uuid, uuid) from public;
grant execute on function herald.placeholder_values(uuid, uuid, uuid) to service_role;

/** Section - rendering */
create function herald.fill_placeholders(p_text text, p_values jsonb) returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select string_agg(t.piece || coalesce(p_values ->> m.token[1], ''), '' order by t.n)
  from unnest(regexp_split_to_array(p_text, herald.placeholder_pattern())) with ordinality t(piece, n)
  left join regexp_matches(p_text, herald.placeholder_pattern(), 'g') with ordinality m(token, n) on m.n = t.n
$$;
comment on function herald.fill_placeholders(text, jsonb) is 'Fills each placeholder of the text from p_values (keyed by name) in one pass; a missing value renders empty, a value is never read as a template.';
revoke execute on function herald.fill_placeholders(text, jsonb) from public;
grant execute on function herald.fill_placeholders(text, jsonb) to service_role;

create function herald.render_text(p_text text, p_workspace_id uuid, p_contact_id uuid, p_appointment_id uuid default null)
returns text
language sql
stable
set search_path = ''
as $$
  select herald.fill_placeholders(p_text, v.values)
  from (select herald.placeholder_values(p_workspace_id, p_contact_id, p_appointment_id) as values) v
  where v.values is not null
$$;
comment on function herald.render_text(text, uuid, uuid, uuid) is 'Renders one text for one contact of the workspace (and one of its appointments): contact fields, contact_variables, the appointment''s title and start in the contact''s zone. Null for a contact outside the workspace.';
revoke execute on function herald.render_text(text, uuid, uuid, uuid) from public;
grant execute on function herald.render_text(text, uuid, uuid, uuid) to service_role;
