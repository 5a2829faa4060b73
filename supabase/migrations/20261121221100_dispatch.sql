/**
 * Dispatching: claiming queued messages under a lease, per-sender rate slots, recording what
 * the provider said, and reaping expired leases. One database function per step, so the dispatch
 * function stays thin and a rule cannot be skipped by calling the tables another way.
 *
 *   claim_messages      queued → sending, re-checking the contact in the same statement
 *   record_send_result  sending → sent | scheduled (transient, backoff) | failed (permanent)
 *   reap_expired_leases sending → queued with provider_check_required: look before resending
 *
 * What Twilio reports afterwards (status callbacks, inbound messages) is provider_webhooks.
 * record_send_result replays the status callbacks that arrived before it (kept in that
 * migration's provider_events); PL/pgSQL resolves those names when it first runs, so they may
 * be defined after this file.
 */

/** Section - message columns for dispatch */
alter table public.messages add column provider_check_required boolean not null default false;
comment on column public.messages.provider_check_required is 'Set when a lease expired with the provider''s answer unknown: the dispatcher looks the message up at Twilio before any resend.';

/** Section - per-sender rate slots */
create table herald.sender_slots (
  sender_id uuid primary key references public.senders (id) on delete cascade,
  next_slot_at timestamptz not null default now()
);
comment on table herald.sender_slots is 'The next free send slot of each sender. A claimer holds a sender''s row while it claims that sender''s messages and reserves their slots 1/mps apart, so a sender''s rate holds across any number of dispatchers.';
alter table herald.sender_slots enable row level security;

-- Every sender has its slot row from the start: claimers lock rows that exist (skip locked),
-- rather than racing to create them.
create function herald.senders_after_insert() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into herald.sender_slots (sender_id) select n.id from new_rows n on conflict (sender_id) do nothing;
  return null;
end;
$$;
create trigger senders_after_insert after insert on public.senders
referencing new table as new_rows for each statement execute function herald.senders_after_insert();
comment on trigger senders_after_insert on public.senders is 'New sender: gets its rate-slot row (herald.sender_slots), which claimers lock sender by sender.';
insert into herald.sender_slots (sender_id) select id from public.senders on conflict (sender_id) do nothing;

/** Section - ranks and error classes */
create function herald.message_rank(p_status public.message_status) returns integer
language sql
immutable
set search_path = ''
as $$
  select case p_status
    when 'scheduled' then 1 when 'queued' then 2 when 'sending' then 3 when 'sent' then 4
    when 'delivered' then 5 when 'read' then 6 when 'undelivered' then 7 when 'failed' then 7
    when 'cancelled' then 8 end
$$;

-- Twilio's message statuses onto Herald's; the ones that say nothing new map to null.
create function herald.from_provider_status(p_status text) returns public.message_status
language sql
immutable
set search_path = ''
as $$
  select case lower(p_status)
    when 'sent' then 'sent' when 'delivered' then 'delivered' when 'read' then 'read'
    when 'undelivered' then 'undelivered' when 'failed' then 'failed' when 'canceled' then 'failed'
  end::public.message_status
$$;

