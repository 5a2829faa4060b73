/**
 * Twilio's error classes, applied where the provider's answers arrive. herald.provider_error_classes
 * said what Herald does with each error, but the dispatcher's answer and the status callbacks still
 * followed older rules of their own: a 429 spent an attempt, a 63038 (the account's daily limit)
 * was retried with backoff and failed after three tries instead of waiting for the next day, a
 * failed message read "provider reported undelivered with error 30003" instead of what a person
 * can do about it, and a 30001 reported by callback was never sent again. Now the class decides:
 *
 *   retry_free      back to queued; the attempt row stays, marked not spent (spent = false), so
 *                   max_attempts counts only the calls Twilio processed
 *   transient       retried with backoff until max_attempts spent attempts, then failed
 *   defer_next_day  back to scheduled at the first instant of the next local day (the workspace's
 *                   day) that the recipient's window allows; not spent; ledger reason
 *                   defer_next_day_<code>; cancelled expired if that passes its deadline
 *   permanent       failed at once, last_error = the class table's "what you can do"; 21610 also
 *                   opts the contact out and records a provider opt-out in consents
 *   unknown         no answer at all (provider_error_class(null, null)): kept in sending and looked
 *                   up at Twilio before any resend, as record_send_result 'unknown' always did
 *
 * The dispatcher passes Twilio's HTTP status and error code (record_send_result's new
 * p_http_status); its own guess (permanent / transient) is used only for a failure that got no
 * answer at all. A status callback's failure is applied by rank as before (duplicates and late
 * callbacks change nothing) with the class table's text; for a delivery-stage transient or
 * defer_next_day error (30001, 30008, 30023…) the message, which Twilio took and then failed, stays
 * failed as Twilio reported it (a sent message never goes back), and Herald sends it again as a
 * new message (retry_of) with backoff, or on the next day, within the attempts it has left.
 */

/** Section - attempts that are not spent */
alter table public.message_attempts add column spent boolean not null default true;
comment on column public.message_attempts.spent is 'Whether this call counts against the message''s max_attempts: false when Twilio never processed it (retry_free: 429 / 20429, rejected credentials) or a daily cap deferred the message (defer_next_day: 63038, 30023).';
comment on column public.messages.attempts is 'Provider calls made so far; each has a row in message_attempts. Calls Twilio never processed, or that a daily cap deferred, are not spent (message_attempts.spent) and do not count against max_attempts.';
comment on column public.messages.max_attempts is 'Spent provider attempts allowed before a transient error fails the message; copied from the workspace when scheduled.';

/** Section - what each class does, as the table tells it */
update herald.provider_error_classes
set action = 'Fails at once, opts the contact out everywhere and records a provider opt-out in consents.'
where code = 21610;
update herald.provider_error_classes
set action = 'Fails as Twilio reported it; Herald sends it again as a new message (retry_of) with backoff, within the attempts it has left.'
where stage = 'delivery' and class = 'transient';
update herald.provider_error_classes
set action = 'Fails as Twilio reported it; Herald sends it again as a new message (retry_of) on the next local day, no attempt spent.'
where stage = 'delivery' and class = 'defer_next_day';

/** Section - the lookup */
-- As before, plus two cases by HTTP status: 401 is rejected credentials (Twilio never processed
-- the request: retry_free, as its code 20003 is), and no answer at all (no code, no status) is
-- unknown: the request may have reached Twilio, so it is looked up, never called transient.
create or replace function herald.provider_error_class(p_code integer, p_http_status integer default null)
returns herald.provider_error_classes
language sql
stable
set search_path = ''
as $$
  select coalesce(
    (select e from herald.provider_error_classes e where e.code = p_code),
    case when p_code is null and p_http_status is null then
      row(null, 'No answer', 'api', 'unknown',
          'Kept in sending and looked up at Twilio before anything is sent again: the request may have reached it.',
          'Nothing to do for this message: Herald finds out whether Twilio has it. If it happens often, check the network between Herald and Twilio.',
          null)::herald.provider_error_classes
    else
      row(p_code, 'Unknown error',
          case when p_http_status is null then 'delivery' else 'api' end,
          case when p_http_status in (401, 429) then 'retry_free'
               when p_http_status >= 500 then 'transient'
               else 'permanent' end,
          case when p_http_status in (401, 429) then 'Sent again without spending an attempt.'
               when p_http_status >= 500 then 'Retried with backoff until max_attempts.'
               else 'Fails at once.' end,
          'See Twilio''s page for this error.',
          case when p_code is not null then 'https://www.twilio.com/docs/api/errors/' || p_code end
      )::herald.provider_error_classes
    end)
