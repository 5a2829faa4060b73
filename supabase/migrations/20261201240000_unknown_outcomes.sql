/**
 * Unknown outcomes: a send whose answer never came is looked up before anything is sent again.
 *
 * A provider call that timed out, or whose connection broke after the request could have been
 * written, was recorded as a transient failure: backoff, then a second call without asking
 * Twilio. Twilio had usually taken the first request, so with the provider stalled for 20 s each
 * message caught in the stall reached its recipient two or three times, one of them a contact
 * deleted in between whose record said it was never sent.
 *
 *   record_send_result  learns the outcome 'unknown'. The attempt is kept (it may be the one Twilio
 *                       has) with provider_status 'unknown'. The message stays in sending, which
 *                       nothing cancels, flagged provider_check_required, its send_at and lease moved
 *                       out by the workspace's retry delay (a stalled provider catches up meanwhile;
 *                       the ledger records the move with reason unknown_outcome). The reaper then
 *                       queues it and the dispatcher looks it up before any resend, exactly as after
 *                       a lost lease. No retry is spent blindly.
 *   record_lookup_miss  the look-up found nothing: the earlier attempts whose answer was lost are
 *                       marked not_found and the message may be sent again, unless it has had
 *                       max_attempts provider calls already, then it fails (max_attempts). No
 *                       message gets more calls than max_attempts, however many answers were lost.
 *
 * A look-up that finds the message further on than sent (delivered, undelivered, failed) moves the
 * message there too, not only its attempt row: the found status is applied by
 * herald.apply_status_event, the rank-only path status callbacks take.
 */

/** Section - the provider's answer, or its absence */
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
  v_until timestamptz;
begin
  if p_outcome is null or p_outcome not in ('sent', 'permanent', 'transient', 'not_sent', 'unknown') then
    raise exception 'invalid outcome %', coalesce(p_outcome, 'null') using errcode = '22023',
      hint = 'One of sent, permanent, transient, not_sent or unknown (no answer: Twilio may have it).';
  end if;
  perform set_config('herald.actor', 'dispatcher', true);
  if p_sid is not null then
    -- Twilio may call back before this answer is recorded (see apply_provider_status).
    perform pg_advisory_xact_lock(hashtextextended(p_sid, 0));
  end if;

  update public.message_attempts
  set provider_sid = coalesce(p_sid, provider_sid),
      provider_status = coalesce(lower(p_provider_status),
                                 case p_outcome when 'sent' then 'accepted' when 'unknown' then 'unknown' else 'error' end),
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
    -- A look-up can find the message further on than sent (delivered, undelivered…): the message
    -- goes there too, forward by rank only, as a callback would take it.
    if herald.message_rank(herald.from_provider_status(p_provider_status)) > herald.message_rank('sent') then
      perform set_config('herald.actor', 'dispatcher', true);
      perform herald.apply_status_event(p_sid, p_provider_status, p_error_code);
      select status into v_target from public.messages where id = m.id;
    end if;
    return v_target;
  end if;

  if m.status <> 'sending' or m.attempts <> p_attempt_no then
    return m.status; -- a stale answer for an attempt that no longer holds the message
  end if;

  if p_outcome = 'unknown' then
    -- No answer: Twilio may have it, so it is never sent again blind. It stays sending (nothing
    -- cancels a message that may be at the provider), flagged for the look-up; send_at and the
    -- lease move out by the retry delay, and the reaper then hands it to the look-up.
    select w.retry_base_seconds into v_base from public.workspaces w where w.id = m.workspace_id;
    v_prev := herald.set_reason('unknown_outcome');
    v_until := now() + herald.retry_delay(m.attempts, v_base);
    update public.messages
    set provider_check_required = true, send_at = v_until, lease_expires_at = v_until,
        last_error_code = p_error_code, last_error = p_error_message
    where id = m.id returning status into v_target;
  elsif p_outcome = 'not_sent' then
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
comment on function herald.record_send_result(uuid, integer, text, text, text, integer, text) is 'Records the provider''s answer to one attempt: sent (then applies any status callback that arrived before it, and a found status past sent), permanent failure (21610 also opts the contact out), transient (backoff until max_attempts), not_sent, or unknown (no answer: kept in sending, flagged for a provider look-up after the retry delay, never resent blind). For a message erased meanwhile, a returned sid goes to the provider-erasure outbox.';
revoke execute on function herald.record_send_result(uuid, integer, text, text, text, integer, text) from public, authenticated;
grant execute on function herald.record_send_result(uuid, integer, text, text, text, integer, text) to service_role;

/** Section - the look-up found nothing */
create function herald.record_lookup_miss(p_message_id uuid, p_attempt_no integer) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  m public.messages;
  v_calls integer;
  v_prev text;
begin
  perform set_config('herald.actor', 'dispatcher', true);
  select * into m from public.messages where id = p_message_id for update;
  if not found or m.status <> 'sending' or m.attempts <> p_attempt_no or not m.provider_check_required then
    return 'skip'; -- no longer this look-up's to decide
  end if;

  -- The earlier calls whose answer was lost never reached the provider.
  update public.message_attempts a
  set provider_status = 'not_found'
  where a.message_id = m.id and a.attempt_no < p_attempt_no and a.provider_sid is null
    and a.provider_status in ('unknown', 'requested');

  -- Calls that could have reached the provider: each attempt confirmed for sending.
  select count(*) into v_calls from public.message_attempts a
  where a.message_id = m.id and a.attempt_no < p_attempt_no and a.confirmed_at is not null;
  if v_calls >= m.max_attempts then
    -- Its budget is spent: failed, without another call. This look-up was no call: its attempt
    -- goes, as an attempt that sent nothing does.
    v_prev := herald.set_reason('max_attempts');
    update public.messages
    set status = 'failed', failed_at = now(), lease_expires_at = null, provider_check_required = false,
        attempts = attempts - 1,
        last_error = coalesce(last_error || '; ', '') || 'the provider never got it (looked up) and no attempts are left'
    where id = m.id;
    delete from public.message_attempts a where a.message_id = m.id and a.attempt_no = p_attempt_no;
    perform herald.set_reason(v_prev);
    return 'failed';
  end if;

  update public.messages set provider_check_required = false where id = m.id;
  return 'send';
end;
$$;
comment on function herald.record_lookup_miss(uuid, integer) is 'The provider look-up for a message whose earlier answers were lost found nothing: those attempts become not_found, and the message may be sent (send), or, its max_attempts provider calls spent, fails (failed); skip when it is no longer this attempt''s.';
revoke execute on function herald.record_lookup_miss(uuid, integer) from public, authenticated;
grant execute on function herald.record_lookup_miss(uuid, integer) to service_role;
