/**
 * The inbound webhook reads keywords as the workspace defines them, keeps the consent record, and
 * answers HELP.
 *
 * apply_inbound matched its own fixed English list on the trimmed, upper-cased body, so a
 * workspace's own words (PARAR, ARRET) were ordinary replies, "Stop." was not a STOP, OPTIN did not
 * opt in, and HELP was not recognised. A keyword opt-out or opt-in left no consent record, so an
 * audit could not be shown when and how a contact said STOP or START.
 *
 *   herald.apply_inbound   classifies the body with herald.classify_keyword (the standard sets and
 *                          the workspace's words, matched as Twilio matches); applies an opt-out
 *                          or opt-in as before and writes one consent row for it (source keyword,
 *                          proof the inbound MessageSid, channel of the message); records HELP and
 *                          INFO as a help_requested activity; and returns the outcome with what
 *                          the webhook answers: the workspace's help_reply for HELP and INFO, else
 *                          null (empty TwiML, so Twilio's own default replies stay in charge).
 *
 * Everything else is as it was: the number written to (and its channel) names one workspace,
 * a MessageSid is applied once (herald.provider_events_inbound_key), last_inbound_at is set, any
 * message other than an opt-out stops the contact's stop_on_reply sequences, and a number with no
 * contact has its opt-out or opt-in kept on the suppression list.
 */

/** Section - apply_inbound */
-- The return type changes (the outcome and the answer), so the function is dropped and created
-- again; nothing depends on it but the twilio-inbound function, which changes with it.
drop function herald.apply_inbound(text, text, text, text, jsonb, text);

create function herald.apply_inbound(
  p_from text,
  p_to text,
  p_body text,
  p_sid text,
  p_payload jsonb,
  p_idempotency_token text default null,
  out outcome text,
  out reply text
)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  -- Twilio's payload keeps the channel prefix the caller strips from p_from and p_to.
  v_channel public.channel := case when coalesce(p_payload ->> 'To', '') like 'whatsapp:%' then 'whatsapp' else 'sms' end;
  v_action text;
  v_keyword_outcome text;
  v_ws uuid;
  c public.contacts;
  v_event bigint;
