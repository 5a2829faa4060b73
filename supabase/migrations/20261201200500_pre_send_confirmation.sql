/**
 * The pre-send confirmation, and nothing of a hard-deleted contact left behind by a send in flight.
 *
 * The claim re-checked the contact, but the dispatcher then waited for the message's rate slot
 * (up to half the lease) and called Twilio without asking again: a contact who texted STOP, or
 * was deleted or taken over, seconds after the claim still got the message. Now, immediately
 * before each provider call, the dispatcher calls herald.confirm_send(): one cheap statement per
 * message (it takes arrays, so a group of slots can be confirmed at once) that checks
 *
 *   - the message is still this attempt's, under a live lease (otherwise: skip, send nothing);
 *   - its contact may be messaged (otherwise: cancelled with the reason, the attempt not spent);
 *   - the send window is open: quiet hours in the recipient's zone and the daily limit
 *     (otherwise: deferred, as queueing would);
 *
 * and, when all hold, stretches the lease over the provider call and marks the attempt confirmed
 * (message_attempts.confirmed_at: the provider is called only for a confirmed attempt).
 *
 * A hard delete while a message is at Twilio: the message and its attempt go with the contact,
 * so the sid Twilio returns had nowhere to go and the later status callback stored the number in
 * provider_events for good. The delete now notes the in-flight message (herald.inflight_deletions,
 * ids only); record_send_result sends its sid to the provider-erasure outbox and drops callbacks
 * that arrived first, and apply_provider_status stores nothing for a sid being erased.
 */

/** Section - confirmation marker */
alter table public.message_attempts add column confirmed_at timestamptz;
comment on column public.message_attempts.confirmed_at is 'When the dispatcher confirmed, right before calling the provider, that it may send. Null: the provider was never called for this attempt.';

/** Section - sends in flight when their contact is hard-deleted */
create table herald.inflight_deletions (
  message_id uuid primary key,
  deletion_id bigint not null references public.deletion_log (id) on delete cascade,
  at timestamptz not null default now()
);
comment on table herald.inflight_deletions is 'Messages that were at the provider (sending) when their contact was hard-deleted: the sid the provider returns for one goes to the erasure outbox. Ids only, no personal data.';
comment on column herald.inflight_deletions.message_id is 'No foreign key: the message is gone with its contact.';
comment on column herald.inflight_deletions.deletion_id is 'The contact''s deletion, whose log row (it outlives the workspace) names the workspace for the erasure.';
create index inflight_deletions_deletion_idx on herald.inflight_deletions (deletion_id);
alter table herald.inflight_deletions enable row level security;

-- Fires after contacts_before_delete (triggers of one event fire in name order), so the
-- deletion's log row is there to point at.
create function herald.contacts_keep_inflight() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Inside a workspace delete, the workspace's own log and erasure cover its contacts.
  if not exists (select 1 from public.workspaces w where w.id = old.workspace_id) then
    return old;
  end if;
  insert into herald.inflight_deletions (message_id, deletion_id)
  select m.id, l.id
  from public.messages m
  cross join lateral (select l.id from public.deletion_log l where l.entity = 'contact' and l.entity_id = old.id
                      order by l.id desc limit 1) l
  where m.workspace_id = old.workspace_id and m.contact_id = old.id and m.status = 'sending'
  on conflict (message_id) do nothing;
  return old;
end;
$$;
create trigger contacts_keep_inflight before delete on public.contacts
for each row execute function herald.contacts_keep_inflight();
comment on function herald.contacts_keep_inflight() is 'Hard delete: notes the contact''s messages at the provider right now, so the sid returned for each is erased there too.';

/** Section - the send window */
-- Start of the local day containing p_at in zone p_tz.
create function herald.local_day_start(p_at timestamptz, p_tz text) returns timestamptz
language sql
stable
set search_path = ''
as $$
  select (date_trunc('day', p_at at time zone p_tz)) at time zone p_tz
$$;
comment on function herald.local_day_start(timestamptz, text) is 'Midnight (local, in p_tz) of the day containing p_at.';

