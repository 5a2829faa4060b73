/**
 * Appointment reminders as a policy, not hand-made messages: a workspace says once "24 hours and
 * 1 hour before, by SMS" and every appointment gets those reminders, in the transaction that
 * creates it, so no app has to remember to schedule them (or forget to move them).
 *
 *   appointment_reminders   offset before the start, channel, and a body or a content template
 *   appointment inserted    one message per policy row, sent at starts_at - offset, expiring at
 *                           starts_at; skipped when that time has passed or the contact may not
 *                           be messaged (deleted, opted out, suppressed, human-controlled: the
 *                           rule schedule_message applies, herald.contact_block_reason)
 *   appointment moved       its pending reminders were shifted with it (deletion rules) and
 *                           their deadlines too (send-by deadlines); here their text is rendered
 *                           again for the new time, and a reminder the old time had skipped is
 *                           scheduled if its time is now ahead
 *   cancelled / deleted     as before: pending reminders cancelled (appointment_cancelled)
 *
 * Bodies and template variables may use {{appointment.title}} and {{appointment.starts_at}},
 * which reads in the contact's zone. messages.reminder_id names the policy row a reminder came
 * from: one reminder per appointment and policy row, whatever runs twice.
 */

/** Section - the policy */
create table public.appointment_reminders (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  "offset" interval not null,
  channel public.channel not null default 'sms',
  body text,
  template_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, id),
  constraint appointment_reminders_offset_key unique (workspace_id, channel, "offset"),
  -- No action, not restrict: a workspace delete cascades to both in one statement.
  constraint appointment_reminders_template_fkey foreign key (workspace_id, template_id, channel)
    references public.message_templates (workspace_id, id, channel) on delete no action,
  constraint appointment_reminders_body_or_template check ((body is null) <> (template_id is null)),
  constraint appointment_reminders_offset_range check ("offset" between interval '1 minute' and interval '365 days'),
  constraint appointment_reminders_body_length check (body is null or length(btrim(body)) between 1 and 1600),
  constraint appointment_reminders_body_placeholders check (body is null or herald.placeholders_valid(body))
);
comment on table public.appointment_reminders is 'The workspace''s reminder policy: every appointment gets one message per row, "offset" before its start. Members read; admins write.';
comment on column public.appointment_reminders.id is 'Primary key; messages.reminder_id names the row a reminder came from.';
comment on column public.appointment_reminders.workspace_id is 'The workspace whose appointments it applies to.';
comment on column public.appointment_reminders."offset" is 'How long before the start the reminder is sent, e.g. 24 hours, 1 hour (1 minute to 365 days).';
comment on column public.appointment_reminders.channel is 'sms or whatsapp.';
comment on column public.appointment_reminders.body is 'The text, with {{first_name}}, {{last_name}}, {{var.KEY}}, {{appointment.title}}, {{appointment.starts_at}} (in the contact''s zone). Exactly one of body and template_id.';
comment on column public.appointment_reminders.template_id is 'A content template of the same workspace and channel to send instead of a body (WhatsApp outside the 24-hour window needs one); its variables may use the same placeholders.';
comment on column public.appointment_reminders.created_at is 'When it was added.';
comment on column public.appointment_reminders.updated_at is 'Last change (moddatetime).';
comment on constraint appointment_reminders_offset_key on public.appointment_reminders is 'One reminder per channel and offset.';
comment on constraint appointment_reminders_body_or_template on public.appointment_reminders is 'A reminder has either a body or a template_id, not both and not neither.';
comment on constraint appointment_reminders_offset_range on public.appointment_reminders is 'offset is between 1 minute and 365 days before the start.';
comment on constraint appointment_reminders_body_length on public.appointment_reminders is 'A reminder body is 1 to 1600 characters.';
comment on constraint appointment_reminders_body_placeholders on public.appointment_reminders is 'A reminder body may only use {{first_name}}, {{last_name}}, {{var.KEY}}, {{appointment.title}} and {{appointment.starts_at}}.';
create index appointment_reminders_workspace_template_idx on public.appointment_reminders (workspace_id, template_id, channel)
  where template_id is not null;
create trigger appointment_reminders_updated_at before update on public.appointment_reminders
for each row execute function extensions.moddatetime(updated_at);
comment on trigger appointment_reminders_updated_at on public.appointment_reminders is 'Keeps updated_at current on every update (moddatetime).';

alter table public.appointment_reminders enable row level security;
create policy appointment_reminders_select on public.appointment_reminders for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy appointment_reminders_insert on public.appointment_reminders for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy appointment_reminders_update on public.appointment_reminders for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy appointment_reminders_delete on public.appointment_reminders for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));
revoke all on public.appointment_reminders from anon;
revoke truncate on public.appointment_reminders from authenticated;

/** Section - which policy row a reminder came from */
-- Deleting a policy row changes what future appointments get; reminders already scheduled stay.
alter table public.messages
  add column reminder_id uuid,
  add constraint messages_reminder_fkey foreign key (workspace_id, reminder_id)
    references public.appointment_reminders (workspace_id, id) on delete set null (reminder_id);
comment on column public.messages.reminder_id is 'The appointment_reminders row this reminder was scheduled by; cleared if that row is deleted (the reminder stays).';
create index messages_workspace_reminder_idx on public.messages (workspace_id, reminder_id) where reminder_id is not null;
create unique index messages_one_per_reminder on public.messages (appointment_id, reminder_id)
  where appointment_id is not null and reminder_id is not null and retry_of is null;

