/**
 * The send path carries what Twilio needs to send as Twilio works. The database side (content
 * templates and the 24-hour window, segments, send-by deadlines) is in place; here the claim,
 * the confirmation before the call, the sequence engine and retries use it:
 *
 *   claim_messages     returns, besides the text, what the provider call carries: content_sid
 *                      and content_variables when the message goes as its template (WhatsApp
 *                      outside the 24-hour window: no Body then), and validity_period, the
 *                      seconds from its slot to expires_at (Twilio's ValidityPeriod). A message
 *                      that needs a template and has none fails in the claim, before any call,
 *                      with a last_error that says so (ledger reason template_required).
 *   segment pacing     a sender at mps N sends N segments a second across all dispatchers: a
 *                      message of k segments holds its sender's next slot k/mps seconds (a
 *                      WhatsApp message counts one, whatever its length), and a claim takes only
 *                      as many messages as start within half its lease at that rate. Before, a
 *                      sender at 1 mps sending 3-segment texts ran at 3 segments a second.
 *   confirm_send       also refuses, right before the call, a message whose window closed while
 *                      it waited and that has no template (and one back from a lost lease).
 *   sequence steps     a step's template goes with its message (template_id, and the variables
 *                      rendered for the contact when the step message is made), in enroll_contact,
 *                      in prepare_queue and when a sent step schedules the next.
 *   retry_message      keeps the template, its variables, the deadline and the category; a retry
 *                      whose deadline has passed is refused (55000), not scheduled to expire.
 *
 * The claim's return type changes, so it is dropped and created again.
 */

/** Section - claiming, paced in segments, with what the provider call carries */
drop function herald.claim_messages(integer, interval, interval);