$$;
comment on function herald.provider_error_class(integer, integer) is 'How Herald treats a provider error: the row of herald.provider_error_classes for a known code (whatever its HTTP status), else one classed by HTTP status (401 and 429 retry_free; 5xx transient; other 4xx, or an unknown delivery error, permanent); no code and no status (no answer at all) is unknown.';

-- What failed_messages shows: the table's "what you can do" for a known code; for another code,
-- what Twilio said with a link to its page; with no code, what Twilio (or the transport) said.
create function herald.provider_error_text(p_code integer, p_provider_message text) returns text
language sql
stable
set search_path = ''
as $$
  select coalesce(
    (select e.message from herald.provider_error_classes e where e.code = p_code),
    case when p_code is not null then
      coalesce(nullif(btrim(p_provider_message), '') || ' ', '')
        || '(Twilio error ' || p_code || ': https://www.twilio.com/docs/api/errors/' || p_code || ')'
    end,
    p_provider_message)
$$;
comment on function herald.provider_error_text(integer, text) is 'The last_error of a message that got this provider error: the class table''s "what you can do" for a known code, else the provider''s message with the code''s Twilio page, else the message as given.';
revoke execute on function herald.provider_error_text(integer, text) from public;
grant execute on function herald.provider_error_text(integer, text) to service_role;

/** Section - the next day */
-- Where a defer_next_day error sends a message: the start of the next local day of the workspace
-- (as the daily limit counts days), spread over its first half hour like daily-limit deferrals,
-- then the first instant after it that the recipient's window allows (herald.send_rule), so the
-- message waits once, with one ledger event. Null when that instant is at or past its deadline.
create function herald.next_day_send_at(p_message public.messages) returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  c public.contacts;
  w public.workspaces;
  v_at timestamptz;
  r record;
begin
  select * into w from public.workspaces x where x.id = p_message.workspace_id;
  select * into c from public.contacts x where x.workspace_id = p_message.workspace_id and x.id = p_message.contact_id;
  v_at := herald.next_local_day(now(), w.timezone) + herald.spread(p_message.id, interval '30 minutes');
  select s.cancel_reason, s.defer_until into r from herald.send_rule(p_message, c, w, v_at, null) s;
  if r.cancel_reason = 'expired' then
    return null;
  end if;
  -- Any other reason not to send (an opt-out meanwhile…) is queueing's to apply, then.
  return coalesce(r.defer_until, v_at);
end;
$$;
comment on function herald.next_day_send_at(public.messages) is 'When a message deferred by a daily cap (defer_next_day) goes: the next local day of its workspace (spread over the first half hour), at the first instant the recipient''s window allows; null if that is at or past its deadline.';
-- Run only inside record_send_result and the callback path (security definer): granted to no role.
revoke execute on function herald.next_day_send_at(public.messages) from public;

/** Section - Twilio says the recipient unsubscribed */
-- 21610: the recipient replied STOP to this sender at Twilio. The contact is opted out everywhere
-- (the contacts triggers cancel what is pending and suppress the number, saying the provider
-- reported it) and the opt-out is recorded in consents with its proof.
create function herald.opt_out_by_provider(p_message public.messages, p_proof text) returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('herald.opt_out_reason', 'provider_unsubscribed', true);
  update public.contacts set opted_out_at = coalesce(opted_out_at, now())
  where workspace_id = p_message.workspace_id and id = p_message.contact_id;
  perform set_config('herald.opt_out_reason', '', true);
  if herald.latest_consent(p_message.contact_id, p_message.channel) is distinct from 'opted_out' then
    perform herald.record_consent_event(p_message.workspace_id, p_message.contact_id, p_message.channel,
                                        'opted_out', 'provider', p_proof);
  end if;
