/**
 * What Twilio tells Herald after a send: status callbacks and inbound messages. Every verified
 * webhook call is kept in provider_events with what Herald did with it, and is applied by one
 * database function, so the webhook functions stay thin and a redelivered or late call is
 * recognised in the database.
 *
 *   apply_provider_status  moves the attempt and the message forward by rank only: duplicate and
 *                          out-of-order callbacks change nothing
 *   apply_inbound          STOP / START keywords, last_inbound_at, stop_on_reply
 *
 * A callback that arrives before the dispatcher has recorded the message's sid is kept as
 * unknown_sid; record_send_result (dispatch) replays it through apply_status_event.
 */

/** Section - provider events (the webhooks' inbox) */
create table public.provider_events (
  id bigint generated always as identity primary key,
  workspace_id uuid,
  message_id uuid,
  contact_id uuid,
  kind text not null,
  provider_sid text,
  provider_status text,
  error_code integer,
  outcome text not null,
  payload jsonb not null,
  idempotency_token text unique,
  received_at timestamptz not null default now(),
  foreign key (workspace_id, message_id) references public.messages (workspace_id, id) on delete cascade,
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  constraint provider_events_kind_valid check (kind in ('status', 'inbound'))
);
comment on table public.provider_events is 'Every verified Twilio webhook call, as received, and what Herald did with it. Goes with the message or contact on a hard delete.';
comment on column public.provider_events.outcome is 'applied, unchanged (late or duplicate status), unknown_sid, opted_out, opted_in, replied, unrouted…';
comment on column public.provider_events.idempotency_token is 'Twilio''s I-Twilio-Idempotency-Token: a redelivered webhook is recognised and not applied twice.';
create index provider_events_workspace_message_idx on public.provider_events (workspace_id, message_id) where message_id is not null;
create index provider_events_workspace_contact_idx on public.provider_events (workspace_id, contact_id) where contact_id is not null;
create index provider_events_sid_idx on public.provider_events (provider_sid);
alter table public.provider_events enable row level security;
create policy provider_events_select on public.provider_events for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
revoke all on public.provider_events from anon;
revoke insert, update, delete, truncate on public.provider_events from authenticated;