create function herald.claim_messages(
  p_limit integer default 100,
  p_lease interval default '2 minutes',
  p_call_timeout interval default '15 seconds'
)
returns table (
  message_id uuid,
  workspace_id uuid,
  attempt_no integer,
  to_phone text,
  from_phone text,
  body text,
  content_sid text,
  content_variables jsonb,
  validity_period integer,
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
  v_skip uuid[];
  v_errors text[];
  v_senders uuid[] := '{}';
  v_caps integer[] := '{}';
  v_takes integer[] := '{}';
  v_left integer := p_limit;
  v_open integer;
  v_step integer;
  v_take integer;
  v_free timestamptz;
  v_prev text;
  s record;
begin
  if p_limit is null or p_limit < 1 or p_limit > 5000 then
    raise exception 'limit must be between 1 and 5000' using errcode = '22023';
  end if;
  if p_lease is null or p_lease < interval '10 seconds' then
    raise exception 'lease must be at least 10 seconds' using errcode = '22023';
  end if;
  if p_call_timeout is null or p_call_timeout < interval '0' then
    raise exception 'the provider call timeout must not be negative' using errcode = '22023';
  end if;
  perform set_config('herald.actor', 'dispatcher', true);

  -- 1. The senders to claim from, interleaved across workspaces, each held (its slot row locked,
  -- skipping any another claimer holds) with what it can take: its due messages, and no more than
  -- start within half the lease at its rate, in segments (`starts`: the segments ahead of each
  -- due message, oldest first; a WhatsApp message is one). Each workspace's first sender, then
  -- more until the batch can be filled.
  for s in
    select se.id, se.mps, due.n, due.starts,
           row_number() over (partition by se.workspace_id order by due.oldest) as ws_rank
    from public.senders se
    join public.workspaces w on w.id = se.workspace_id
    cross join lateral (
      select count(*)::integer as n, min(d.send_at) as oldest, array_agg(d.ahead order by d.send_at) as starts from (
        select m.send_at,
               coalesce(sum(case when m.channel = 'whatsapp' then 1 else m.segments end)
                          over (order by m.send_at rows between unbounded preceding and 1 preceding), 0) as ahead
        from public.messages m
        where m.sender_id = se.id and m.status = 'queued' and m.send_at <= now()
        order by m.send_at limit p_limit
      ) d
    ) due
    where w.automation_enabled and se.phone_number is not null and due.n > 0
    order by row_number() over (partition by se.workspace_id order by due.oldest), due.oldest
  loop
    -- Every workspace's first sender is taken; past those, no more senders than the batch needs,
    -- so other claimers find senders free and claim side by side.
    exit when cardinality(v_senders) >= p_limit
      or (s.ws_rank > 1 and (select coalesce(sum(c), 0) from unnest(v_caps) c) >= p_limit);
    select greatest(sl.next_slot_at, now()) into v_free
    from herald.sender_slots sl where sl.sender_id = s.id
    for update skip locked;
    continue when not found;
    v_take := (select count(*) from unnest(s.starts) a
               where a <= floor(extract(epoch from (now() + p_lease / 2 - v_free)) * s.mps))::integer;
    continue when v_take < 1;
    v_senders := v_senders || s.id;
    v_caps := v_caps || v_take;
    v_takes := v_takes || 0;
  end loop;

  -- 2. The batch shared round by round: each round gives every sender that can take more an
  -- equal part of what is left (at least one), in the interleaved order.
  loop
    v_open := (select count(*) from generate_subscripts(v_senders, 1) i where v_takes[i] < v_caps[i]);
    exit when v_open = 0 or v_left = 0;
    v_step := greatest(1, v_left / v_open);
    for i in 1 .. cardinality(v_senders) loop
      exit when v_left = 0;
      v_take := least(v_step, v_caps[i] - v_takes[i], v_left);
      if v_take > 0 then
        v_takes[i] := v_takes[i] + v_take;
        v_left := v_left - v_take;
      end if;
    end loop;
  end loop;

  for i in 1 .. coalesce(cardinality(v_senders), 0) loop
    continue when v_takes[i] = 0;
    select array_agg(m.id) into v_batch
    from (
      select m.id from public.messages m
      where m.sender_id = v_senders[i] and m.status = 'queued' and m.send_at <= now()
      order by m.send_at
      limit v_takes[i]
      for update of m skip locked
    ) m;
    v_ids := v_ids || coalesce(v_batch, '{}');
  end loop;
  if cardinality(v_ids) = 0 then
    return;
  end if;

  -- 3. Eligibility, re-checked for the locked rows in the claiming transaction: a blocked
  -- contact's message is cancelled with the reason. A message back from a lost lease is claimed
  -- whatever its contact's state: the dispatcher asks the provider first, and confirm_send
  -- cancels it if it was never sent.
  select array_agg(m.id) into v_skip
  from public.messages m
  join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
  where m.id = any (v_ids) and not m.provider_check_required and herald.contact_block_reason(c) is not null;
  if v_skip is not null then
    update public.messages m
    set status = 'cancelled', cancel_reason = herald.contact_block_reason(c), cancelled_at = now()
    from public.contacts c
    where m.id = any (v_skip) and c.workspace_id = m.workspace_id and c.id = m.contact_id;
    v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
  end if;

  -- 4. The send window (herald.apply_send_rules: legal and workspace hours in every zone the
  -- recipient may be in, consent, the deadline; the per-contact cap was applied at queueing and
  -- counts queued messages).
  select array_agg(r.message_id) into v_skip
  from herald.apply_send_rules(array(select m.id from public.messages m
                                     where m.id = any (v_ids) and not m.provider_check_required), now(), false) r
  where r.outcome <> 'send';
  if v_skip is not null then
    v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
  end if;

  -- 5. What cannot be sent at all fails here, before any provider call and before it takes room
  -- under the daily limit: WhatsApp outside the contact's 24-hour window without a template
  -- (herald.outbound_content). A message back from a lost lease may be at Twilio already: the
  -- dispatcher looks it up first, and confirm_send refuses it if it was never sent.
  -- Only WhatsApp has a window (outbound_content refuses nothing else): SMS skips the look.
  select array_agg(m.id), array_agg(o.refusal_message) into v_skip, v_errors
  from public.messages m
  join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
  cross join lateral herald.outbound_content(m, c, now()) o
  where m.id = any (v_ids) and m.channel = 'whatsapp' and not m.provider_check_required and o.refusal is not null;
  if v_skip is not null then
    v_prev := herald.set_reason('template_required');
    update public.messages m
    set status = 'failed', failed_at = now(), last_error = x.error
    from unnest(v_skip, v_errors) x(id, error)
    where m.id = x.id;
    perform herald.set_reason(v_prev);
    v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
  end if;

  -- 6. The daily limit of each workspace that has one.
  if exists (select 1 from public.workspaces w
             where w.daily_limit is not null and w.id in (select m.workspace_id from public.messages m where m.id = any (v_ids))) then
    v_prev := herald.set_reason('daily_limit');
    with ws as (
      select w.id, w.daily_limit, w.timezone, herald.local_day_start(now(), w.timezone) as day_start
      from public.workspaces w
      where w.daily_limit is not null and w.id in (select m.workspace_id from public.messages m where m.id = any (v_ids))
    ), ranked as (
      select m.id, ws.daily_limit - herald.day_use(ws.id, ws.day_start) as room, ws.timezone, ws.day_start,
             row_number() over (partition by m.workspace_id order by m.send_at, m.id) as n
      from public.messages m join ws on ws.id = m.workspace_id
      where m.id = any (v_ids)
    ), deferred as (
      update public.messages m
      set status = 'scheduled',
          send_at = ((r.day_start at time zone r.timezone) + interval '1 day') at time zone r.timezone
                    + herald.spread(m.id, interval '30 minutes')
      from ranked r where m.id = r.id and r.n > greatest(r.room, 0)
      returning m.id
    ) select array_agg(d.id) into v_skip from deferred d;
    perform herald.set_reason(v_prev);
    if v_skip is not null then
      v_ids := array(select i from unnest(v_ids) i where i <> all (v_skip));
    end if;
  end if;
  if cardinality(v_ids) = 0 then
    return;
  end if;

  -- 7. Slots from each sender's next free one (its row is locked by this claim), each message
  -- after the segments ahead of it at the sender's rate, and the sender's next free slot after
  -- the last one's segments; a lease that covers the slot and the provider call. What the call
  -- carries is decided for the message as it is now (herald.outbound_content), with the seconds
  -- its deadline leaves at its slot.
  return query
  with slotted as (
    select m.id, m.sender_id, se.mps, se.phone_number, x.base,
           x.base + make_interval(secs => coalesce(sum(x.units) over w_before, 0) / se.mps) as slot,
           x.base + make_interval(secs => sum(x.units) over w_through / se.mps) as slot_end
    from public.messages m
    join public.senders se on se.id = m.sender_id
    join herald.sender_slots sl on sl.sender_id = m.sender_id
    cross join lateral (select greatest(sl.next_slot_at, now()) as base,
                               case when m.channel = 'whatsapp' then 1 else m.segments end as units) x
    where m.id = any (v_ids)
    window w_before as (partition by m.sender_id order by m.send_at, m.id rows between unbounded preceding and 1 preceding),
           w_through as (partition by m.sender_id order by m.send_at, m.id rows unbounded preceding)
  ), reserved as (
    update herald.sender_slots sl
    set next_slot_at = t.next_free
    from (select sl2.sender_id, max(sl2.slot_end) as next_free from slotted sl2 group by sl2.sender_id) t
    where sl.sender_id = t.sender_id
    returning 1
  ), claimed as (
    update public.messages m
    set status = 'sending', lease_expires_at = greatest(now() + p_lease, t.slot + p_call_timeout), attempts = m.attempts + 1
    from slotted t
    where m.id = t.id
    returning m.id, m.workspace_id, m.contact_id, m.attempts, m.body, m.channel, m.provider_check_required,
              m.expires_at, t.slot, t.phone_number
  ), attempts as (
    insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_status)
    select cl.workspace_id, cl.id, cl.attempts, 'requested' from claimed cl
    returning 1
  )
  select cl.id, cl.workspace_id, cl.attempts, c.phone, cl.phone_number, cl.body,
         o.content_sid, o.content_variables, herald.validity_period_seconds(cl.expires_at, cl.slot),
         cl.channel, cl.slot, cl.provider_check_required,
         (select a.requested_at from public.message_attempts a
          where a.workspace_id = cl.workspace_id and a.message_id = cl.id and a.attempt_no = cl.attempts - 1),
         herald.contact_block_reason(c)
  from claimed cl
  join public.contacts c on c.workspace_id = cl.workspace_id and c.id = cl.contact_id
  -- The message as it was before this statement's update: what it carries has not changed. SMS
  -- always goes as its body, so only WhatsApp asks.
  left join lateral (
    select x.content_sid, x.content_variables
    from public.messages m cross join lateral herald.outbound_content(m, c, now()) x
    where cl.channel = 'whatsapp' and m.id = cl.id
  ) o on true
  order by cl.slot;
