/**
 * The dispatcher's answers, recorded a batch at a time. One round trip and one herald.record_send_result
 * per message made the ledger's and the enrollments' statement triggers fire once per message;
 * recording is most of a message's server time. herald.record_send_results takes whatever answers
 * the dispatcher has gathered (a few milliseconds' worth) and applies the common one, Twilio
 * accepted a message that is still this attempt's, to all of them in one statement per table, so
 * each trigger fires once for the batch. Every other answer (an error, no answer, a stale or
 * reaped attempt, a status already past sent, callbacks that beat the answer, an erased message)
 * goes through herald.record_send_result, in the order given, in the same transaction: the rules
 * for those stay in one place.
 */

create function herald.record_send_results(
  p_message_ids uuid[],
  p_attempt_nos integer[],
  p_outcomes text[],
  p_sids text[] default null,
  p_provider_statuses text[] default null,
  p_error_codes integer[] default null,
  p_error_messages text[] default null,
  p_http_statuses integer[] default null
) returns table (message_id uuid, status public.message_status)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_n integer := coalesce(cardinality(p_message_ids), 0);
  v_fast_i bigint[];
  v_fast_ids uuid[];
  v_fast_attempts integer[];
  v_fast_sids text[];
  v_fast_statuses text[];
  v_fast_codes integer[];
  v_fast_messages text[];
  v_result public.message_status[];
  v_i bigint;
  r record;
begin
  if cardinality(p_attempt_nos) is distinct from v_n or cardinality(p_outcomes) is distinct from v_n
     or coalesce(cardinality(p_sids), v_n) <> v_n or coalesce(cardinality(p_provider_statuses), v_n) <> v_n
     or coalesce(cardinality(p_error_codes), v_n) <> v_n or coalesce(cardinality(p_error_messages), v_n) <> v_n
     or coalesce(cardinality(p_http_statuses), v_n) <> v_n then
    raise exception 'the answer arrays differ in length (% message ids)', v_n using errcode = '22023',
      hint = 'Pass one element per answer in every array (null where an answer has no sid, status or code), or leave an optional array out.';
  end if;
  if array_position(p_message_ids, null) is not null or array_position(p_attempt_nos, null) is not null then
    raise exception 'an answer has no message id or attempt number' using errcode = '22023',
      hint = 'Every answer names the message and the attempt number claim_messages gave it.';
  end if;
  -- Outcomes and HTTP statuses are checked for the whole batch before anything is recorded.
  select o into r from unnest(p_outcomes) o
  where o is null or o not in ('sent', 'permanent', 'transient', 'not_sent', 'unknown') limit 1;
  if found then
    raise exception 'invalid outcome %', coalesce(r.o, 'null') using errcode = '22023',
      hint = 'One of sent, permanent, transient, not_sent or unknown (no answer: Twilio may have it).';
  end if;
  select h into r from unnest(p_http_statuses) h where h not between 100 and 599 limit 1;
  if found then
    raise exception 'invalid HTTP status %', r.h using errcode = '22023',
      hint = 'Pass the status of Twilio''s answer (100–599), or null when there was none.';
  end if;
  if v_n = 0 then
    return;
  end if;

  perform set_config('herald.actor', 'dispatcher', true);
  -- The sids' locks, shared with the status callbacks (see apply_provider_status), taken in one
  -- order so two batches never wait for each other crosswise.
  perform pg_advisory_xact_lock(k.k)
  from (select distinct hashtextextended(s, 0) as k from unnest(p_sids) s where s is not null order by 1) k;

  -- Accepted, and still this attempt's: no callback is waiting for the sid, Twilio did not
  -- already report it further than sent, the message is named once in the batch. (Kept as
  -- arrays of those answers alone, so the updates below join them without a search per row.)
  -- The rows are locked and read by primary key first, with no condition on their status: a
  -- status condition beside the join let the planner walk the partial index of sending messages
  -- for every answer, all of them each time.
  with locked as materialized (
    select x.*, m.status as m_status, m.attempts as m_attempts
    from unnest(p_message_ids, p_attempt_nos, p_outcomes, p_sids, p_provider_statuses, p_error_codes, p_error_messages)
         with ordinality x (id, attempt_no, outcome, sid, provider_status, error_code, error_message, i)
    join public.messages m on m.id = x.id
    where x.outcome = 'sent' and x.sid is not null
    for update of m
  )
  select array_agg(f.i), array_agg(f.id), array_agg(f.attempt_no), array_agg(f.sid), array_agg(f.provider_status),
         array_agg(f.error_code), array_agg(f.error_message)
  into v_fast_i, v_fast_ids, v_fast_attempts, v_fast_sids, v_fast_statuses, v_fast_codes, v_fast_messages
  from locked f
  where f.m_status = 'sending' and f.m_attempts = f.attempt_no
    and coalesce(herald.message_rank(herald.from_provider_status(f.provider_status)), 0) <= herald.message_rank('sent')
    and not exists (select 1 from public.provider_events e
                    where e.provider_sid = f.sid and e.kind = 'status' and e.outcome = 'unknown_sid')
    and f.id not in (select d.id from unnest(p_message_ids) d (id) group by d.id having count(*) > 1);

  v_result := array_fill(null::public.message_status, array[v_n]);
  if v_fast_i is not null then
    update public.message_attempts a
    set provider_sid = x.sid, provider_status = coalesce(lower(x.provider_status), 'accepted'),
        error_code = x.error_code, error_message = x.error_message, responded_at = now()
    from unnest(v_fast_ids, v_fast_attempts, v_fast_sids, v_fast_statuses, v_fast_codes, v_fast_messages)
         x (id, attempt_no, sid, provider_status, error_code, error_message)
    where a.message_id = x.id and a.attempt_no = x.attempt_no;

    update public.messages m
    set status = 'sent', provider_sid = coalesce(m.provider_sid, x.sid), sent_at = coalesce(m.sent_at, now()),
        lease_expires_at = null, provider_check_required = false, last_error_code = null, last_error = null
    from unnest(v_fast_ids, v_fast_sids) x (id, sid)
    where m.id = x.id;

    foreach v_i in array v_fast_i loop
      v_result[v_i] := 'sent';
    end loop;
  end if;

  -- Every other answer (those still without a result), in the order given.
  for v_i in 1 .. v_n loop
    if v_result[v_i] is null then
      v_result[v_i] := herald.record_send_result(p_message_ids[v_i], p_attempt_nos[v_i], p_outcomes[v_i], p_sids[v_i],
                                                 p_provider_statuses[v_i], p_error_codes[v_i], p_error_messages[v_i],
                                                 p_http_statuses[v_i]);
    end if;
  end loop;

  return query select x.id, v_result[x.i] from unnest(p_message_ids) with ordinality x (id, i) order by x.i;
end;
$$;
comment on function herald.record_send_results(uuid[], integer[], text[], text[], text[], integer[], text[], integer[]) is 'Records a batch of the provider''s answers (one element per answer in each array), in the order given: those where Twilio accepted a message still held by that attempt are applied in one statement per table (the ledger and enrollment triggers fire once for the batch); every other answer exactly as herald.record_send_result. Returns each message''s resulting status, null for one erased meanwhile. Mismatched arrays, a missing id or attempt, an invalid outcome or HTTP status: 22023, nothing recorded.';
revoke execute on function herald.record_send_results(uuid[], integer[], text[], text[], text[], integer[], text[], integer[]) from public, authenticated;
grant execute on function herald.record_send_results(uuid[], integer[], text[], text[], text[], integer[], text[], integer[]) to service_role;