begin
  perform set_config('herald.actor', 'provider', true);
  insert into public.provider_events (kind, provider_sid, outcome, payload, idempotency_token)
  values ('inbound', p_sid, 'pending', p_payload, coalesce(p_idempotency_token, 'inbound:' || p_sid))
  on conflict (idempotency_token) do nothing
  returning id into v_event;
  if v_event is null then
    -- Applied already: nothing is written again. Twilio delivers a webhook again only when it got
    -- no answer the first time, and acts on the answer it gets, so a HELP is answered again.
    outcome := 'duplicate';
    select w.help_reply into reply
    from public.provider_events e join public.workspaces w on w.id = e.workspace_id
    where e.idempotency_token = 'inbound:' || p_sid and e.kind = 'inbound' and e.outcome = 'help';
    return;
  end if;

  -- The sender of the message's channel; a line with only the other channel's sender (an SMS
  -- number that also receives WhatsApp) is that sender's. Never more than one workspace.
  select s.workspace_id into v_ws from public.senders s
  where s.phone_number = p_to order by s.channel = v_channel desc limit 1;
  if v_ws is null then
    update public.provider_events set outcome = 'unrouted' where id = v_event;
    outcome := 'unrouted';
    return;
  end if;

  v_action := herald.classify_keyword(v_ws, p_body);
  v_keyword_outcome := case v_action when 'opt_out' then 'opted_out' when 'opt_in' then 'opted_in' when 'help' then 'help' end;
  if v_action = 'help' then
    select w.help_reply into reply from public.workspaces w where w.id = v_ws;
  end if;

  select * into c from public.contacts
  where workspace_id = v_ws and phone = p_from and deleted_at is null for update;
  if not found then
    -- No contact to hold a consent record: the number's opt-out is kept as a suppression (a
    -- contact added later with it starts opted out), and its opt-in lifts one.
    if v_action = 'opt_out' then
      insert into public.suppressions (workspace_id, phone_hash, reason)
      values (v_ws, herald.phone_hash(v_ws, p_from), 'opted_out') on conflict do nothing;
    elsif v_action = 'opt_in' then
      delete from public.suppressions where workspace_id = v_ws and phone_hash = herald.phone_hash(v_ws, p_from);
    end if;
    outcome := coalesce(v_keyword_outcome, 'unknown_contact');
    update public.provider_events e set workspace_id = v_ws, outcome = coalesce(v_keyword_outcome, 'unknown_contact')
    where e.id = v_event;
    return;
  end if;

  -- herald.opt_in lets this one statement lift an opt-out (herald.contacts_guard_opt_in).
  perform set_config('herald.opt_in', case when v_action = 'opt_in' then 'on' else '' end, true);
  update public.contacts
  set last_inbound_at = now(),
      opted_out_at = case v_action when 'opt_out' then coalesce(opted_out_at, now()) when 'opt_in' then null
                                   else opted_out_at end
  where id = c.id;
  perform set_config('herald.opt_in', '', true);
  insert into public.contact_activities (workspace_id, contact_id, kind, detail, actor)
  values (v_ws, c.id, 'replied',
          jsonb_build_object('provider_sid', p_sid,
                             'keyword', case v_action when 'opt_out' then 'stop' when 'opt_in' then 'start' when 'help' then 'help' end)
          -- The word itself for a keyword (PARAR is a stop too).
          || jsonb_strip_nulls(jsonb_build_object('word', case when v_action is not null then herald.normalize_keyword(p_body) end)),
          'provider');

  if v_action in ('opt_out', 'opt_in') then
    -- Every keyword opt-out and opt-in is recorded, a repeated STOP too: each is the contact's
    -- own word, with its message as the proof.
    perform herald.record_consent_event(v_ws, c.id, v_channel,
                                        case v_action when 'opt_out' then 'opted_out' else 'opted_in' end::public.consent_status,
                                        'keyword', p_sid);
  elsif v_action = 'help' then
    insert into public.contact_activities (workspace_id, contact_id, kind, detail, actor)
    values (v_ws, c.id, 'help_requested',
            jsonb_build_object('provider_sid', p_sid, 'word', herald.normalize_keyword(p_body), 'answered', reply is not null),
            'provider');
  end if;

  if v_action is distinct from 'opt_out' then
    -- Any other message, HELP and START included, is a reply: it ends the sequences that asked
    -- to stop on one. (An opt-out has cancelled everything pending already.)
    update public.messages m
    set status = 'cancelled', cancel_reason = 'replied', cancelled_at = now()
    from public.sequence_enrollments e
    join public.sequences s on s.workspace_id = e.workspace_id and s.id = e.sequence_id and s.stop_on_reply
    where e.workspace_id = v_ws and e.contact_id = c.id and e.status = 'active'
      and m.workspace_id = e.workspace_id and m.enrollment_id = e.id and m.status = any (herald.pending_statuses());
    update public.sequence_enrollments e
    set status = 'cancelled', stopped_reason = 'replied', completed_at = now()
    from public.sequences s
    where s.workspace_id = e.workspace_id and s.id = e.sequence_id and s.stop_on_reply
      and e.workspace_id = v_ws and e.contact_id = c.id and e.status = 'active';
  end if;
  outcome := coalesce(v_keyword_outcome, 'replied');
  update public.provider_events e set workspace_id = v_ws, contact_id = c.id, outcome = coalesce(v_keyword_outcome, 'replied')
  where e.id = v_event;
end;
$$;
comment on function herald.apply_inbound(text, text, text, text, jsonb, text) is 'Applies one inbound message in the one workspace holding the number written to, once per MessageSid: opt-out and opt-in keywords (the standard sets and the workspace''s) are applied and recorded as keyword consents, HELP and INFO are recorded and answered with the workspace''s help_reply, any message but an opt-out stops stop_on_reply sequences. Returns the outcome and the reply the webhook answers with (null: empty TwiML).';
revoke execute on function herald.apply_inbound(text, text, text, text, jsonb, text) from public, anon, authenticated;
grant execute on function herald.apply_inbound(text, text, text, text, jsonb, text) to service_role;

comment on column public.provider_events.outcome is 'applied, unchanged (late or duplicate status), unknown_sid; for inbound messages opted_out, opted_in, help, replied, unknown_contact, unrouted.';