end;
$$;
comment on function herald.claim_messages(integer, interval, interval) is 'Claims due queued messages for sending (for update skip locked), shared fairly across workspaces and their senders: deferring what falls outside the send window or over a daily limit, failing WhatsApp outside the 24-hour window that has no template (template_required), with one attempt row each, the time each may go out (every sender''s mps holds in segments across dispatchers; a WhatsApp message counts one), a lease covering that slot plus the provider call, and what the call carries: body (the text), content_sid and content_variables when it goes as its template (then without Body), validity_period in seconds when it has a deadline.';
revoke execute on function herald.claim_messages(integer, interval, interval) from public, authenticated;
grant execute on function herald.claim_messages(integer, interval, interval) to service_role;

comment on table herald.sender_slots is 'The next free send slot of each sender. A claimer holds a sender''s row while it claims that sender''s messages and reserves their slots at its mps counted in segments (a WhatsApp message counts one), so a sender''s rate holds across any number of dispatchers.';

/** Section - the confirmation before the provider call */
create or replace function herald.confirm_send(
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
  v_rule record;
  v_refusal record;
  v_day timestamptz;
  v_prev text;
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
      select r.cancel_reason, r.defer_reason, r.defer_until into v_rule
      from herald.send_rule(m, c, w, now(), null) r;
      v_block := v_rule.cancel_reason;
      select o.refusal, o.refusal_message into v_refusal from herald.outbound_content(m, c, now()) o;
      if v_block is not null then
        update public.messages
        set status = 'cancelled', cancel_reason = v_block, cancelled_at = now(), lease_expires_at = null,
            attempts = attempts - 1
        where id = m.id;
        delete from public.message_attempts a where a.message_id = m.id and a.attempt_no = m.attempts;
        verdict := 'cancelled';
        reason := v_block::text;
      elsif v_rule.defer_reason is not null then
        perform herald.defer_sending(m.id, m.attempts, v_rule.defer_until, v_rule.defer_reason);
        verdict := 'deferred';
        reason := v_rule.defer_reason;
      elsif v_refusal.refusal is not null then
        -- Nothing went to the provider: no attempt spent, and the reason is the message's error.
        v_prev := herald.set_reason(v_refusal.refusal);
        update public.messages
        set status = 'failed', failed_at = now(), last_error = v_refusal.refusal_message, lease_expires_at = null,
            attempts = attempts - 1
        where id = m.id;
        perform herald.set_reason(v_prev);
        delete from public.message_attempts a where a.message_id = m.id and a.attempt_no = m.attempts;
        verdict := 'failed';
        reason := v_refusal.refusal;
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
comment on function herald.confirm_send(uuid[], integer[], interval) is 'Right before each provider call: send (lease stretched over the call, attempt marked confirmed), skip (gone, not this attempt''s, lease expired), cancelled (the contact may no longer be messaged, or the deadline passed), deferred (quiet hours, daily limit) or failed (template_required: WhatsApp outside the 24-hour window without a template; no attempt spent), per message.';
revoke execute on function herald.confirm_send(uuid[], integer[], interval) from public, authenticated;
grant execute on function herald.confirm_send(uuid[], integer[], interval) to service_role;

/** Section - sequence steps carry their template */
-- As before (…_sequence_engine.sql), with the step's template and its variables rendered for
-- the contact now, as schedule_message renders them.
create or replace function herald.enroll(p_seq public.sequences, p_contact_id uuid, p_start timestamptz) returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_step public.sequence_steps;
  v_id uuid;
begin
  if p_seq.status <> 'active' then
    raise exception 'sequence % is %', p_seq.id, p_seq.status using errcode = '55000',
      hint = 'Only active sequences take enrollments.';
  end if;
  select * into v_step from public.sequence_steps s
  where s.workspace_id = p_seq.workspace_id and s.sequence_id = p_seq.id order by s.position limit 1;
  if not found then
    raise exception 'sequence % has no steps', p_seq.id using errcode = '55000';
  end if;

  insert into public.sequence_enrollments (workspace_id, sequence_id, contact_id, current_position)
  values (p_seq.workspace_id, p_seq.id, p_contact_id, v_step.position)
  on conflict (sequence_id, contact_id) where status = 'active' do nothing
  returning id into v_id;
  if v_id is null then
    select e.id into v_id from public.sequence_enrollments e
    where e.sequence_id = p_seq.id and e.contact_id = p_contact_id and e.status = 'active';
    return v_id;
  end if;

  insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id, max_attempts,
                               template_id, template_variables)
  select p_seq.workspace_id, p_contact_id, v_step.channel,
         herald.render_template(v_step.body, p_seq.workspace_id, p_contact_id),
         p_start + v_step.delay, v_id, v_step.id, w.max_attempts,
         v_step.template_id,
         case when v_step.template_id is not null then herald.render_template_variables(v_step.template_id, p_contact_id) end
  from public.workspaces w where w.id = p_seq.workspace_id;
  return v_id;
