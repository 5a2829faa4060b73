/**
 * The status callbacks' plans hold on tables that grow.
 *
 * PL/pgSQL keeps a statement's plan for the session. Under plan_cache_mode = auto, after five
 * calls it may settle on a generic plan (one made for any values), costed for the tables' sizes
 * at that moment, and keeps it until the next ANALYZE of a table it reads. On a new project, or
 * a bench's first drain, that moment comes while messages, message_attempts and provider_events
 * hold a few rows, where reading a table whole is the cheapest way to find anything in it: the
 * kept plans then read every attempt, stored event and message for each batch of callbacks
 * while the tables grew by thousands of rows a second. One connection applying a first drain's
 * callbacks (what a twilio-status isolate has) spent ~8.5 ms a call on the classification query
 * instead of ~0.75, and 6,000 messages took 26-47 s to reach delivered instead of 10-12, until
 * autovacuum's next ANALYZE had the plans made again.
 *
 * apply_status_callbacks reaches every row it reads or writes by a unique key (a sid, a token,
 * an id), for at most 1,000 callbacks: an index probe per callback is the right plan at any size.
 * Three changes keep its plans there whatever the tables' sizes when they are made:
 *   - it runs with enable_seqscan off, so a statement planned while it runs (its own, and the
 *     foreign-key checks and triggers its writes fire) reads a table sequentially only where no
 *     index serves it;
 *   - the attempts are found by one lateral probe per sid. As a join, a plan made on a small
 *     table read message_attempts_provider_sid_key whole instead, once per batch;
 *   - the updates of the attempts and the messages also name the batch's ids as an array, an
 *     index condition on the table itself. Without it, a plan made on a small table read the
 *     primary key whole and joined the batch to it.
 * Plans made once the tables are large probe as they did (a batch of 19 costs what it did).
 *
 *   apply_status_callbacks   as before; its plans reach every table through an index.
 */

/** Section - a batch of status callbacks */
create or replace function herald.apply_status_callbacks(
  p_sids text[],
  p_statuses text[],
  p_error_codes integer[],
  p_payloads jsonb[],
  p_idempotency_tokens text[]
) returns text[]
language plpgsql
security definer
set search_path = ''
-- Every table it reads it reaches through an index, whatever size the table was when a plan was made.
set enable_seqscan = off
as $$
declare
  v_n integer := cardinality(p_sids);
  v_bad bigint;
  v_outcomes text[];
  -- The callbacks applied set-based, one element each: input position, round, sid, status,
  -- target status, attempt, message, workspace.
  f_i integer[];
  f_round integer[];
  f_sid text[];
  f_status text[];
  f_target public.message_status[];
  f_attempt uuid[];
  f_message uuid[];
  f_workspace uuid[];
  v_rounds integer;
  v_slow integer[];
  v_applied integer[] := '{}';
  v_moved integer[];
  v_target public.message_status;
  v_prev text;
  v_k integer;
  c record;
  r record;
