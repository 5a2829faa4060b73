/**
 * Twilio Content templates and WhatsApp's 24-hour window. WhatsApp delivers a business's
 * free-form message only to someone who wrote to it in the last 24 hours; anything else must be
 * an approved template, sent as ContentSid + ContentVariables (Twilio fails free-form text
 * outside the window with 63016). Scheduled reminders and sequence steps mostly go out long
 * after the contact last wrote, so without templates nearly every one of them would fail.
 *
 *   message_templates            a Content template (HX…) and the text it renders to, with the
 *                                Herald placeholder that fills each of its numbered variables
 *   sequence_steps.template_id   a step sent as that template when a free-form message cannot go
 *   messages.template_id,        the template and the variables rendered for this message
 *   messages.template_variables
 *   contacts.last_whatsapp_inbound_at   when the contact last wrote on WhatsApp (an SMS reply
 *                                opens no WhatsApp window)
 *
 * A template row belongs to one workspace and one channel; a step or message can only name a
 * template of its own workspace and channel (composite foreign keys, channel included). At send
 * time herald.outbound_content() says what goes to Twilio: the body, or the template, or nothing
 * with the reason `template_required`.
 */

/** Section - templates */
-- Twilio's body placeholders are {{1}}, {{2}}…; every one must name a declared variable.
create function herald.content_body_valid(p_body text, p_variables integer) returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
  select p_body !~ '\{\{(?![1-9][0-9]{0,2}\}\})'
     and coalesce((select max(m[1]::integer) from regexp_matches(p_body, '\{\{([1-9][0-9]{0,2})\}\}', 'g') m), 0) <= p_variables
$$;
comment on function herald.content_body_valid(text, integer) is 'True when every {{ of a content template''s body opens a numbered variable {{N}} with N between 1 and the number of variables.';
revoke execute on function herald.content_body_valid(text, integer) from public;
grant execute on function herald.content_body_valid(text, integer) to authenticated, service_role;

create table public.message_templates (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  name text not null,
  channel public.channel not null default 'whatsapp',
  content_sid text not null,
  language text not null default 'en',
  body text not null,
  variables text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, id, channel),
  constraint message_templates_name_language_key unique (workspace_id, name, language),
  constraint message_templates_name_present check (length(btrim(name)) between 1 and 200),
  constraint message_templates_content_sid_shape check (content_sid ~ '^HX[0-9a-fA-F]{32}$'),
  constraint message_templates_language_shape check (language ~ '^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$'),
  constraint message_templates_body_length check (length(btrim(body)) between 1 and 1600),
  constraint message_templates_body_variables check (herald.content_body_valid(body, cardinality(variables))),
  constraint message_templates_variables_valid check (
    cardinality(variables) <= 100 and array_position(variables, null) is null
    and herald.placeholders_valid(array_to_string(variables, '|')))
);
comment on table public.message_templates is 'Twilio Content templates (ContentSid HX…) a workspace may send, with the text each renders to. WhatsApp outside the 24-hour window only delivers templates. Members read; admins write.';
comment on column public.message_templates.id is 'Primary key.';
comment on column public.message_templates.workspace_id is 'The workspace that may send it.';
comment on column public.message_templates.name is 'A name for people; unique per workspace and language.';
comment on column public.message_templates.channel is 'The channel it is sent on: messages and steps name only templates of their own channel.';
comment on column public.message_templates.content_sid is 'Twilio''s Content SID: HX and 32 hexadecimal digits, as the Content Template Builder shows it.';
comment on column public.message_templates.language is 'Language of the approved template, e.g. en, en_US, pt_BR.';
comment on column public.message_templates.body is 'The text the template renders to, with Twilio''s numbered variables {{1}}, {{2}}…: what the ledger, exports and previews show.';
comment on column public.message_templates.variables is 'What fills each numbered variable: element N is a Herald text for {{N}}, with {{first_name}}, {{last_name}}, {{var.KEY}}, {{appointment.title}}, {{appointment.starts_at}}; an empty element is filled by the caller or left to the template''s default.';
comment on column public.message_templates.created_at is 'When it was added.';
comment on column public.message_templates.updated_at is 'Last change (moddatetime).';
comment on constraint message_templates_name_present on public.message_templates is 'A template needs a name of 1 to 200 characters.';
comment on constraint message_templates_content_sid_shape on public.message_templates is 'content_sid must be a Twilio Content SID: HX followed by 32 hexadecimal digits.';
comment on constraint message_templates_language_shape on public.message_templates is 'language must be a language code such as en, en_US or pt_BR.';
comment on constraint message_templates_body_length on public.message_templates is 'A template body is 1 to 1600 characters.';
comment on constraint message_templates_body_variables on public.message_templates is 'The body may only use {{1}} … {{N}}, N being the number of variables.';
comment on constraint message_templates_variables_valid on public.message_templates is 'At most 100 variables, none null, each using only {{first_name}}, {{last_name}}, {{var.KEY}}, {{appointment.title}} and {{appointment.starts_at}}.';
create trigger message_templates_updated_at before update on public.message_templates
for each row execute function extensions.moddatetime(updated_at);
comment on trigger message_templates_updated_at on public.message_templates is 'Keeps updated_at current on every update (moddatetime).';