end;
$$;
comment on function herald.opt_out_by_provider(public.messages, text) is 'Twilio answered 21610 (unsubscribed) for this message: opts its contact out everywhere and records a provider opt-out on the message''s channel, with the proof.';
-- Run only inside record_send_result (security definer): granted to no role.
revoke execute on function herald.opt_out_by_provider(public.messages, text) from public;

/** Section - the provider's answer */
-- A new trailing parameter: the old signature goes, so a seven-argument call is not ambiguous.
drop function herald.record_send_result(uuid, integer, text, text, text, integer, text);
create function herald.record_send_result(
  p_message_id uuid,
  p_attempt_no integer,
  p_outcome text,
  p_sid text default null,
  p_provider_status text default null,
  p_error_code integer default null,
  p_error_message text default null,
  p_http_status integer default null
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
  v_class text;
  v_error text;
  v_spent integer;
begin
  if p_outcome is null or p_outcome not in ('sent', 'permanent', 'transient', 'not_sent', 'unknown') then
    raise exception 'invalid outcome %', coalesce(p_outcome, 'null') using errcode = '22023',
      hint = 'One of sent, permanent, transient, not_sent or unknown (no answer: Twilio may have it).';
  end if;
  if p_http_status is not null and p_http_status not between 100 and 599 then
    raise exception 'invalid HTTP status %', p_http_status using errcode = '22023',
      hint = 'Pass the status of Twilio''s answer (100–599), or null when there was none.';
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

  -- Twilio's answer is classed by its code and HTTP status (herald.provider_error_classes); the
  -- dispatcher's own permanent / transient stands only for a failure that got no answer (a
  -- connection never made, a request the client refused to build).
  v_class := case
    when p_outcome in ('permanent', 'transient') and (p_error_code is not null or p_http_status is not null)
      then (herald.provider_error_class(p_error_code, p_http_status)).class
    else p_outcome
  end;
  v_error := case when p_outcome in ('permanent', 'transient') then herald.provider_error_text(p_error_code, p_error_message)
                  else p_error_message end;

  if v_class = 'unknown' then
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
  elsif v_class in ('not_sent', 'retry_free') then
    select herald.contact_block_reason(c) into v_block
    from public.contacts c where c.workspace_id = m.workspace_id and c.id = m.contact_id;
    v_prev := herald.set_reason(case when v_class = 'not_sent' then coalesce('not_sent_' || p_error_code, 'not_sent')
                                     else 'retry_free_' || coalesce(p_error_code::text, 'http_' || p_http_status) end);
    -- Back to the queue, unless the contact may no longer be messaged: then it is cancelled
    -- here, since nothing else would ever pick a queued message of a blocked contact up.
    update public.messages
    set status = case when v_block is null then 'queued' else 'cancelled' end::public.message_status,
        cancel_reason = v_block, cancelled_at = case when v_block is not null then now() end,
        lease_expires_at = null, attempts = attempts - case when v_class = 'not_sent' then 1 else 0 end,
        last_error_code = p_error_code, last_error = v_error
    where id = m.id returning status into v_target;
    if v_class = 'not_sent' then
      -- Herald never called: the attempt goes (the ledger keeps the not_sent event), the next
      -- claim makes this attempt number again, and attempts stays the count of attempt rows.
      delete from public.message_attempts where message_id = m.id and attempt_no = p_attempt_no;
    else
      -- Twilio was called and never processed it: the row stays, as the call it was, not spent.
      update public.message_attempts set spent = false where message_id = m.id and attempt_no = p_attempt_no;
    end if;
  elsif v_class = 'defer_next_day' then
    update public.message_attempts set spent = false where message_id = m.id and attempt_no = p_attempt_no;
    v_until := herald.next_day_send_at(m);
    v_prev := herald.set_reason('defer_next_day_' || p_error_code);
    update public.messages
    set status = case when v_until is null then 'cancelled' else 'scheduled' end::public.message_status,
        cancel_reason = case when v_until is null then 'expired'::public.cancel_reason end,
        cancelled_at = case when v_until is null then now() end,
        send_at = coalesce(v_until, send_at), lease_expires_at = null,
        last_error_code = p_error_code, last_error = v_error
    where id = m.id returning status into v_target;
  else
    select count(*) into v_spent from public.message_attempts a where a.message_id = m.id and a.spent;
    if v_class = 'transient' and v_spent < m.max_attempts then
      select w.retry_base_seconds into v_base from public.workspaces w where w.id = m.workspace_id;
      v_prev := herald.set_reason('retry_backoff');
      update public.messages
      set status = 'scheduled', lease_expires_at = null,
          send_at = now() + herald.retry_delay(v_spent, v_base),
          last_error_code = p_error_code, last_error = v_error
      where id = m.id returning status into v_target;
    else
      v_prev := herald.set_reason(case when v_class = 'transient' then 'max_attempts'
                                       else 'provider_error_' || coalesce(p_error_code::text, 'unknown') end);
      update public.messages
      set status = 'failed', lease_expires_at = null, failed_at = now(),
          last_error_code = p_error_code, last_error = v_error
      where id = m.id returning status into v_target;
      if p_error_code = 21610 then
        perform herald.opt_out_by_provider(m, format('Twilio error 21610 answering message %s, attempt %s', m.id, p_attempt_no));
      end if;
    end if;
  end if;
  perform herald.set_reason(v_prev);
  return v_target;
