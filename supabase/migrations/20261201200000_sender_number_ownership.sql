/**
 * A Twilio number belongs to one workspace.
 *
 * Without this, any signed-up user could create a workspace and add a sender with another
 * workspace's number: inbound texts to the number were then applied in every workspace that
 * listed it (one tenant read another's inbound SMS, STOP and START landed in the wrong place)
 * and the newcomer sent as the other tenant's number.
 *
 *   senders: one sender per (channel, number) across all workspaces (23505 naming the number);
 *   apply_inbound: the channel and the number written to name exactly one workspace;
 *   provider_events: once an event belongs to a workspace, it never moves to another.
 */

/** Section - one sender per number */
create unique index senders_one_per_number on public.senders (channel, phone_number) where phone_number is not null;
comment on index public.senders_one_per_number is 'A number belongs to one workspace: inbound messages are routed by it.';

-- The index alone answers with a message that names the index, not the number; this says which
-- number and what to do (the index still settles a race between two inserts).
create function herald.senders_number_free() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.phone_number is not null and exists (
    select 1 from public.senders s
    where s.channel = new.channel and s.phone_number = new.phone_number and s.id <> new.id
  ) then
    raise exception 'the % number % is already held by a sender', new.channel, new.phone_number
      using errcode = '23505',
            hint = 'A number belongs to one workspace. Remove it from the sender that holds it first.';
  end if;
  return new;
end;
$$;
create trigger senders_number_free before insert or update of channel, phone_number on public.senders
for each row execute function herald.senders_number_free();
comment on function herald.senders_number_free() is 'A (channel, number) already held by a sender, in any workspace, is refused (23505 naming the number).';

/** Section - a provider event stays in its workspace */
create function herald.provider_events_keep_workspace() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if old.workspace_id is not null and new.workspace_id is distinct from old.workspace_id then
    raise exception 'provider event % belongs to workspace % and cannot move', old.id, old.workspace_id
      using errcode = '42501', hint = 'A webhook is routed once, to the workspace that holds the number or the message.';
  end if;
  return new;
end;
$$;
create trigger provider_events_keep_workspace before update of workspace_id on public.provider_events
for each row execute function herald.provider_events_keep_workspace();
comment on function herald.provider_events_keep_workspace() is 'A provider event routed to a workspace is never rewritten to another (an unrouted one may be routed once).';

/** Section - inbound routing */
-- As before, except that the workspace is the one holding (channel, number), so at most one.
-- The channel is Twilio's: a WhatsApp webhook writes `whatsapp:+…` in To.
create or replace function herald.apply_inbound(
  p_from text,
  p_to text,
  p_body text,
  p_sid text,
  p_payload jsonb,
  p_idempotency_token text default null
) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_keyword text := upper(btrim(coalesce(p_body, '')));
  v_channel public.channel := case when coalesce(p_payload ->> 'To', '') like 'whatsapp:%' then 'whatsapp' else 'sms' end;
  v_stop boolean;
  v_start boolean;
  v_ws uuid;
  c public.contacts;
  v_outcome text;
  v_event bigint;
begin
  perform set_config('herald.actor', 'provider', true);
  insert into public.provider_events (kind, provider_sid, outcome, payload, idempotency_token)
  values ('inbound', p_sid, 'pending', p_payload, coalesce(p_idempotency_token, 'inbound:' || p_sid))
  on conflict (idempotency_token) do nothing
  returning id into v_event;
  if v_event is null then
    return 'duplicate';
  end if;

  -- Twilio's opt-out and opt-in keywords: the whole message, any case.
  v_stop := v_keyword in ('STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT', 'OPTOUT', 'REVOKE');
  v_start := v_keyword in ('START', 'YES', 'UNSTOP');

  -- The sender of the message's channel; a line with only the other channel's sender (an SMS
  -- number that also receives WhatsApp) is that sender's. Never more than one workspace.
  select s.workspace_id into v_ws from public.senders s
  where s.phone_number = p_to order by s.channel = v_channel desc limit 1;
  if v_ws is null then
    update public.provider_events set outcome = 'unrouted' where id = v_event;
    return 'unrouted';
  end if;

  select * into c from public.contacts
  where workspace_id = v_ws and phone = p_from and deleted_at is null for update;
  if not found then
    if v_stop then
      insert into public.suppressions (workspace_id, phone_hash, reason)
      values (v_ws, herald.phone_hash(v_ws, p_from), 'opted_out') on conflict do nothing;
      v_outcome := 'opted_out';
    elsif v_start then
      delete from public.suppressions where workspace_id = v_ws and phone_hash = herald.phone_hash(v_ws, p_from);
      v_outcome := 'opted_in';
    else
      v_outcome := 'unknown_contact';
    end if;
    update public.provider_events set workspace_id = v_ws, outcome = v_outcome where id = v_event;
    return v_outcome;
  end if;

  perform set_config('herald.opt_in', case when v_start then 'on' else '' end, true);
  update public.contacts
  set last_inbound_at = now(),
      opted_out_at = case when v_stop then coalesce(opted_out_at, now()) when v_start then null else opted_out_at end
  where id = c.id;
  perform set_config('herald.opt_in', '', true);
  insert into public.contact_activities (workspace_id, contact_id, kind, detail, actor)
  values (v_ws, c.id, 'replied', jsonb_build_object('provider_sid', p_sid, 'keyword',
          case when v_stop then 'stop' when v_start then 'start' end), 'provider');

  if not v_stop then
    -- Any other reply ends the sequences that asked to stop on a reply.
    update public.messages m
    set status = 'cancelled', cancel_reason = 'replied', cancelled_at = now()
    from public.sequence_enrollments e
    join public.sequences s on s.workspace_id = e.workspace_id and s.id = e.sequence_id and s.stop_on_reply
    where e.workspace_id = v_ws and e.contact_id = c.id and e.status = 'active'
      and m.workspace_id = e.workspace_id and m.enrollment_id = e.id and m.status in ('scheduled', 'queued');
    update public.sequence_enrollments e
    set status = 'cancelled', stopped_reason = 'replied', completed_at = now()
    from public.sequences s
    where s.workspace_id = e.workspace_id and s.id = e.sequence_id and s.stop_on_reply
      and e.workspace_id = v_ws and e.contact_id = c.id and e.status = 'active';
  end if;
  v_outcome := case when v_stop then 'opted_out' when v_start then 'opted_in' else 'replied' end;
  update public.provider_events set workspace_id = v_ws, contact_id = c.id, outcome = v_outcome where id = v_event;
  return v_outcome;
end;
$$;
comment on function herald.apply_inbound(text, text, text, text, jsonb, text) is 'Applies one inbound message in the one workspace holding the number written to: STOP-family keywords opt out (cancelling everything pending), START-family opt back in, any other reply stops stop_on_reply sequences.';
revoke execute on function herald.apply_inbound(text, text, text, text, jsonb, text) from public, authenticated;
grant execute on function herald.apply_inbound(text, text, text, text, jsonb, text) to service_role;