/** Section - rendering and scheduling */
-- A reminder's text and ContentVariables for its appointment as it is now. A body that renders
-- empty or over 1,600 characters comes back null: such a reminder is not scheduled (or not
-- re-rendered), rather than failing the write of the appointment.
create function herald.reminder_content(p_reminder_id uuid, p_appointment_id uuid, out body text, out template_variables jsonb)
language plpgsql
stable
set search_path = ''
as $$
declare
  r public.appointment_reminders;
  a public.appointments;
  v_template text;
begin
  select * into r from public.appointment_reminders where id = p_reminder_id;
  select * into a from public.appointments where id = p_appointment_id and workspace_id = r.workspace_id;
  if r.id is null or a.id is null then
    return;
  end if;
  if r.template_id is null then
    body := herald.render_text(r.body, a.workspace_id, a.contact_id, a.id);
  else
    template_variables := herald.render_template_variables(r.template_id, a.contact_id, null, a.id);
    select t.body into v_template from public.message_templates t where t.workspace_id = r.workspace_id and t.id = r.template_id;
    body := herald.fill_content_variables(v_template, template_variables);
  end if;
  if length(btrim(body)) not between 1 and 1600 then
    body := null;
  end if;
end;
$$;
comment on function herald.reminder_content(uuid, uuid) is 'A reminder policy row rendered for one appointment: its body (or its template''s text) and ContentVariables; body null when the text renders empty or over 1,600 characters.';
revoke execute on function herald.reminder_content(uuid, uuid) from public;
grant execute on function herald.reminder_content(uuid, uuid) to service_role;

-- Schedules every policy reminder these appointments do not have yet whose time is still ahead.
create function herald.schedule_appointment_reminders(p_appointment_ids uuid[]) returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_prev text := herald.set_reason('appointment_reminder');
begin
  with due as (
    select a.workspace_id, a.id as appointment_id, a.contact_id, a.starts_at, r.id as reminder_id, r.channel, r.template_id,
           a.starts_at - r."offset" as send_at
    from public.appointments a
    join public.contacts c on c.workspace_id = a.workspace_id and c.id = a.contact_id
    join public.appointment_reminders r on r.workspace_id = a.workspace_id
    where a.id = any (p_appointment_ids) and a.status = 'scheduled'
      and a.starts_at - r."offset" > now()
      and herald.contact_block_reason(c) is null
      and not exists (select 1 from public.messages m
                      where m.appointment_id = a.id and m.reminder_id = r.id and m.retry_of is null)
  ), inserted as (
    insert into public.messages (workspace_id, contact_id, channel, body, send_at, appointment_id, reminder_id,
                                 template_id, template_variables, expires_at, max_attempts)
    select d.workspace_id, d.contact_id, d.channel, x.body, d.send_at, d.appointment_id, d.reminder_id,
           d.template_id, x.template_variables, d.starts_at, w.max_attempts
    from due d
    join public.workspaces w on w.id = d.workspace_id
    cross join lateral herald.reminder_content(d.reminder_id, d.appointment_id) x
    where x.body is not null
    on conflict (appointment_id, reminder_id) where appointment_id is not null and reminder_id is not null and retry_of is null
    do nothing
    returning 1
  ) select count(*) into v_count from inserted;
  perform herald.set_reason(v_prev);
  return v_count;
end;
$$;
comment on function herald.schedule_appointment_reminders(uuid[]) is 'For scheduled appointments: one message per reminder policy row not scheduled yet, at starts_at - offset, expiring at starts_at; skipped when that time has passed, the contact may not be messaged, or the text renders empty. Returns how many were scheduled.';
revoke execute on function herald.schedule_appointment_reminders(uuid[]) from public;
grant execute on function herald.schedule_appointment_reminders(uuid[]) to service_role;

create function herald.appointments_schedule_reminders() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform herald.schedule_appointment_reminders(array(select n.id from new_rows n where n.status = 'scheduled'));
  return null;
end;
$$;
comment on function herald.appointments_schedule_reminders() is 'Appointments inserted: their reminders are scheduled from the workspace''s policy in the same statement.';
create trigger appointments_schedule_reminders after insert on public.appointments
referencing new table as new_rows for each statement execute function herald.appointments_schedule_reminders();

-- Runs after appointments_after_update and appointments_move_deadlines (trigger names order
-- them), which moved the pending reminders' send times and deadlines.
create function herald.appointments_rerender_reminders() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.messages m
  set body = x.body, template_variables = x.template_variables
  from (select p.id, c.body, c.template_variables
        from public.messages p
        cross join lateral herald.reminder_content(p.reminder_id, p.appointment_id) c
        where p.workspace_id = new.workspace_id and p.appointment_id = new.id and p.reminder_id is not null
          and p.status in ('scheduled', 'queued')) x
  where m.id = x.id and x.body is not null
    and (m.body, m.template_variables) is distinct from (x.body, x.template_variables);
  perform herald.schedule_appointment_reminders(array[new.id]);
  return null;
end;
$$;
comment on function herald.appointments_rerender_reminders() is 'Appointment moved: pending reminders are rendered again for the new time, and reminders whose time is now ahead are scheduled.';
create trigger appointments_rerender_reminders after update of starts_at on public.appointments
for each row when (new.starts_at <> old.starts_at and new.status = 'scheduled')
execute function herald.appointments_rerender_reminders();

-- Check violations by API writes answered with the constraint's comment (see the constraint_messages migration).
select herald.explain_checks_on('public.appointment_reminders');
