/**
 * schedule_message takes what a message now carries: its category (the law's rules depend on
 * it), a content template and its variables (WhatsApp outside the 24-hour window delivers only
 * templates), and a send-by deadline. All four are appended, named, with defaults, so existing
 * calls keep working:
 *
 *   category            'marketing' or 'transactional'; omitted: transactional when it reminds of
 *                       an appointment, marketing otherwise (herald.messages_default_category)
 *   template_id         a content template of the workspace on the message's channel; its
 *                       variables are rendered from the contact now, like a body is
 *   template_variables  {"1": "…"}: values that replace the template's own for those numbers
 *   expires_at          never sent at or after it (an appointment reminder defaults to the start)
 *
 * It also refuses at once a channel the workspace cannot send on. Before, such a message was
 * accepted and failed a minute later in queueing with no_sender, after the caller had moved on.
 */
drop function public.schedule_message(uuid, text, timestamptz, text, text, uuid);

create function public.schedule_message(
  contact_id uuid,
  body text default null,
  send_at timestamptz default now(),
  channel text default 'sms',
  idempotency_key text default null,
  appointment_id uuid default null,
  category text default null,
  template_id uuid default null,
  template_variables jsonb default null,
  expires_at timestamptz default null
) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_contact public.contacts;
  v_channel public.channel;
  v_template public.message_templates;
  v_variables jsonb;
  v_body text := btrim(schedule_message.body);
  v_id uuid;
  v_existing public.messages;
begin
  perform herald.require_user();
  if channel is null or channel not in ('sms', 'whatsapp') then
    raise exception 'unknown channel "%"', channel using errcode = '22023', hint = 'Use sms or whatsapp.';
  end if;
  v_channel := channel::public.channel;
  if category is not null and category not in ('marketing', 'transactional') then
    raise exception 'unknown category "%"', category using errcode = '22023',
      hint = 'Use marketing (campaigns, follow-ups: legal hours, caps, consent) or transactional (reminders, one-time codes).';
  end if;
  if (v_body is null or v_body = '') and template_id is null then
    raise exception 'message body must not be empty' using errcode = '22023',
      hint = 'Give a body, or a template_id whose text becomes the body.';
  end if;
  if length(v_body) > 1600 then
    raise exception 'message body is % characters; the most is 1600', length(v_body) using errcode = '22023';
  end if;
  if send_at > now() + interval '1 year' then
    raise exception 'send_at % is more than a year ahead', send_at using errcode = '22023';
  end if;
  if idempotency_key is not null and length(idempotency_key) not between 1 and 200 then
    raise exception 'idempotency_key must be 1 to 200 characters' using errcode = '22023';
  end if;
  if template_variables is not null and template_id is null then
    raise exception 'template_variables given without a template_id' using errcode = '22023';
  end if;

  v_contact := herald.sendable_contact(schedule_message.contact_id);

  if not exists (
    select 1 from public.senders s
    where s.workspace_id = v_contact.workspace_id and s.channel = v_channel and s.is_default and s.phone_number is not null
  ) then
    raise exception 'this workspace has no % sender to send from', v_channel using errcode = '55000',
      hint = 'Add a sender with a phone number on this channel and make it the default (senders.is_default), then schedule again.';
  end if;

  if schedule_message.idempotency_key is not null then
    select * into v_existing from public.messages m
    where m.workspace_id = v_contact.workspace_id and m.idempotency_key = schedule_message.idempotency_key;
    if found then
      if v_existing.contact_id <> v_contact.id or (v_body <> '' and v_existing.body <> v_body)
         or v_existing.template_id is distinct from schedule_message.template_id then
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

  if schedule_message.template_id is not null then
    select * into v_template from public.message_templates t
    where t.workspace_id = v_contact.workspace_id and t.id = schedule_message.template_id;
    if not found then
      raise exception 'template % is not a template of this workspace', schedule_message.template_id using errcode = 'P0002';
    end if;
    if v_template.channel <> v_channel then
      raise exception 'template "%" is for %, not %', v_template.name, v_template.channel, v_channel using errcode = '22023',
        hint = 'Use a template made for the channel the message goes on.';
    end if;
    v_variables := herald.render_template_variables(v_template.id, v_contact.id, schedule_message.template_variables,
                                                    schedule_message.appointment_id);
    if v_body is null or v_body = '' then
      v_body := herald.fill_content_variables(v_template.body, v_variables);
    end if;
  end if;

  insert into public.messages (workspace_id, contact_id, channel, body, send_at, idempotency_key, appointment_id,
                               max_attempts, category, template_id, template_variables, expires_at)
  select v_contact.workspace_id, v_contact.id, v_channel, v_body,
         coalesce(schedule_message.send_at, now()), schedule_message.idempotency_key,
         schedule_message.appointment_id, w.max_attempts, schedule_message.category::public.message_category,
         v_template.id, v_variables, schedule_message.expires_at
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
comment on function public.schedule_message(uuid, text, timestamptz, text, text, uuid, text, uuid, jsonb, timestamptz) is 'Schedules one message to a contact: a body, or a content template (its variables rendered from the contact) whose text becomes the body; category marketing or transactional (omitted: transactional for an appointment reminder, else marketing); an optional send-by deadline. Refuses deleted, opted-out, suppressed and human-controlled contacts, and a channel the workspace has no default sender on (55000); the same idempotency_key returns the same message.';
revoke execute on function public.schedule_message(uuid, text, timestamptz, text, text, uuid, text, uuid, jsonb, timestamptz) from public, anon;
grant execute on function public.schedule_message(uuid, text, timestamptz, text, text, uuid, text, uuid, jsonb, timestamptz) to authenticated, service_role;