begin
  if p_sids is null or p_statuses is null or p_error_codes is null or p_payloads is null or p_idempotency_tokens is null then
    raise exception 'sids, statuses, error codes, payloads and idempotency tokens must each be an array'
      using errcode = '22023', hint = 'One element per callback; a callback without an error code or a token has null in its place.';
  end if;
  if coalesce(array_ndims(p_sids), 1) <> 1 or coalesce(array_ndims(p_statuses), 1) <> 1 or coalesce(array_ndims(p_error_codes), 1) <> 1
     or coalesce(array_ndims(p_payloads), 1) <> 1 or coalesce(array_ndims(p_idempotency_tokens), 1) <> 1 then
    raise exception 'the callbacks must be one-dimensional arrays' using errcode = '22023';
  end if;
  if cardinality(p_statuses) <> v_n or cardinality(p_error_codes) <> v_n or cardinality(p_payloads) <> v_n
     or cardinality(p_idempotency_tokens) <> v_n then
    raise exception 'one element per callback in every array: % sids, % statuses, % error codes, % payloads, % idempotency tokens',
      v_n, cardinality(p_statuses), cardinality(p_error_codes), cardinality(p_payloads), cardinality(p_idempotency_tokens)
      using errcode = '22023';
  end if;
  if v_n > 1000 then
    -- Each sid's advisory lock is held to the end of the transaction, in the server's shared lock table.
    raise exception 'at most 1000 callbacks per call, not %', v_n using errcode = '22023', hint = 'Split the batch.';
  end if;
  select min(u.i) into v_bad
  from unnest(p_sids, p_statuses, p_payloads) with ordinality u (sid, status, payload, i)
  where u.sid is null or u.status is null or u.payload is null;
  if v_bad is not null then
    raise exception 'callback % has no %', v_bad,
      (select case when u.sid is null then 'sid' when u.status is null then 'status' else 'payload' end
       from unnest(p_sids, p_statuses, p_payloads) with ordinality u (sid, status, payload, i) where u.i = v_bad)
      using errcode = '22023', hint = 'Every callback needs its MessageSid, its MessageStatus and the form as received.';
  end if;
  if v_n = 0 then
    return '{}';
  end if;
  v_outcomes := array_fill(null::text, array[v_n]);

  perform set_config('herald.actor', 'provider', true);

  if v_n = 1 then
    -- A lone callback (no load, or apply_provider_status): the per-callback path, without the
    -- batch's bookkeeping, which would cost more than the callback itself.
    select u.sid, u.status, u.code, u.payload, u.token into c
    from unnest(p_sids, p_statuses, p_error_codes, p_payloads, p_idempotency_tokens) u (sid, status, code, payload, token);
    perform pg_advisory_xact_lock(hashtextextended(c.sid, 0));
    if exists (select 1 from herald.provider_erasures e where e.provider_sid = c.sid) then
      return array['erased'];
    end if;
    if c.token is not null and exists (select 1 from public.provider_events e where e.idempotency_token = c.token) then
      return array['duplicate'];
    end if;
    v_slow := array[1];
  else
    -- Taken in turn with record_send_result for the same sid: a callback that beats the
    -- dispatcher's answer either waits for it here, or is kept as unknown_sid and replayed there.
    -- Also with a redelivery of the same callback (same sid) in another batch: the second, after
    -- the lock, sees the first's event and is a duplicate. All of them before anything is read,
    -- in the order of their keys, as any other holder of several must take them.
    perform pg_advisory_xact_lock(l.key)
    from (select distinct hashtextextended(s.sid, 0) as key from unnest(p_sids) s (sid) order by 1) l;

    -- What each callback is: erased (a hard-deleted contact's sid: nothing of it is stored), a
    -- duplicate (its token stored already, or by an earlier callback of this batch that is stored),
    -- or applied; and of those, which go set-based: a known attempt, no error code, a status that is
    -- no failure, on a message no other sid's callback or per-callback one of this batch reaches.
    for c in
      with u as (
        select u.i::integer as i, u.sid, lower(u.status) as status, u.code, u.token,
               (herald.provider_targets() ->> lower(u.status))::public.message_status as target,
               x.erased is not null as erased
        from unnest(p_sids, p_statuses, p_error_codes, p_idempotency_tokens) with ordinality u (sid, status, code, token, i)
        left join lateral (select true as erased from herald.provider_erasures e where e.provider_sid = u.sid limit 1) x on true
      ),
      d as (
        select u.*,
               not u.erased and u.token is not null
               and (stored.token is not null
                    or coalesce(bool_or(not u.erased) over (partition by u.token order by u.i
                                                            rows between unbounded preceding and 1 preceding), false)) as duplicate,
               a.id as attempt_id, a.workspace_id,
               coalesce(a.message_id, (select m.id from public.messages m where a.id is null and m.provider_sid = u.sid)) as message_id
        -- One index probe per sid (provider_sid is unique): as a join, a plan made while the table
        -- was small read every attempt with a sid for each batch.
        from u left join lateral (select a.id, a.workspace_id, a.message_id from public.message_attempts a
                                  where a.provider_sid = u.sid limit 1) a on true
        -- One index probe per token: as an exists() the planner may hash every stored event instead.
        left join lateral (select e.idempotency_token as token from public.provider_events e
                           where e.idempotency_token = u.token limit 1) stored on true
      ),
      s as (
        select d.*, not d.erased and not d.duplicate as live,
               d.attempt_id is not null and d.code is null
               and (d.target is null or not d.target = any (herald.failed_statuses())) as simple
        from d
      ),
      g as (
        select s.*,
               s.live and s.simple
               and bool_and(s.simple) over (partition by s.live, s.message_id)
               and min(s.sid) over (partition by s.live, s.message_id) = max(s.sid) over (partition by s.live, s.message_id) as fast
        from s
      )
      select g.*, row_number() over (partition by g.fast, g.sid order by g.i)::integer as round
      from g
      order by g.i
    loop
      v_outcomes[c.i] := case when c.erased then 'erased' when c.duplicate then 'duplicate' end;
      if c.fast then
        f_i := f_i || c.i;
        f_round := f_round || c.round;
        f_sid := f_sid || c.sid;
        f_status := f_status || c.status;
        f_target := f_target || c.target;
        f_attempt := f_attempt || c.attempt_id;
        f_message := f_message || c.message_id;
        f_workspace := f_workspace || c.workspace_id;
      elsif c.live then
        v_slow := v_slow || c.i;
      end if;
    end loop;

    if f_i is not null then
      -- The messages in one order, whichever batch or callback reaches them.
      perform 1 from public.messages m where m.id = any (f_message) order by m.id for update;
      v_rounds := (select max(x) from unnest(f_round) x);
      for v_k in 1 .. v_rounds loop
        -- The attempt keeps the furthest status Twilio reported (herald.apply_status_event).
        update public.message_attempts a
        set provider_status = case
              when herald.provider_targets() ->> lower(a.provider_status) is null then f.status
              when f.target is null then a.provider_status
              when (herald.provider_targets() ->> lower(a.provider_status)) || '>' || f.target::text = any (herald.forward_moves())
                then f.status
              else a.provider_status
            end,
            last_callback_at = now()
        from unnest(f_round, f_attempt, f_status, f_target) f (round, attempt_id, status, target)
        -- (the ids as an array too: an index condition on the table itself, which a plan made on
        -- a small table otherwise read whole, through its primary key, to join)
        where f.round = v_k and a.id = f.attempt_id and a.id = any (f_attempt);
        -- The messages, forward by rank only; one statement per status reached, whose name the
        -- ledger gives as the reason (provider_sent, provider_delivered…).
        for v_target in
          select distinct f.target from unnest(f_round, f_target) f (round, target)
          where f.round = v_k and f.target is not null
        loop
          v_prev := herald.set_reason('provider_' || v_target);
          with moved as (
            update public.messages m
            set status = f.target,
                provider_sid = coalesce(m.provider_sid, f.sid),
                lease_expires_at = null,
                sent_at = coalesce(m.sent_at, now()),
                delivered_at = case when f.target = any (herald.delivered_statuses()) then coalesce(m.delivered_at, now())
                                    else m.delivered_at end
            from unnest(f_i, f_round, f_sid, f_target, f_message) f (i, round, sid, target, message_id)
            where f.round = v_k and f.target = v_target and m.id = f.message_id and m.id = any (f_message)
              and m.status::text || '>' || f.target::text = any (herald.forward_moves())
            returning f.i
          )
          select array_agg(moved.i) into v_moved from moved;
          perform herald.set_reason(v_prev);
          v_applied := v_applied || coalesce(v_moved, '{}');
        end loop;
      end loop;
      -- Each stored once, with what was done, in input order.
      insert into public.provider_events (kind, workspace_id, message_id, provider_sid, provider_status, error_code,
                                          outcome, payload, idempotency_token)
      select 'status', f.workspace_id, f.message_id, f.sid, f.status, null,
             case when f.i = any (v_applied) then 'applied' else 'unchanged' end, u.payload, u.token
      from unnest(f_i, f_sid, f_status, f_message, f_workspace) f (i, sid, status, message_id, workspace_id)
      join unnest(p_payloads, p_idempotency_tokens) with ordinality u (payload, token, i) on u.i = f.i
      order by f.i;
      for v_k in 1 .. cardinality(f_i) loop
        v_outcomes[f_i[v_k]] := case when f_i[v_k] = any (v_applied) then 'applied' else 'unchanged' end;
      end loop;
    end if;
  end if;

  -- The rest one by one, in input order.
  for c in
    select u.i::integer as i, u.sid, u.status, u.code, u.payload, u.token
    from unnest(p_sids, p_statuses, p_error_codes, p_payloads, p_idempotency_tokens) with ordinality u (sid, status, code, payload, token, i)
    where u.i = any (v_slow)
    order by u.i
  loop
    r := herald.apply_status_event(c.sid, c.status, c.code);
    -- An unknown sid waits in its event for record_send_result to replay it.
    insert into public.provider_events (kind, workspace_id, message_id, provider_sid, provider_status, error_code,
                                        outcome, payload, idempotency_token)
    values ('status', r.workspace_id, r.message_id, c.sid, lower(c.status), c.code, r.outcome, c.payload, c.token);
    v_outcomes[c.i] := r.outcome;
  end loop;
  return v_outcomes;
end;
$$;