end;
$$;
comment on function herald.enroll(public.sequences, uuid, timestamptz) is 'Enrolls one contact in an active sequence and schedules its first step at p_start + the step''s delay, with the step''s template and its variables rendered for the contact; returns the active enrollment if there is one already.';

create or replace function herald.advance_enrollments() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_relevant boolean;
  v_stopped_workspaces uuid[];
  v_stopped uuid[];
begin
  -- Most updates of messages (claims, leases, callbacks before sent) move no enrollment: one
  -- pass over the new rows tells, before planning the statements below.
  execute $sql$
    select coalesce(bool_or(n.enrollment_id is not null and n.retry_of is null
                            and n.status = any (herald.final_statuses())), false)
    from new_rows n
  $sql$ into v_relevant;
  if not v_relevant then
    return null;
  end if;

  -- Through EXECUTE: statements over transition tables planned for this firing's rows.
  execute $sql$
  with done as (
    select n.workspace_id, n.enrollment_id, n.step_id, coalesce(n.sent_at, now()) as sent_at
    from old_rows o join new_rows n on n.id = o.id
    where n.enrollment_id is not null and n.step_id is not null and n.retry_of is null
      and not o.status = any (herald.sent_statuses()) and n.status = any (herald.sent_statuses())
  ), cur as (
    select d.*, e.sequence_id, e.contact_id, s.position
    from done d
    join public.sequence_enrollments e on e.workspace_id = d.workspace_id and e.id = d.enrollment_id and e.status = 'active'
    join public.sequence_steps s on s.workspace_id = d.workspace_id and s.id = d.step_id
  ), nxt as (
    select c.*, ns.id as next_step_id, ns.position as next_position, ns.delay, ns.body, ns.channel, ns.template_id
    from cur c
    left join lateral (
      select x.* from public.sequence_steps x
      where x.workspace_id = c.workspace_id and x.sequence_id = c.sequence_id and x.position > c.position
      order by x.position limit 1
    ) ns on true
  ), rendered as (
    -- One render per distinct step template, for all the contacts that reached it.
    select g.workspace_id, g.body as template, r.contact_id, r.body
    from (select n.workspace_id, n.body, array_agg(n.contact_id) as contact_ids
          from nxt n where n.next_step_id is not null group by n.workspace_id, n.body) g
    cross join lateral herald.render_bodies(g.workspace_id, g.body, g.contact_ids) r
  ), scheduled as (
    insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id, max_attempts,
                                 template_id, template_variables)
    select n.workspace_id, n.contact_id, n.channel, r.body,
           n.sent_at + n.delay, n.enrollment_id, n.next_step_id, w.max_attempts,
           n.template_id,
           case when n.template_id is not null then herald.render_template_variables(n.template_id, n.contact_id) end
    from nxt n
    join rendered r on r.workspace_id = n.workspace_id and r.template = n.body and r.contact_id = n.contact_id
    join public.workspaces w on w.id = n.workspace_id
    where n.next_step_id is not null
    on conflict do nothing
    returning 1
  )
  update public.sequence_enrollments e
  set current_position = coalesce(n.next_position, n.position),
      status = case when n.next_step_id is null then 'completed'::public.enrollment_status else e.status end,
      completed_at = case when n.next_step_id is null then now() else e.completed_at end
  from nxt n
  where e.workspace_id = n.workspace_id and e.id = n.enrollment_id
  $sql$;
  execute $sql$
  with stopped as (
    update public.sequence_enrollments e
    set status = case when n.status = 'cancelled' then 'cancelled' else 'failed' end::public.enrollment_status,
        stopped_reason = case when n.status = 'cancelled' then n.cancel_reason::text
                              else 'step_' || n.status || coalesce('_' || n.last_error_code, '') end,
        completed_at = now()
    from old_rows o join new_rows n on n.id = o.id
    where n.enrollment_id is not null and n.retry_of is null and o.status <> n.status
      and (n.status = 'cancelled' or n.status = any (herald.failed_statuses()))
      and e.workspace_id = n.workspace_id and e.id = n.enrollment_id and e.status = 'active'
    returning e.workspace_id, e.id
  ) select array_agg(s.workspace_id), array_agg(s.id) from stopped s
  $sql$ into v_stopped_workspaces, v_stopped;

  -- A stopped enrollment keeps nothing pending. A step that was sent has already scheduled the
  -- next one when the provider reports it undelivered or failed: that next step is cancelled
  -- here, in the statement that stopped its enrollment, not left scheduled until queueing
  -- would find it.
  if v_stopped is not null then
    update public.messages m
    set status = 'cancelled', cancel_reason = 'sequence_stopped', cancelled_at = now()
    from unnest(v_stopped_workspaces, v_stopped) s(workspace_id, enrollment_id)
    where m.workspace_id = s.workspace_id and m.enrollment_id = s.enrollment_id
      and m.status = any (herald.pending_statuses());
  end if;
  return null;