end;
$$;
comment on function herald.record_send_result(uuid, integer, text, text, text, integer, text, integer) is 'Records the provider''s answer to one attempt: sent (then applies any status callback that arrived before it, and a found status past sent), or an error acted on by its class (herald.provider_error_class of the code and HTTP status): retry_free back to queued, not spent; transient backoff until max_attempts spent attempts; defer_next_day to the next local day''s window, not spent; permanent failed with the class table''s text (21610 also opts the contact out, with a consent record). not_sent (Herald did not call) and unknown (no answer: kept in sending, looked up before any resend) as before. For a message erased meanwhile, a returned sid goes to the provider-erasure outbox.';
revoke execute on function herald.record_send_result(uuid, integer, text, text, text, integer, text, integer) from public, authenticated;
grant execute on function herald.record_send_result(uuid, integer, text, text, text, integer, text, integer) to service_role;

/** Section - the look-up found nothing */
-- As before, but the calls that count are the spent ones: a 429 or a daily cap is no call
-- Twilio processed.
create or replace function herald.record_lookup_miss(p_message_id uuid, p_attempt_no integer) returns text
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

  -- Calls that could have reached the provider: each attempt confirmed for sending and spent.
  select count(*) into v_calls from public.message_attempts a
  where a.message_id = m.id and a.attempt_no < p_attempt_no and a.confirmed_at is not null and a.spent;
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
comment on function herald.record_lookup_miss(uuid, integer) is 'The provider look-up for a message whose earlier answers were lost found nothing: those attempts become not_found, and the message may be sent (send), or, its max_attempts spent provider calls made, fails (failed); skip when it is no longer this attempt''s.';

/** Section - sending again after a delivery-stage error */
-- Twilio took the message and then failed it with a transient or daily-cap error. The message
-- stays failed (a sent message never goes back); a new one (retry_of) carries it again, with
-- backoff or on the next day, within the attempts it has left. Once per message; none for a
-- contact who may no longer be messaged, or when the wait would pass the deadline. A failed
-- sequence step has stopped its enrollment, so its resend goes as a one-off naming its step, as
-- retry_message's does.
create function herald.resend_after_delivery_error(p_message_id uuid, p_class text, p_code integer) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  m public.messages;
  c public.contacts;
  v_left integer;
  v_spent integer;
  v_base integer;
  v_at timestamptz;
  v_id uuid;
  v_prev text;
