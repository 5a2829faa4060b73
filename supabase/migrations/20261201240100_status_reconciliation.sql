/**
 * Missed status callbacks, reconciled: a message Twilio delivered is delivered here too, even when
 * its callback never arrived.
 *
 * Status callbacks were the only way a sent message moved on. With the functions server down for a
 * few minutes, Twilio's callbacks of that time were lost after its few retries, and those messages
 * stayed sent for good though Twilio had them delivered. Now:
 *
 *   select_status_checks  pg_cron, every minute (herald-reconcile-statuses): each attempt with a
 *                         sid whose message is still sent (or sending) and that nothing has been
 *                         heard of for p_older_than (the job's argument, default 10 minutes)
 *                         becomes a due status check; a check whose message moved on, or older
 *                         than p_give_up_after (3 days), goes.
 *   claim_status_checks   the dispatcher takes a batch of due checks under a lease (for update skip
 *                         locked, as message claims do) and fetches each status from Twilio, paced.
 *   record_status_check   applies what Twilio said through herald.apply_status_event, the rank-only
 *                         path status callbacks take, with actor reconciliation; a message still
 *                         sent is checked again later, each wait twice the last (at most a day).
 */

/** Section - the checks */
create table herald.status_checks (
  attempt_id uuid primary key references public.message_attempts (id) on delete cascade,
  every interval not null,
  checks integer not null default 0,
  due_at timestamptz not null default now(),
  leased_until timestamptz,
  last_checked_at timestamptz,
  last_error text,
  constraint status_checks_every_positive check (every > interval '0'),
  constraint status_checks_checks_range check (checks >= 0)
);
comment on table herald.status_checks is 'Attempts whose message is still sent (or sending) with no word from the provider for a while: the dispatcher fetches their status from Twilio and applies it as a status callback would.';
comment on column herald.status_checks.every is 'The wait the check was selected after (the job''s p_older_than); each further check waits twice the last, at most a day.';
comment on column herald.status_checks.checks is 'Look-ups made so far, answered or not.';
comment on column herald.status_checks.due_at is 'When the next look-up is due.';
comment on column herald.status_checks.leased_until is 'Held by a dispatcher until then; free again after, should it die.';
comment on column herald.status_checks.last_error is 'Why the last look-up got no status, if it did not.';
create index status_checks_due_idx on herald.status_checks (due_at);
alter table herald.status_checks enable row level security;

-- A sent message waits for its delivery report: found by the job through this index, never by a
-- scan of every message ever sent.
create index messages_sent_idx on public.messages (sent_at) where status = 'sent';

comment on column public.message_attempts.last_callback_at is 'When the provider last reported this attempt''s status: a status callback, or a look-up of its status (reconciliation of a missed callback, or the look-up after an unknown outcome).';

/** Section - the job */
create function herald.select_status_checks(
  p_older_than interval default '10 minutes',
  p_give_up_after interval default '3 days'
) returns integer
language plpgsql
security definer
set search_path = ''
as $$
begin
  if p_older_than is null or p_older_than <= interval '0' then
    raise exception 'the wait before a status check must be positive' using errcode = '22023';
  end if;
  if p_give_up_after is null or p_give_up_after <= p_older_than then
    raise exception 'status checks must give up (after %) later than they start (after %)', p_give_up_after, p_older_than
      using errcode = '22023';
  end if;

  -- Nothing left to find: the message moved on, or the attempt is older than any report.
  delete from herald.status_checks s
  using public.message_attempts a, public.messages m
  where a.id = s.attempt_id and m.workspace_id = a.workspace_id and m.id = a.message_id
    and (m.status not in ('sent', 'sending') or a.requested_at < now() - p_give_up_after);

  insert into herald.status_checks (attempt_id, every)
  select a.id, p_older_than
  from (select m.workspace_id, m.id from public.messages m
        where m.status = 'sent' and m.sent_at >= now() - p_give_up_after
        union all
        select m.workspace_id, m.id from public.messages m where m.status = 'sending') m
  join public.message_attempts a on a.workspace_id = m.workspace_id and a.message_id = m.id
  where a.provider_sid is not null
    and a.requested_at >= now() - p_give_up_after
    and coalesce(a.last_callback_at, a.responded_at, a.requested_at) < now() - p_older_than
  on conflict (attempt_id) do nothing;

  return (select count(*) from herald.status_checks s where s.due_at <= now());