end;
$$;
comment on function herald.advance_enrollments() is 'Sequence engine: a sent step schedules the next (with its template and the variables rendered for the contact) or completes the enrollment; a cancelled, failed or undelivered one stops it and cancels what it still has pending (sequence_stopped).';

-- As before (…_queue_operations.sql), with the first step's template and its variables.
create or replace function public.prepare_queue(workspace_id uuid, for_date date default null) returns integer
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_ws public.workspaces := herald.member_workspace(prepare_queue.workspace_id, 'admin');
  v_settings public.queue_settings;
  v_seq public.sequences;
  v_step public.sequence_steps;
  v_date date;
  v_room integer;
  v_count integer;
  v_window interval;
  v_actor text := herald.current_actor();
begin
  -- One preparation per workspace at a time: the lock makes capacity and "never twice" exact.
  select * into v_settings from public.queue_settings s where s.workspace_id = v_ws.id for update;
  if not found then
    raise exception 'workspace % has no queue settings', v_ws.id using errcode = '55000',
      hint = 'Insert a queue_settings row with daily_capacity, window_start, window_end and default_sequence_id.';
  end if;
  if v_settings.default_sequence_id is null then
    raise exception 'the queue has no default sequence' using errcode = '55000',
      hint = 'Set queue_settings.default_sequence_id to an active sequence.';
  end if;
  select * into v_seq from public.sequences s where s.workspace_id = v_ws.id and s.id = v_settings.default_sequence_id;
  if v_seq.status <> 'active' then
    raise exception 'the default sequence "%" is %', v_seq.name, v_seq.status using errcode = '55000',
      hint = 'Activate the sequence or choose another default.';
  end if;
  select * into v_step from public.sequence_steps s
  where s.workspace_id = v_ws.id and s.sequence_id = v_seq.id order by s.position limit 1;
  if not found then
    raise exception 'the default sequence "%" has no steps', v_seq.name using errcode = '55000';
  end if;

  v_date := coalesce(prepare_queue.for_date, (now() at time zone v_ws.timezone)::date + 1);
  if v_date < (now() at time zone v_ws.timezone)::date then
    raise exception 'for_date % is in the past', v_date using errcode = '22023';
  end if;
  v_room := v_settings.daily_capacity
            - (select count(*) from public.queue_entries q where q.workspace_id = v_ws.id and q.for_date = v_date);
  if v_room <= 0 then
    return 0;
  end if;
  v_window := case when v_settings.window_end > v_settings.window_start then v_settings.window_end - v_settings.window_start
                   else interval '24 hours' - (v_settings.window_start - v_settings.window_end) end;

  perform set_config('herald.reason', 'prepare_queue', true);
  with picked as (
    select c.id, c.created_at, coalesce(c.timezone, v_ws.timezone) as tz
    from public.contacts c
    where c.workspace_id = v_ws.id and c.lead_status = 'new' and c.controlled_by = 'automation'
      and c.deleted_at is null and c.opted_out_at is null
      and not exists (select 1 from public.suppressions s where s.workspace_id = c.workspace_id and s.phone_hash = c.phone_hash)
      and not exists (select 1 from public.queue_entries q where q.workspace_id = c.workspace_id and q.contact_id = c.id)
      and not exists (select 1 from public.sequence_enrollments e
                      where e.workspace_id = c.workspace_id and e.contact_id = c.id and e.sequence_id = v_seq.id)
    order by c.created_at, c.id
    limit v_room
    for update of c skip locked
  ), slotted as (
    -- Evenly over the window, each at its place in the contact's own local day: wall-clock
    -- arithmetic first, then through the zone, so a daylight-saving day keeps the window.
    select p.id, ((v_date + v_settings.window_start)
                  + v_window * ((row_number() over (order by p.created_at, p.id) - 0.5) / count(*) over ()))
                 at time zone p.tz as first_send_at
    from picked p
  ), enrolled as (
    insert into public.sequence_enrollments (workspace_id, sequence_id, contact_id, current_position)
    select v_ws.id, v_seq.id, s.id, v_step.position from slotted s
    returning id, contact_id
  ), rendered as (
    select r.contact_id, r.body
    from herald.render_bodies(v_ws.id, v_step.body, (select array_agg(s.id) from slotted s)) r
  ), scheduled as (
    insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id, max_attempts,
                                 template_id, template_variables)
    select v_ws.id, s.id, v_step.channel, r.body, s.first_send_at, e.id, v_step.id, v_ws.max_attempts,
           v_step.template_id,
           case when v_step.template_id is not null then herald.render_template_variables(v_step.template_id, s.id) end
    from slotted s join enrolled e on e.contact_id = s.id join rendered r on r.contact_id = s.id
    returning contact_id
  ), ledger as (
    insert into public.queue_entries (workspace_id, contact_id, for_date, sequence_id, enrollment_id, first_send_at, actor)
    select v_ws.id, s.id, v_date, v_seq.id, e.id, s.first_send_at, v_actor
    from slotted s join enrolled e on e.contact_id = s.id
    returning contact_id, first_send_at
  ), activity as (
    insert into public.contact_activities (workspace_id, contact_id, kind, detail, actor)
    select v_ws.id, l.contact_id, 'queued',
           jsonb_build_object('for_date', v_date, 'sequence_id', v_seq.id, 'first_send_at', l.first_send_at), v_actor
    from ledger l
    returning 1
  )
  update public.contacts c set lead_status = 'queued'
  from ledger l where c.workspace_id = v_ws.id and c.id = l.contact_id;
  get diagnostics v_count = row_count;
  perform set_config('herald.reason', '', true);
  return v_count;