alter table public.message_templates enable row level security;
create policy message_templates_select on public.message_templates for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy message_templates_insert on public.message_templates for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy message_templates_update on public.message_templates for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy message_templates_delete on public.message_templates for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));
revoke all on public.message_templates from anon;
revoke truncate on public.message_templates from authenticated;

/** Section - steps and messages name a template of their own workspace and channel */
-- A step's template is part of its definition: deleting a template a step uses is refused
-- (23503). No action rather than restrict, so deleting the workspace, which cascades to both,
-- passes (the check runs at the end of the statement).
alter table public.sequence_steps
  add column template_id uuid,
  add constraint sequence_steps_template_fkey foreign key (workspace_id, template_id, channel)
    references public.message_templates (workspace_id, id, channel) on delete no action;
comment on column public.sequence_steps.template_id is 'A content template of the same workspace and channel: what the step is sent as when a free-form body cannot go (WhatsApp outside the 24-hour window). Its variables are rendered for each contact.';
create index sequence_steps_workspace_template_idx on public.sequence_steps (workspace_id, template_id, channel)
  where template_id is not null;

-- History keeps its text (body) when a template goes; a pending message may not lose its
-- template (messages_template_in_use below).
create function herald.content_variables_valid(p_variables jsonb) returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
  select jsonb_typeof(p_variables) = 'object' and not exists (
    select 1 from jsonb_each(p_variables) e
    where e.key !~ '^[1-9][0-9]{0,2}$' or jsonb_typeof(e.value) <> 'string'
       or e.value #>> '{}' = '' or e.value #>> '{}' ~ '[\n\t]|\s{5,}')
$$;
comment on function herald.content_variables_valid(jsonb) is 'True for ContentVariables Twilio accepts: an object from variable numbers to non-empty strings without newlines, tabs or runs of five spaces.';
revoke execute on function herald.content_variables_valid(jsonb) from public;
grant execute on function herald.content_variables_valid(jsonb) to authenticated, service_role;

alter table public.messages
  add column template_id uuid,
  add column template_variables jsonb,
  add constraint messages_template_fkey foreign key (workspace_id, template_id, channel)
    references public.message_templates (workspace_id, id, channel) on delete set null (template_id),
  add constraint messages_template_variables_shape check (template_variables is null or herald.content_variables_valid(template_variables));
comment on column public.messages.template_id is 'The content template of the same workspace and channel this message is sent as when a free-form body cannot go (WhatsApp outside the 24-hour window). Cleared if the template is deleted after the message went out.';
comment on column public.messages.template_variables is 'ContentVariables for the template, rendered when the message was scheduled: {"1": "Ada", "2": "Tuesday 3 March, 14:30 CET"}. An omitted number takes the template''s default.';
create index messages_workspace_template_idx on public.messages (workspace_id, template_id, channel) where template_id is not null;

create function herald.message_templates_before_delete() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_pending integer;
begin
  -- Deleting the workspace takes its messages too.
  if not exists (select 1 from public.workspaces w where w.id = old.workspace_id) then
    return old;
  end if;
  select count(*) into v_pending from public.messages m
  where m.workspace_id = old.workspace_id and m.template_id = old.id and m.status in ('scheduled', 'queued', 'sending');
  if v_pending > 0 then
    raise exception 'template "%" is used by % message(s) not sent yet', old.name, v_pending using errcode = '55000',
      hint = 'Cancel them (cancel_message) or wait until they are sent; sent messages keep their text.';
  end if;
  return old;
end;
$$;
comment on function herald.message_templates_before_delete() is 'A template that pending messages will be sent as cannot be deleted (55000); one only sent messages name is (their template_id is cleared, their text stays).';
create trigger message_templates_before_delete before delete on public.message_templates
for each row execute function herald.message_templates_before_delete();

/** Section - rendering a template's variables */
-- Twilio refuses an empty value, a newline, a tab or a run of more than four spaces (21656):
-- whitespace is folded to single spaces, and an empty value is left out so the template's
-- default applies.
create function herald.render_template_variables(
  p_template_id uuid,
  p_contact_id uuid,
  p_extra jsonb default null,
  p_appointment_id uuid default null
) returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  t public.message_templates;
  v_values jsonb;
  v_bad text;
  v_value text;
  v_out jsonb := '{}';
begin
  select * into t from public.message_templates where id = p_template_id;
  if not found then
    raise exception 'template % not found', p_template_id using errcode = 'P0002';
  end if;
  if p_extra is not null and jsonb_typeof(p_extra) <> 'object' then
    raise exception 'template variables must be a JSON object such as {"1": "Ada"}' using errcode = '22023';
  end if;
  select e.key into v_bad from jsonb_each(coalesce(p_extra, '{}')) e
  where e.key !~ '^[1-9][0-9]{0,2}$' or e.key::integer > cardinality(t.variables) or jsonb_typeof(e.value) not in ('string', 'number')
  limit 1;
  if v_bad is not null then
    raise exception 'template "%" has % variable(s); "%" is not one of them, or its value is not text', t.name, cardinality(t.variables), v_bad
      using errcode = '22023', hint = 'Name variables by number, "1" to the template''s count, with string values.';
  end if;
  v_values := herald.placeholder_values(t.workspace_id, p_contact_id, p_appointment_id);
  if v_values is null then
    raise exception 'contact % not found', p_contact_id using errcode = 'P0002';
  end if;
  for i in 1 .. cardinality(t.variables) loop
    v_value := btrim(regexp_replace(coalesce(p_extra ->> i::text, herald.fill_placeholders(t.variables[i], v_values)), '\s+', ' ', 'g'));
    if v_value <> '' then
      v_out := v_out || jsonb_build_object(i::text, v_value);
    end if;
  end loop;
  return v_out;
end;
$$;
comment on function herald.render_template_variables(uuid, uuid, jsonb, uuid) is 'The ContentVariables of a template for one contact (and appointment): each variable rendered from the contact like a body, p_extra''s value where it names the variable; whitespace folded, empty values left out. 22023 on a variable the template does not have, P0002 for an unknown template or a contact outside its workspace.';
revoke execute on function herald.render_template_variables(uuid, uuid, jsonb, uuid) from public;
grant execute on function herald.render_template_variables(uuid, uuid, jsonb, uuid) to service_role;

create function herald.fill_content_variables(p_body text, p_variables jsonb) returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select string_agg(t.piece || coalesce(p_variables ->> m.var[1], '{{' || m.var[1] || '}}', ''), '' order by t.n)
  from unnest(regexp_split_to_array(p_body, '\{\{([1-9][0-9]{0,2})\}\}')) with ordinality t(piece, n)
  left join regexp_matches(p_body, '\{\{([1-9][0-9]{0,2})\}\}', 'g') with ordinality m(var, n) on m.n = t.n
$$;
comment on function herald.fill_content_variables(text, jsonb) is 'A content template''s body with its {{N}} filled from ContentVariables, in one pass; a variable without a value stays {{N}} (Twilio sends the template''s default there).';
revoke execute on function herald.fill_content_variables(text, jsonb) from public;
grant execute on function herald.fill_content_variables(text, jsonb) to service_role;

/** Section - the 24-hour window */
alter table public.contacts add column last_whatsapp_inbound_at timestamptz;
comment on column public.contacts.last_whatsapp_inbound_at is 'When the contact last wrote on WhatsApp: for 24 hours after it, free-form WhatsApp messages are delivered; otherwise only templates. Set from verified inbound webhooks.';

-- The inbound webhook strips the channel prefix before apply_inbound, but the verified payload
-- keeps Twilio's From ("whatsapp:+…"): the event's row, once routed to its contact, says which
-- channel the contact wrote on. Greatest, so a redelivered or late event never moves it back.
create function herald.provider_events_note_whatsapp() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.contacts
  set last_whatsapp_inbound_at = greatest(last_whatsapp_inbound_at, new.received_at)
  where workspace_id = new.workspace_id and id = new.contact_id
    and last_whatsapp_inbound_at is distinct from greatest(last_whatsapp_inbound_at, new.received_at);
  return null;
end;
$$;
comment on function herald.provider_events_note_whatsapp() is 'An inbound WhatsApp message routed to a contact opens its 24-hour window (contacts.last_whatsapp_inbound_at).';
create trigger provider_events_note_whatsapp after insert or update of contact_id on public.provider_events
for each row when (new.kind = 'inbound' and new.contact_id is not null and new.payload ->> 'From' like 'whatsapp:%')
execute function herald.provider_events_note_whatsapp();

create function herald.whatsapp_window_open(p_contact public.contacts, p_at timestamptz default now()) returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
  select coalesce(p_contact.last_whatsapp_inbound_at > p_at - interval '24 hours', false)
$$;
comment on function herald.whatsapp_window_open(public.contacts, timestamptz) is 'True while the contact''s last WhatsApp message is less than 24 hours old at p_at: free-form WhatsApp is delivered only then.';
revoke execute on function herald.whatsapp_window_open(public.contacts, timestamptz) from public;
grant execute on function herald.whatsapp_window_open(public.contacts, timestamptz) to service_role;

/** Section - what goes to Twilio */
-- For the dispatcher, per claimed message: the free-form body, or the template (ContentSid and
-- ContentVariables, no Body), or nothing, with the reason. The reason and message are what the
-- message fails with before any provider call.
create function herald.outbound_content(
  p_message public.messages,
  p_contact public.contacts,
  p_at timestamptz default now(),
  out body text,
  out content_sid text,
  out content_variables jsonb,
  out refusal text,
  out refusal_message text
)
language sql
stable
set search_path = ''
as $$
  select case when not x.needs_template then p_message.body end,
         t.content_sid,
         case when t.id is not null then coalesce(p_message.template_variables, '{}') end,
         case when x.needs_template and t.id is null then 'template_required' end,
         case when x.needs_template and t.id is null then
           'template required: WhatsApp delivers free-form text only within 24 hours of the contact''s last message; '
           || 'give the message a template_id (a content template of this workspace) to reach them outside that window' end
  from (select p_message.channel = 'whatsapp' and not herald.whatsapp_window_open(p_contact, p_at) as needs_template) x
  left join public.message_templates t
    on x.needs_template and t.workspace_id = p_message.workspace_id and t.id = p_message.template_id and t.channel = p_message.channel
$$;
comment on function herald.outbound_content(public.messages, public.contacts, timestamptz) is 'What the provider call carries for this message at p_at: body (SMS, or WhatsApp inside the 24-hour window), or content_sid + content_variables (WhatsApp outside it), or refusal = template_required with refusal_message when it has no template: then it fails before any call.';
revoke execute on function herald.outbound_content(public.messages, public.contacts, timestamptz) from public;
grant execute on function herald.outbound_content(public.messages, public.contacts, timestamptz) to service_role;

-- Check violations by API writes answered with the constraint's comment (see the constraint_messages migration).
select herald.explain_checks_on('public.message_templates');