/** Section - claiming */
create function herald.claim_messages(p_limit integer default 100, p_lease interval default '2 minutes')
returns table (
  message_id uuid,
  workspace_id uuid,
  attempt_no integer,
  to_phone text,
  from_phone text,
  body text,
  channel public.channel,
  send_not_before timestamptz,
  provider_check_required boolean,
  previous_attempt_requested_at timestamptz,
  blocked_reason public.cancel_reason
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[] := '{}';
  v_batch uuid[];
  v_blocked uuid[];
  v_free timestamptz;
  v_room integer;
  s record;
begin
  if p_limit is null or p_limit < 1 or p_limit > 5000 then
    raise exception 'limit must be between 1 and 5000' using errcode = '22023';
  end if;
  if p_lease is null or p_lease < interval '10 seconds' then
    raise exception 'lease must be at least 10 seconds' using errcode = '22023';
  end if;
  perform set_config('herald.actor', 'dispatcher', true);

  -- Claimers share the work sender by sender, as graphile-worker's named queues do: a claimer
  -- takes the senders whose oldest due message is oldest, skipping any sender another claimer
  -- holds, and holds that sender's slot row while it claims the sender's messages. Claims of
  -- different senders run side by side; a sender's mps holds across any number of dispatchers.
  for s in
    select se.id, se.mps
    from public.senders se
    join public.workspaces w on w.id = se.workspace_id
    cross join lateral (
      select min(m.send_at) as oldest from public.messages m
      where m.sender_id = se.id and m.status = 'queued' and m.send_at <= now()
    ) due
    where w.automation_enabled and se.phone_number is not null and due.oldest is not null
    order by due.oldest
  loop
    select greatest(sl.next_slot_at, now()) into v_free
    from herald.sender_slots sl where sl.sender_id = s.id
    for update skip locked;
    continue when not found;
    -- Only what this sender can send within half the lease; the rest stays queued for later.
    v_room := least(p_limit - cardinality(v_ids),
                    floor(extract(epoch from (now() + p_lease / 2 - v_free)) * s.mps)::integer + 1);
    continue when v_room < 1;
    select array_agg(m.id) into v_batch
    from (
      select m.id from public.messages m
      where m.sender_id = s.id and m.status = 'queued' and m.send_at <= now()
      order by m.send_at
      limit v_room
      for update of m skip locked
    ) m;
    v_ids := v_ids || coalesce(v_batch, '{}');
    exit when cardinality(v_ids) >= p_limit;
  end loop;
  if cardinality(v_ids) = 0 then
    return;
  end if;

  -- Eligibility is re-checked for the locked rows, in the claiming transaction: a contact
  -- deleted, opted out or taken over has had its messages cancelled in that same transaction,
  -- so a row still queued under our lock belongs to a contact Herald may message. Should one
  -- not, it is cancelled here with the reason, never sent. A message back from a lost lease is
  -- claimed whatever its contact's state: the dispatcher must first ask Twilio whether it went
  -- out, and otherwise it is cancelled, not sent. (Looked for first: an update of no rows would
  -- still fire the ledger's statement triggers.)
  select array_agg(m.id) into v_blocked
  from public.messages m
  join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
  where m.id = any (v_ids) and not m.provider_check_required and herald.contact_block_reason(c) is not null;
  if v_blocked is not null then
    update public.messages m
    set status = 'cancelled', cancel_reason = herald.contact_block_reason(c), cancelled_at = now()
    from public.contacts c
    where m.id = any (v_blocked) and c.workspace_id = m.workspace_id and c.id = m.contact_id;
    v_ids := array(select i from unnest(v_ids) i where i <> all (v_blocked));
    if cardinality(v_ids) = 0 then
      return;
    end if;
  end if;

  -- Slots 1/mps apart from each sender's next free one (its row is locked by this claim).
  return query
  with slotted as (
    select m.id, m.sender_id, se.mps, se.phone_number,
           greatest(sl.next_slot_at, now())
             + make_interval(secs => (row_number() over (partition by m.sender_id order by m.send_at, m.id) - 1) / se.mps) as slot
    from public.messages m
    join public.senders se on se.id = m.sender_id
    join herald.sender_slots sl on sl.sender_id = m.sender_id
    where m.id = any (v_ids)
  ), reserved as (
    update herald.sender_slots sl
    set next_slot_at = t.last_slot + make_interval(secs => 1 / t.mps)
    from (select sl2.sender_id, max(sl2.slot) as last_slot, max(sl2.mps) as mps from slotted sl2 group by sl2.sender_id) t
    where sl.sender_id = t.sender_id
    returning 1
  ), claimed as (
    update public.messages m
    set status = 'sending', lease_expires_at = now() + p_lease, attempts = m.attempts + 1
    from slotted t
    where m.id = t.id
    returning m.id, m.workspace_id, m.contact_id, m.attempts, m.body, m.channel, m.provider_check_required,
              t.slot, t.phone_number
  ), attempts as (
    insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_status)
    select cl.workspace_id, cl.id, cl.attempts, 'requested' from claimed cl
    returning 1
  )
  select cl.id, cl.workspace_id, cl.attempts, c.phone, cl.phone_number, cl.body, cl.channel, cl.slot,
         cl.provider_check_required,
         (select a.requested_at from public.message_attempts a
          where a.workspace_id = cl.workspace_id and a.message_id = cl.id and a.attempt_no = cl.attempts - 1),
         herald.contact_block_reason(c)
  from claimed cl
  join public.contacts c on c.workspace_id = cl.workspace_id and c.id = cl.contact_id
  order by cl.slot;
end;
$$;
comment on function herald.claim_messages(integer, interval) is 'Claims due queued messages for sending (for update skip locked) with one attempt row each and the time each may go out, so every sender''s mps holds across dispatchers.';
revoke execute on function herald.claim_messages(integer, interval) from public, authenticated;
grant execute on function herald.claim_messages(integer, interval) to service_role;

/** Section - recording the provider's answer */
create function herald.retry_delay(p_attempts integer, p_base_seconds integer) returns interval
language sql
volatile
set search_path = ''
as $$
  -- Exponential backoff with jitter (×0.5–1.5), capped at a day.
  select least(make_interval(secs => p_base_seconds * power(2, greatest(p_attempts - 1, 0)) * (0.5 + random())),
               interval '1 day')
$$;

-- p_outcome: 'sent' (provider accepted; p_sid set), 'permanent' (fails now), 'transient'
-- (retried with backoff until max_attempts), or 'not_sent' (Herald's own problem, such as
-- rejected credentials: back to queued without spending the attempt).
create function herald.record_send_result(
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
    return null; -- erased meanwhile (hard delete): nothing left to record
  end if;

  if p_outcome = 'sent' then
    if m.status = any (herald.pending_statuses()) then
      -- Our lease was reaped while Twilio accepted the message: it is sent all the same.
      v_prev := herald.set_reason('late_provider_answer');
      update public.messages set status = 'sending', lease_expires_at = now() where id = m.id and status = 'queued';
      perform herald.set_reason(v_prev);
    end if;
    update public.messages
    set status = case when herald.message_rank(status) < herald.message_rank('sent') then 'sent' else status end,
        provider_sid = coalesce(provider_sid, p_sid), sent_at = coalesce(sent_at, now()),
        lease_expires_at = null, provider_check_required = false, last_error_code = null, last_error = null
    where id = m.id and status = any (herald.in_flight_statuses() || herald.sent_statuses())
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
comment on function herald.record_send_result(uuid, integer, text, text, text, integer, text) is 'Records the provider''s answer to one attempt: sent (then applies any status callback that arrived before it), permanent failure (21610 also opts the contact out), transient (backoff until max_attempts) or not_sent.';
revoke execute on function herald.record_send_result(uuid, integer, text, text, text, integer, text) from public, authenticated;
grant execute on function herald.record_send_result(uuid, integer, text, text, text, integer, text) to service_role;

/** Section - leases */
create function herald.reap_expired_leases() returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_prev text := herald.set_reason('lease_expired');
begin
  perform set_config('herald.actor', coalesce(nullif(current_setting('herald.actor', true), ''), 'cron'), true);
  -- Whether Twilio got the message is unknown: queue it again, but flagged so the dispatcher
  -- looks it up at Twilio before sending anything (never lost, never sent twice).
  with reaped as (
    update public.messages m
    set status = 'queued', lease_expires_at = null, provider_check_required = true
    where m.id in (select id from public.messages where status = 'sending' and lease_expires_at < now()
                   for update skip locked)
    returning 1
  ) select count(*) into v_count from reaped;
  perform herald.set_reason(v_prev);
  return v_count;
end;
$$;
comment on function herald.reap_expired_leases() is 'pg_cron, every minute: messages whose dispatcher lease expired go back to queued, flagged for a provider look-up before any resend.';
revoke execute on function herald.reap_expired_leases() from public, authenticated;
grant execute on function herald.reap_expired_leases() to service_role;

select cron.schedule('herald-reap-expired-leases', '* * * * *', $$select herald.reap_expired_leases()$$);