end;
$$;
comment on function public.prepare_queue(uuid, date) is 'Enrolls up to daily_capacity eligible new leads (per day) in the default sequence, first sends spread over the send window in each contact''s time zone, each with the first step''s template and its variables rendered for the contact. Returns how many. Never queues a lead twice.';

/** Section - retry */
create or replace function public.retry_message(message_id uuid) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  m public.messages := herald.member_message(retry_message.message_id);
  v_id uuid;
begin
  if not m.status = any (herald.failed_statuses()) then
    raise exception 'message % is %: only failed or undelivered messages can be retried', m.id, m.status
      using errcode = '55000';
  end if;
  perform herald.sendable_contact(m.contact_id);
  if herald.past_deadline(m.expires_at, now()) then
    raise exception 'message % had to be sent before % (its expires_at): a retry now would be too late', m.id, m.expires_at
      using errcode = '55000',
      hint = 'Schedule a new message (schedule_message) with a later expires_at if it is still worth sending.';
  end if;

  -- Retrying twice while the first retry is still on its way returns that retry.
  select x.id into v_id from public.messages x
  where x.workspace_id = m.workspace_id and x.retry_of = m.id
    and x.status = any (herald.pending_statuses() || herald.in_flight_statuses() || herald.sent_statuses());
  if found then
    return v_id;
  end if;
  perform set_config('herald.reason', 'retry_of_' || m.id, true);
  -- A step's failure stops its enrollment (herald.advance_enrollments), and queueing cancels the
  -- messages of a stopped enrollment (sequence_stopped): the retry keeps the enrollment only while
  -- it is active, else it is a one-off that still names its step and, through retry_of, the original.
  -- It goes as the original would: the same template and variables (WhatsApp outside the window
  -- delivers only those), the same category and the same deadline; a reminder stays its
  -- policy's (reminder_id), so moving the appointment re-renders the retry too.
  insert into public.messages (workspace_id, contact_id, sender_id, channel, body, send_at, enrollment_id, step_id,
                               appointment_id, reminder_id, campaign_id, retry_of, max_attempts,
                               category, template_id, template_variables, expires_at)
  select m.workspace_id, m.contact_id, m.sender_id, m.channel, m.body, now(),
         (select e.id from public.sequence_enrollments e
          where e.workspace_id = m.workspace_id and e.id = m.enrollment_id and e.status = 'active'),
         m.step_id, m.appointment_id, m.reminder_id, m.campaign_id, m.id, w.max_attempts,
         m.category, m.template_id, m.template_variables, m.expires_at
  from public.workspaces w where w.id = m.workspace_id
  returning id into v_id;
  perform set_config('herald.reason', '', true);
  return v_id;
end;
$$;
comment on function public.retry_message(uuid) is 'Sends a failed or undelivered message again as a new message (retry_of points back), with the same template, variables, category and deadline. Cancelled and delivered messages cannot be retried, nor one whose deadline (expires_at) has passed (55000).';