/** Section - status callbacks */
-- Applies one status callback to the attempt and the message of its sid, forward by rank only,
-- and says what it did (the caller writes that on the callback's provider event). Shared by
-- apply_provider_status and by record_send_result, which replays the callbacks that reached
-- Herald before the sid did.
create function herald.apply_status_event(
  p_sid text,
  p_status text,
  p_error_code integer,
  out outcome text,
  out workspace_id uuid,
  out message_id uuid
)
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  a public.message_attempts;
  m public.messages;
  v_target public.message_status := herald.from_provider_status(p_status);
  v_current public.message_status;
  v_advances boolean;
  v_prev text;
begin
  select * into a from public.message_attempts where provider_sid = p_sid for update;
  if not found then
    select * into m from public.messages where provider_sid = p_sid;
    if not found then
      outcome := 'unknown_sid';
      return;
    end if;
  else
    -- The attempt keeps the furthest status Twilio reported, whatever order callbacks arrive in:
    -- the statuses before sent (queued, sending…) only replace each other, and from sent on it
    -- moves forward along the message graph, as the message does. A late queued after delivered
    -- must not take the attempt back.
    v_current := herald.from_provider_status(a.provider_status);
    v_advances := case
      when v_current is null then true
      when v_target is null then false
      else herald.message_rank(v_target) > herald.message_rank(v_current) and herald.message_transition_ok(v_current, v_target)
    end;
    update public.message_attempts
    set provider_status = case when v_advances then lower(p_status) else provider_status end,
        error_code = case when v_advances then coalesce(p_error_code, error_code) else error_code end,
        last_callback_at = now()
    where id = a.id;
  end if;

  select * into m from public.messages
  where id = coalesce(a.message_id, m.id) for update;

  if v_target is not null
     and herald.message_rank(v_target) > herald.message_rank(m.status)
     and herald.message_transition_ok(m.status, v_target) then
    v_prev := herald.set_reason('provider_' || lower(p_status) || coalesce('_' || p_error_code, ''));
    update public.messages
    set status = v_target,
        provider_sid = coalesce(provider_sid, p_sid),
        lease_expires_at = null,
        sent_at = coalesce(sent_at, now()),
        delivered_at = case when v_target = any (herald.delivered_statuses()) then coalesce(delivered_at, now()) else delivered_at end,
        failed_at = case when v_target = any (herald.failed_statuses()) then now() else failed_at end,
        last_error_code = case when v_target = any (herald.failed_statuses()) then p_error_code else last_error_code end,
        last_error = case when v_target = any (herald.failed_statuses()) then 'provider reported ' || lower(p_status)
                          || coalesce(' with error ' || p_error_code, '') else last_error end
    where id = m.id;
    perform herald.set_reason(v_prev);
    outcome := 'applied';
  else
    outcome := 'unchanged';
  end if;
  workspace_id := m.workspace_id;
  message_id := m.id;
end;
$$;
comment on function herald.apply_status_event(text, text, integer) is 'Applies one status callback to its attempt and message by rank; returns the outcome and the message it applied to.';
revoke execute on function herald.apply_status_event(text, text, integer) from public, authenticated;

create function herald.apply_provider_status(
  p_sid text,
  p_status text,
  p_error_code integer,
  p_payload jsonb,
  p_idempotency_token text default null
) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  r record;
begin
  perform set_config('herald.actor', 'provider', true);
  -- Taken in turn with record_send_result for the same sid: a callback that beats the
  -- dispatcher's answer either waits for it here, or is kept as unknown_sid and replayed there.
  -- Also with a redelivery of the same callback (same sid): the second one, after the lock,
  -- sees the first's event and is a duplicate.
  perform pg_advisory_xact_lock(hashtextextended(p_sid, 0));
  if p_idempotency_token is not null
     and exists (select 1 from public.provider_events e where e.idempotency_token = p_idempotency_token) then
    return 'duplicate';
  end if;
  r := herald.apply_status_event(p_sid, p_status, p_error_code);
  -- Stored once, with what was done (an unknown sid waits there for its replay).
  insert into public.provider_events (kind, workspace_id, message_id, provider_sid, provider_status, error_code,
                                      outcome, payload, idempotency_token)
  values ('status', r.workspace_id, r.message_id, p_sid, lower(p_status), p_error_code,
          r.outcome, p_payload, p_idempotency_token);
  return r.outcome;
end;
$$;
comment on function herald.apply_provider_status(text, text, integer, jsonb, text) is 'Applies one Twilio status callback: stored as a provider event, and the attempt and message move forward by rank only, so duplicates and out-of-order callbacks change nothing.';
revoke execute on function herald.apply_provider_status(text, text, integer, jsonb, text) from public, authenticated;
grant execute on function herald.apply_provider_status(text, text, integer, jsonb, text) to service_role;

/** Section - inbound messages */
create function herald.apply_inbound(
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
  v_stop boolean;
  v_start boolean;
  v_ws uuid;
  c public.contacts;
  v_outcome text := 'unrouted';
  v_event bigint;
  v_prev text;
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

  -- The number written to names the workspace (through its sender).
  for v_ws in select distinct s.workspace_id from public.senders s where s.phone_number = p_to loop
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
      continue;
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
        and m.workspace_id = e.workspace_id and m.enrollment_id = e.id and m.status = any (herald.pending_statuses());
      update public.sequence_enrollments e
      set status = 'cancelled', stopped_reason = 'replied', completed_at = now()
      from public.sequences s
      where s.workspace_id = e.workspace_id and s.id = e.sequence_id and s.stop_on_reply
        and e.workspace_id = v_ws and e.contact_id = c.id and e.status = 'active';
    end if;
    v_outcome := case when v_stop then 'opted_out' when v_start then 'opted_in' else 'replied' end;
    update public.provider_events set workspace_id = v_ws, contact_id = c.id where id = v_event;
  end loop;
  update public.provider_events set outcome = v_outcome where id = v_event;
  return v_outcome;
end;
$$;
comment on function herald.apply_inbound(text, text, text, text, jsonb, text) is 'Applies one inbound message: STOP-family keywords opt out (cancelling everything pending), START-family opt back in, any other reply stops stop_on_reply sequences.';
revoke execute on function herald.apply_inbound(text, text, text, text, jsonb, text) from public, authenticated;
grant execute on function herald.apply_inbound(text, text, text, text, jsonb, text) to service_role;
