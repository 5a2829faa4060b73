/**
 * The confirmation right before each provider call wrote every message it cleared: it extended
 * the lease to cover the call, greatest(lease, now() + call timeout). The claim's lease already
 * covers the slot and the call (and is at least the claim's lease, two minutes by default), so
 * the new value was almost always the old one, or a few milliseconds later; yet the update cost a
 * new version of the row with an entry in each of messages' indexes (lease_expires_at is in the
 * reaper's), its generated columns computed again and its statement triggers fired: ~0.5 ms per
 * message when messages are confirmed one at a time. Now only a lease that would run out during
 * the call is extended, to now() + the call timeout: the same guarantee, the lease at least that
 * long when the call starts, without the write when nothing needs it. Both confirmation paths
 * (the set-based one, and the per-message steps that every message of a workspace with a daily
 * limit takes) stretch leases through the one function.
 *
 *   stretch_leases       extends the leases that would run out during the call, and only those.
 *   confirm_send         as before, through stretch_leases.
 *   confirm_send_each    as before, through stretch_leases.
 */

/** Section - the lease over the call */
create function herald.stretch_leases(p_message_ids uuid[], p_call_timeout interval) returns void
language plpgsql
set search_path = ''
as $$
begin
  -- The claim's lease usually outlasts the call (it covers the slot and the call, and at least
  -- the claim's lease); only a message whose slot wait ate into it is written: lease_expires_at
  -- is indexed, so every such update is a new row version.
  update public.messages m set lease_expires_at = now() + p_call_timeout
  from unnest(p_message_ids) x (id) where m.id = x.id and m.lease_expires_at < now() + p_call_timeout;
end;
$$;
comment on function herald.stretch_leases(uuid[], interval) is 'Right before the provider call: extends to now() + p_call_timeout the lease of each of these messages that would run out sooner, and writes no other.';
revoke all on function herald.stretch_leases(uuid[], interval) from public;

/** Section - confirm_send */
create or replace function herald.confirm_send(
  p_message_ids uuid[],
  p_attempt_nos integer[],
  p_call_timeout interval default '15 seconds'
) returns table (message_id uuid, verdict text, reason text, body text, content_sid text, content_variables jsonb)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_clear_i bigint[];
  v_clear_ids uuid[];
  v_clear_attempts integer[];
  v_clear_bodies text[];
  v_clear_sids text[];
  v_clear_variables jsonb[];
  v_rest_i bigint[];
  v_rest_ids uuid[];
  v_rest_attempts integer[];
begin
  if p_message_ids is null or p_attempt_nos is null or cardinality(p_message_ids) <> cardinality(p_attempt_nos) then
    raise exception 'message ids and attempt numbers must pair up' using errcode = '22023';
  end if;
  if p_call_timeout is null or p_call_timeout <= interval '0' then
    raise exception 'the provider call timeout must be positive' using errcode = '22023';
  end if;
  perform set_config('herald.actor', 'dispatcher', true);

  -- Clear to go, decided on the locked rows (named once in the batch). The rows are locked and
  -- read by primary key first, with no condition on their status: beside the join, one let the
  -- planner walk the partial index of sending messages for every message of the batch.
  with locked as materialized (
    select x.i, x.id, x.attempt_no, m as msg
    from unnest(p_message_ids, p_attempt_nos) with ordinality x (id, attempt_no, i)
    join public.messages m on m.id = x.id
    for update of m
  )
  select array_agg(l.i), array_agg(l.id), array_agg(l.attempt_no), array_agg(o.body), array_agg(o.content_sid),
         array_agg(o.content_variables)
  into v_clear_i, v_clear_ids, v_clear_attempts, v_clear_bodies, v_clear_sids, v_clear_variables
  from locked l
  join public.contacts c on c.workspace_id = (l.msg).workspace_id and c.id = (l.msg).contact_id
  join public.workspaces w on w.id = (l.msg).workspace_id
  cross join lateral herald.send_rule(l.msg, c, w, now(), null) r
  cross join lateral herald.outbound_content(l.msg, c, now()) o
  where (l.msg).status = 'sending' and (l.msg).attempts = l.attempt_no and (l.msg).lease_expires_at > now()
    and r.cancel_reason is null and r.defer_reason is null and o.refusal is null and w.daily_limit is null
    and l.id not in (select d.id from unnest(p_message_ids) d (id) group by d.id having count(*) > 1);

  if v_clear_ids is not null then
    perform herald.stretch_leases(v_clear_ids, p_call_timeout);
    update public.message_attempts a set confirmed_at = now()
    from unnest(v_clear_ids, v_clear_attempts) x (id, attempt_no)
    where a.message_id = x.id and a.attempt_no = x.attempt_no;
  end if;

  -- The rest, in the order given: their places in the batch, ids and attempts.
  select coalesce(array_agg(x.i order by x.i), '{}'), coalesce(array_agg(x.id order by x.i), '{}'),
         coalesce(array_agg(x.attempt_no order by x.i), '{}')
  into v_rest_i, v_rest_ids, v_rest_attempts
  from unnest(p_message_ids, p_attempt_nos) with ordinality x (id, attempt_no, i)
  where x.i not in (select unnest(coalesce(v_clear_i, '{}')));

  -- One row per message, in the order given; one that may go, with what its call carries now.
  -- The claim decided that too, but a WhatsApp window can close while the message waits for its
  -- slot: its body would then go free-form and fail at Twilio (63016) though it has a template.
  if cardinality(v_rest_ids) = 0 then
    return query
    select p_message_ids[x.i], 'send'::text, null::text, x.body, x.content_sid, x.content_variables
    from unnest(v_clear_i, v_clear_bodies, v_clear_sids, v_clear_variables) x (i, body, content_sid, content_variables)
    order by x.i;
    return;
  end if;
  return query
  with rest_in as (
    select r.i, r.k from unnest(v_rest_i) with ordinality r (i, k)
  ), rest_out as (
    select e.message_id, e.verdict, e.reason, row_number() over () as k
    from herald.confirm_send_each(v_rest_ids, v_rest_attempts, p_call_timeout) e
  )
  select v.message_id, v.verdict, v.reason, v.body, v.content_sid, v.content_variables
  from (
    select x.i, p_message_ids[x.i] as message_id, 'send'::text as verdict, null::text as reason,
           x.body, x.content_sid, x.content_variables
    from unnest(v_clear_i, v_clear_bodies, v_clear_sids, v_clear_variables) x (i, body, content_sid, content_variables)
    union all
    select ri.i, ro.message_id, ro.verdict, ro.reason, o.body, o.content_sid, o.content_variables
    from rest_in ri
    join rest_out ro using (k)
    left join public.messages m on ro.verdict = 'send' and m.id = ro.message_id
    left join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
    left join lateral herald.outbound_content(m, c, now()) o on m.id is not null
  ) v
  order by v.i;
end;
$$;

/** Section - the per-message steps */
create or replace function herald.confirm_send_each(
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
        perform herald.stretch_leases(array[m.id], p_call_timeout);
        update public.message_attempts a set confirmed_at = now() where a.message_id = m.id and a.attempt_no = m.attempts;
        verdict := 'send';
      end if;
    end if;
    return next;
  end loop;
end;
$$;