-- Messages of the workspace sent since the start of its local day, plus those being sent now.
create function herald.day_use(p_workspace_id uuid, p_day_start timestamptz) returns bigint
language sql
stable
set search_path = ''
as $$
  select (select count(*) from public.messages m
          where m.workspace_id = p_workspace_id and m.sent_at >= p_day_start)
       + (select count(*) from public.messages m
          where m.workspace_id = p_workspace_id and m.status = 'sending' and m.sent_at is null)
$$;
comment on function herald.day_use(uuid, timestamptz) is 'What counts against a workspace''s daily limit once messages are claimed: sent since the local day began, and in flight.';

-- Back from sending to scheduled at p_until, the attempt not spent (its row goes; the ledger
-- keeps the move with its reason).
create function herald.defer_sending(p_message_id uuid, p_attempt_no integer, p_until timestamptz, p_reason text) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_prev text := herald.set_reason(p_reason);
begin
  update public.messages
  set status = 'scheduled', send_at = p_until, lease_expires_at = null, attempts = attempts - 1
  where id = p_message_id;
  delete from public.message_attempts where message_id = p_message_id and attempt_no = p_attempt_no;
  perform herald.set_reason(v_prev);
end;
$$;

/** Section - confirm_send */
create function herald.confirm_send(
  p_message_ids uuid[],
  p_attempt_nos integer[],
  p_call_timeout interval default '15 seconds'
) returns table (message_id uuid, verdict text, reason text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  m public.messages;
  c public.contacts;
  w public.workspaces;
  v_block public.cancel_reason;
  v_until timestamptz;
  v_day timestamptz;
begin
  if p_message_ids is null or p_attempt_nos is null or cardinality(p_message_ids) <> cardinality(p_attempt_nos) then
    raise exception 'message ids and attempt numbers must pair up' using errcode = '22023';
  end if;
  if p_call_timeout is null or p_call_timeout <= interval '0' then
    raise exception 'the provider call timeout must be positive' using errcode = '22023';
  end if;
  perform set_config('herald.actor', 'dispatcher', true);
  for i in 1 .. cardinality(p_message_ids) loop
    message_id := p_message_ids[i];
    verdict := 'skip';
    reason := null;
    select * into m from public.messages x where x.id = p_message_ids[i] for update;
    if not found then
      reason := 'gone';
    elsif m.status <> 'sending' or m.attempts <> p_attempt_nos[i] then
      reason := 'not_ours'; -- recorded meanwhile, or reaped and claimed again by another attempt
    elsif m.lease_expires_at <= now() then
      reason := 'lease_expired'; -- the reaper takes it back; sending now could send it twice
    else
      select * into c from public.contacts x where x.workspace_id = m.workspace_id and x.id = m.contact_id;
      select * into w from public.workspaces x where x.id = m.workspace_id;
      v_block := herald.contact_block_reason(c);
      v_until := herald.quiet_until(now(), coalesce(c.timezone, w.timezone), w.quiet_hours_start, w.quiet_hours_end);
      if v_block is not null then
        update public.messages
        set status = 'cancelled', cancel_reason = v_block, cancelled_at = now(), lease_expires_at = null,
            attempts = attempts - 1
        where id = m.id;
        delete from public.message_attempts a where a.message_id = m.id and a.attempt_no = m.attempts;
        verdict := 'cancelled';
        reason := v_block::text;
      elsif v_until is not null then
        perform herald.defer_sending(m.id, m.attempts, v_until + herald.spread(m.id, interval '30 minutes'), 'quiet_hours');
        verdict := 'deferred';
        reason := 'quiet_hours';
      elsif w.daily_limit is not null
            and herald.day_use(w.id, herald.local_day_start(now(), w.timezone)) > w.daily_limit then
        v_day := herald.local_day_start(now(), w.timezone);
        perform herald.defer_sending(m.id, m.attempts,
          ((v_day at time zone w.timezone) + interval '1 day') at time zone w.timezone + herald.spread(m.id, interval '30 minutes'),
          'daily_limit');
        verdict := 'deferred';
        reason := 'daily_limit';
      else
        update public.messages set lease_expires_at = greatest(lease_expires_at, now() + p_call_timeout) where id = m.id;
        update public.message_attempts a set confirmed_at = now() where a.message_id = m.id and a.attempt_no = m.attempts;
        verdict := 'send';
      end if;
    end if;
    return next;
  end loop;
end;
$$;
comment on function herald.confirm_send(uuid[], integer[], interval) is 'Right before each provider call: send (lease stretched over the call, attempt marked confirmed), skip (gone, not this attempt''s, lease expired), cancelled (the contact may no longer be messaged) or deferred (quiet hours, daily limit), per message.';
revoke execute on function herald.confirm_send(uuid[], integer[], interval) from public, authenticated;
grant execute on function herald.confirm_send(uuid[], integer[], interval) to service_role;

/** Section - the provider's answer for a message erased meanwhile */
create or replace function herald.record_send_result(
  p_message_id uuid,
  p_attempt_no integer,
  p_outcome text,
  p_sid text default null,
  p_provider_status text default null,
  p_error_code integer default null,
  p_error_message text default null
) returns public.message_status
language plpgsql
security definer
set search_path = ''
as $$
declare
  m public.messages;
  v_base integer;
  v_prev text;
  v_target public.message_status;
  v_early record;
  v_applied record;
  v_block public.cancel_reason;
begin
  if p_outcome not in ('sent', 'permanent', 'transient', 'not_sent') then
    raise exception 'unknown outcome %', p_outcome using errcode = '22023';
  end if;
  perform set_config('herald.actor', 'dispatcher', true);
  if p_sid is not null then
    -- Twilio may call back before this answer is recorded (see apply_provider_status).
    perform pg_advisory_xact_lock(hashtextextended(p_sid, 0));
  end if;

  update public.message_attempts
  set provider_sid = coalesce(p_sid, provider_sid),
      provider_status = coalesce(lower(p_provider_status), case p_outcome when 'sent' then 'accepted' else 'error' end),
      error_code = p_error_code, error_message = p_error_message, responded_at = now()
  where message_id = p_message_id and attempt_no = p_attempt_no;

  select * into m from public.messages where id = p_message_id for update;
  if not found then
    -- Erased meanwhile (hard delete): nothing left to record. If the provider took it, its copy
    -- is erased too, and callbacks that beat this answer (they carry the number) go.
    if p_sid is not null then
      insert into herald.provider_erasures (deletion_id, workspace_id, provider_sid)
      select d.deletion_id, l.workspace_id, p_sid
      from herald.inflight_deletions d join public.deletion_log l on l.id = d.deletion_id
      where d.message_id = p_message_id
      on conflict (provider_sid) do nothing;
      delete from public.provider_events e where e.provider_sid = p_sid and e.message_id is null;
    end if;
    delete from herald.inflight_deletions d where d.message_id = p_message_id;
    return null;
  end if;

  if p_outcome = 'sent' then
    if m.status in ('queued', 'scheduled') then
      -- Our lease was reaped while Twilio accepted the message: it is sent all the same.
      v_prev := herald.set_reason('late_provider_answer');
      update public.messages set status = 'sending', lease_expires_at = now() where id = m.id and status = 'queued';
      perform herald.set_reason(v_prev);
    end if;
    update public.messages
    set status = case when herald.message_rank(status) < herald.message_rank('sent') then 'sent' else status end,
        provider_sid = coalesce(provider_sid, p_sid), sent_at = coalesce(sent_at, now()),
        lease_expires_at = null, provider_check_required = false, last_error_code = null, last_error = null
    where id = m.id and status in ('sending', 'sent', 'delivered', 'read')
    returning status into v_target;
    -- Callbacks that arrived before the sid was known were kept as unknown_sid (Twilio is
    -- answered 200 and does not send them again): they are applied now, in arrival order.
    for v_early in
      select e.id, e.provider_status, e.error_code from public.provider_events e
      where e.provider_sid = p_sid and e.kind = 'status' and e.outcome = 'unknown_sid'
      order by e.id
    loop
      perform set_config('herald.actor', 'provider', true);
      v_applied := herald.apply_status_event(p_sid, v_early.provider_status, v_early.error_code);
      update public.provider_events e
      set outcome = v_applied.outcome, workspace_id = v_applied.workspace_id, message_id = v_applied.message_id
      where e.id = v_early.id;
      select status into v_target from public.messages where id = m.id;
    end loop;
    return v_target;
  end if;

  if m.status <> 'sending' or m.attempts <> p_attempt_no then
    return m.status; -- a stale answer for an attempt that no longer holds the message
  end if;

  if p_outcome = 'not_sent' then
    select herald.contact_block_reason(c) into v_block
    from public.contacts c where c.workspace_id = m.workspace_id and c.id = m.contact_id;
    v_prev := herald.set_reason(coalesce('not_sent_' || p_error_code, 'not_sent'));
    -- Back to the queue, unless the contact may no longer be messaged: then it is cancelled
    -- here, since nothing else would ever pick a queued message of a blocked contact up.
    update public.messages
    set status = case when v_block is null then 'queued' else 'cancelled' end::public.message_status,
        cancel_reason = v_block, cancelled_at = case when v_block is not null then now() end,
        lease_expires_at = null, attempts = attempts - 1,
        last_error_code = p_error_code, last_error = p_error_message
    where id = m.id returning status into v_target;
    -- The attempt is not spent, so its row goes too (the ledger keeps the not_sent event): the
    -- next claim makes this attempt number again, and attempts stays the count of attempt rows.
    delete from public.message_attempts where message_id = m.id and attempt_no = p_attempt_no;
  elsif p_outcome = 'transient' and m.attempts < m.max_attempts then
    select w.retry_base_seconds into v_base from public.workspaces w where w.id = m.workspace_id;
    v_prev := herald.set_reason('retry_backoff');
    update public.messages
    set status = 'scheduled', lease_expires_at = null,
        send_at = now() + herald.retry_delay(m.attempts, v_base),
        last_error_code = p_error_code, last_error = p_error_message
    where id = m.id returning status into v_target;
  else
    v_prev := herald.set_reason(case when p_outcome = 'transient' then 'max_attempts' else 'provider_error_' || coalesce(p_error_code::text, 'unknown') end);
    update public.messages
    set status = 'failed', lease_expires_at = null, failed_at = now(),
        last_error_code = p_error_code, last_error = p_error_message
    where id = m.id returning status into v_target;
    if p_error_code = 21610 then
      -- Twilio says the recipient replied STOP to this sender: opt the contact out everywhere.
      perform set_config('herald.opt_out_reason', 'provider_unsubscribed', true);
      update public.contacts set opted_out_at = coalesce(opted_out_at, now())
      where workspace_id = m.workspace_id and id = m.contact_id;
      perform set_config('herald.opt_out_reason', '', true);
    end if;
  end if;
  perform herald.set_reason(v_prev);
  return v_target;
end;
$$;
comment on function herald.record_send_result(uuid, integer, text, text, text, integer, text) is 'Records the provider''s answer to one attempt: sent (then applies any status callback that arrived before it), permanent failure (21610 also opts the contact out), transient (backoff until max_attempts) or not_sent. For a message erased meanwhile, a returned sid goes to the provider-erasure outbox.';
revoke execute on function herald.record_send_result(uuid, integer, text, text, text, integer, text) from public, authenticated;
grant execute on function herald.record_send_result(uuid, integer, text, text, text, integer, text) to service_role;

/** Section - status callbacks for a sid being erased */
create or replace function herald.apply_provider_status(
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
  -- A message whose contact was hard-deleted: its record is being erased at the provider, and
  -- nothing of it (the callback carries the number) is stored here.
  if exists (select 1 from herald.provider_erasures e where e.provider_sid = p_sid) then
    return 'erased';
  end if;
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
comment on function herald.apply_provider_status(text, text, integer, jsonb, text) is 'Applies one Twilio status callback: stored as a provider event, and the attempt and message move forward by rank only, so duplicates and out-of-order callbacks change nothing. A sid being erased (hard delete) stores nothing.';
revoke execute on function herald.apply_provider_status(text, text, integer, jsonb, text) from public, authenticated;
grant execute on function herald.apply_provider_status(text, text, integer, jsonb, text) to service_role;