begin
  if p_class is null or p_class not in ('transient', 'defer_next_day') then
    raise exception 'only transient and defer_next_day errors are sent again, not %', coalesce(p_class, 'null')
      using errcode = '22023';
  end if;
  select * into m from public.messages x where x.id = p_message_id;
  if not found or not m.status = any (herald.failed_statuses())
     or exists (select 1 from public.messages r where r.workspace_id = m.workspace_id and r.retry_of = m.id) then
    return null;
  end if;
  select * into c from public.contacts x where x.workspace_id = m.workspace_id and x.id = m.contact_id;
  if herald.contact_block_reason(c) is not null then
    return null;
  end if;
  select count(*) into v_spent from public.message_attempts a where a.message_id = m.id and a.spent;
  v_left := m.max_attempts - v_spent;
  if v_left < 1 then
    return null;
  end if;
  if p_class = 'transient' then
    select w.retry_base_seconds into v_base from public.workspaces w where w.id = m.workspace_id;
    v_at := now() + herald.retry_delay(v_spent, v_base);
  else
    v_at := herald.next_day_send_at(m);
  end if;
  if v_at is null or v_at >= m.expires_at then
    return null;
  end if;

  v_prev := herald.set_reason(case p_class when 'transient' then 'retry_backoff_' else 'defer_next_day_' end || p_code);
  insert into public.messages (workspace_id, contact_id, sender_id, channel, body, send_at, enrollment_id, step_id,
                               appointment_id, reminder_id, campaign_id, retry_of, max_attempts, category,
                               template_id, template_variables, expires_at)
  values (m.workspace_id, m.contact_id, m.sender_id, m.channel, m.body, v_at,
          (select e.id from public.sequence_enrollments e
           where e.workspace_id = m.workspace_id and e.id = m.enrollment_id and e.status = 'active'),
          m.step_id, m.appointment_id, m.reminder_id, m.campaign_id, m.id, v_left, m.category,
          m.template_id, m.template_variables, m.expires_at)
  returning id into v_id;
  perform herald.set_reason(v_prev);
  return v_id;
end;
$$;
comment on function herald.resend_after_delivery_error(uuid, text, integer) is 'A message Twilio failed by callback with a transient or defer_next_day error: a new message (retry_of) with its content, at backoff or on the next local day''s window, allowed the attempts the first had left. Null when there is nothing to do (already resent, contact blocked, no attempts left, past the deadline).';
-- Run only inside the callback path (apply_provider_status, record_send_result, record_status_check:
-- security definer): granted to no role.
revoke execute on function herald.resend_after_delivery_error(uuid, text, integer) from public;

/** Section - status callbacks */
-- As before (forward by rank only, so duplicates and late callbacks change nothing), with the
-- class acting on a failure that this callback applies: the table's text as last_error, and for a
-- transient or daily-cap error a resend (herald.resend_after_delivery_error); a daily cap spends
-- no attempt.
create or replace function herald.apply_status_event(
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
  v_class text;
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
        last_error = case when v_target = any (herald.failed_statuses())
                          then herald.provider_error_text(p_error_code, 'provider reported ' || lower(p_status))
                          else last_error end
    where id = m.id;
    perform herald.set_reason(v_prev);
    outcome := 'applied';
    if v_target = any (herald.failed_statuses()) and p_error_code is not null then
      v_class := (herald.provider_error_class(p_error_code, null)).class;
      if v_class = 'defer_next_day' and a.id is not null then
        update public.message_attempts x set spent = false where x.id = a.id;
      end if;
      if v_class in ('transient', 'defer_next_day') then
        perform herald.resend_after_delivery_error(m.id, v_class, p_error_code);
      end if;
    end if;
  else
    outcome := 'unchanged';
  end if;
  workspace_id := m.workspace_id;
  message_id := m.id;
end;
$$;
comment on function herald.apply_status_event(text, text, integer) is 'Applies one status callback to its attempt and message by rank; a failure it applies gets the class table''s text, and a transient or daily-cap one a resend (herald.resend_after_delivery_error). Returns the outcome and the message it applied to.';
