/**
 * Dispatching: claiming queued messages under a lease, per-sender rate slots, recording what
 * the provider said, reaping expired leases, and applying Twilio's status callbacks and
 * inbound messages. One database function per step, so the dispatch and webhook functions stay
 * thin and a rule cannot be skipped by calling the tables another way.
 *
 *   claim_messages      queued → sending, re-checking the contact in the same statement
 *   record_send_result  sending → sent | scheduled (transient, backoff) | failed (permanent)
 *   reap_expired_leases sending → queued with provider_check_required: look before resending
 *   apply_provider_status  moves the attempt and the message forward by rank only
 *   apply_inbound       STOP / START keywords, last_inbound_at, stop_on_reply
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
comment on function herald.record_send_result(uuid, integer, text, text, text, integer, text) is 'Records the provider''s answer to one attempt: sent (then applies any status callback that arrived before it), permanent failure (21610 also opts the contact out), transient (backoff until max_attempts) or not_sent.';

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

select cron.schedule('herald-reap-expired-leases', '* * * * *', $$select herald.reap_expired_leases()$$);

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
        delivered_at = case when v_target in ('delivered', 'read') then coalesce(delivered_at, now()) else delivered_at end,
        failed_at = case when v_target in ('failed', 'undelivered') then now() else failed_at end,
        last_error_code = case when v_target in ('failed', 'undelivered') then p_error_code else last_error_code end,
        last_error = case when v_target in ('failed', 'undelivered') then 'provider reported ' || lower(p_status)
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
        and m.workspace_id = e.workspace_id and m.enrollment_id = e.id and m.status in ('scheduled', 'queued');
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

revoke execute on function herald.apply_status_event(text, text, integer) from public, authenticated;
revoke execute on function herald.claim_messages(integer, interval), herald.record_send_result(uuid, integer, text, text, text, integer, text),
  herald.reap_expired_leases(), herald.apply_provider_status(text, text, integer, jsonb, text),
  herald.apply_inbound(text, text, text, text, jsonb, text), herald.queue_due_messages(integer, timestamptz) from public, authenticated;
grant execute on function herald.claim_messages(integer, interval), herald.record_send_result(uuid, integer, text, text, text, integer, text),
  herald.reap_expired_leases(), herald.apply_provider_status(text, text, integer, jsonb, text),
  herald.apply_inbound(text, text, text, text, jsonb, text), herald.queue_due_messages(integer, timestamptz) to service_role;