end;
$$;
comment on function herald.select_status_checks(interval, interval) is 'pg_cron, every minute: attempts whose message is still sent (or sending) and not heard of for p_older_than become due status checks; checks with nothing left to find go. Returns the checks due.';
revoke execute on function herald.select_status_checks(interval, interval) from public, authenticated;
grant execute on function herald.select_status_checks(interval, interval) to service_role;

select cron.schedule('herald-reconcile-statuses', '* * * * *', $$select herald.select_status_checks('10 minutes')$$);

/** Section - the dispatcher's part */
create function herald.claim_status_checks(p_limit integer default 100, p_lease interval default '1 minute')
returns table (provider_sid text)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    raise exception 'limit must be between 1 and 1000' using errcode = '22023';
  end if;
  if p_lease is null or p_lease < interval '10 seconds' then
    raise exception 'lease must be at least 10 seconds' using errcode = '22023';
  end if;
  return query
  with due as (
    select s.attempt_id from herald.status_checks s
    where s.due_at <= now() and (s.leased_until is null or s.leased_until <= now())
    order by s.due_at
    limit p_limit
    for update skip locked
  ), leased as (
    update herald.status_checks s set leased_until = now() + p_lease
    from due where s.attempt_id = due.attempt_id
    returning s.attempt_id
  )
  select a.provider_sid from leased l join public.message_attempts a on a.id = l.attempt_id;
end;
$$;
comment on function herald.claim_status_checks(integer, interval) is 'The dispatcher takes up to p_limit due status checks under a lease (for update skip locked): the sids to fetch from the provider.';
revoke execute on function herald.claim_status_checks(integer, interval) from public, authenticated;
grant execute on function herald.claim_status_checks(integer, interval) to service_role;

create function herald.record_status_check(
  p_sid text,
  p_status text,
  p_error_code integer default null,
  p_error text default null
) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_attempt uuid;
  r record;
begin
  if p_status is not null and lower(p_status) not in ('accepted', 'scheduled', 'queued', 'sending', 'sent', 'delivered',
                                                      'undelivered', 'failed', 'read', 'canceled', 'partially_delivered') then
    raise exception 'unknown provider status %', p_status using errcode = '22023',
      hint = 'A Twilio message status (queued, sent, delivered, undelivered, failed, read, canceled…), or null when the look-up failed.';
  end if;
  perform set_config('herald.actor', 'reconciliation', true);
  -- In turn with callbacks and send results for the same sid.
  perform pg_advisory_xact_lock(hashtextextended(p_sid, 0));
  select s.attempt_id into v_attempt
  from herald.status_checks s join public.message_attempts a on a.id = s.attempt_id
  where a.provider_sid = p_sid
  for update of s;
  if not found then
    return 'gone'; -- its message moved on meanwhile, or it was erased
  end if;
  if exists (select 1 from herald.provider_erasures e where e.provider_sid = p_sid) then
    delete from herald.status_checks s where s.attempt_id = v_attempt;
    return 'erased';
  end if;

  if p_status is null then
    -- The look-up failed: tried again after the next wait.
    update herald.status_checks s
    set checks = s.checks + 1, last_checked_at = now(), leased_until = null, last_error = coalesce(p_error, 'no answer'),
        due_at = now() + least(s.every * power(2, s.checks + 1), interval '1 day')
    where s.attempt_id = v_attempt;
    return 'failed';
  end if;
  r := herald.apply_status_event(p_sid, p_status, p_error_code);
  if (select m.status from public.messages m where m.id = r.message_id) not in ('sent', 'sending') then
    delete from herald.status_checks s where s.attempt_id = v_attempt; -- it moved on: nothing left to look for
  else
    update herald.status_checks s
    set checks = s.checks + 1, last_checked_at = now(), leased_until = null, last_error = null,
        due_at = now() + least(s.every * power(2, s.checks + 1), interval '1 day')
    where s.attempt_id = v_attempt;
  end if;
  return r.outcome;
end;
$$;
comment on function herald.record_status_check(text, text, integer, text) is 'Applies a status fetched from the provider for a due check through the path status callbacks take (rank only; actor reconciliation), and drops the check once the message moved on or schedules the next one. A null status is a failed look-up: checked again later.';
revoke execute on function herald.record_status_check(text, text, integer, text) from public, authenticated;
grant execute on function herald.record_status_check(text, text, integer, text) to service_role;
