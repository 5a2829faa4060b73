/**
 * A sender deleted while one of its messages is being sent, and a reaper no row can stop.
 *
 * Deleting a sender set the sender of its in-flight (sending) messages to null. When such a
 * lease expired, the reaper's one update put the message back to queued, hit
 * messages_queued_has_sender and failed: every minute, for every workspace, so other tenants'
 * expired leases stayed stuck in sending. record_send_result's not_sent path failed the same way.
 *
 *   - An in-flight message is re-bound to the channel's default sender, as queued ones are
 *     (the call under way already has its From number).
 *   - A message coming back from a provider call with no sender left (none bound, no default to
 *     take over) is cancelled with sender_deleted: nothing could send it. The reaper does this only
 *     for attempts never confirmed for sending (the provider was never called); one that was
 *     confirmed may have gone out, so it fails, saying so, rather than being sent again.
 *   - The reaper reaps set-based, and if that statement fails, row by row, each on its own, with a
 *     warning for the row it could not take: one bad row never keeps the others in sending.
 */

/** Section - in-flight messages follow the default sender */
create function herald.senders_rebind_inflight() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_replacement uuid := herald.replacement_sender(old.workspace_id, old.id);
begin
  if v_replacement is not null then
    update public.messages set sender_id = v_replacement
    where workspace_id = old.workspace_id and sender_id = old.id and status = 'sending';
  end if;
  return old;
end;
$$;
create trigger senders_rebind_inflight before delete on public.senders
for each row execute function herald.senders_rebind_inflight();
comment on function herald.senders_rebind_inflight() is 'Sender delete: messages being sent from it are re-bound to the default sender of the channel, if any.';

/** Section - back from a provider call with no sender */
create or replace function herald.messages_bind_sender() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.sender_id := (select s.id from public.senders s
                    where s.workspace_id = new.workspace_id and s.channel = new.channel
                      and s.is_default and s.phone_number is not null);
  if new.sender_id is null and tg_op = 'UPDATE' and old.status = 'sending' then
    -- Its sender was deleted during the call and no default takes over: nothing can send it.
    new.status := 'cancelled';
    new.cancel_reason := 'sender_deleted';
    new.cancelled_at := now();
  end if;
  return new;
end;
$$;
comment on function herald.messages_bind_sender() is 'A message queued without a sender is bound to the workspace''s default sender of its channel; with none it is refused (23514, messages_queued_has_sender), or, back from a provider call whose sender was deleted, cancelled (sender_deleted).';

/** Section - the reaper */
create or replace function herald.reap_expired_leases() returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids uuid[];
  v_id uuid;
  v_failed integer;
  v_count integer := 0;
  v_prev text := herald.set_reason('sender_deleted');
begin
  perform set_config('herald.actor', coalesce(nullif(current_setting('herald.actor', true), ''), 'cron'), true);
  select array_agg(id) into v_ids from (
    select m.id from public.messages m where m.status = 'sending' and m.lease_expires_at < now()
    order by m.lease_expires_at limit 10000
    for update skip locked
  ) expired;
  if v_ids is null then
    perform herald.set_reason(v_prev);
    return 0;
  end if;

  -- Confirmed for sending, so perhaps at the provider, and no sender left to look it up and
  -- resend from: failed, with what is known.
  with done as (
    update public.messages m
    set status = 'failed', failed_at = now(), lease_expires_at = null,
        last_error = 'the sender was deleted while this message was being sent; whether the provider took it is unknown'
    where m.id = any (v_ids) and m.sender_id is null
      and not exists (select 1 from public.senders s
                      where s.workspace_id = m.workspace_id and s.channel = m.channel and s.is_default and s.phone_number is not null)
      and exists (select 1 from public.message_attempts a
                  where a.message_id = m.id and a.attempt_no = m.attempts and a.confirmed_at is not null)
    returning 1
  ) select count(*) into v_failed from done;

  -- Whether the provider got the others is unknown: queue them again, flagged so the dispatcher
  -- looks them up at the provider before sending anything (never lost, never sent twice).
  perform herald.set_reason('lease_expired');
  begin
    with reaped as (
      update public.messages m
      set status = 'queued', lease_expires_at = null, provider_check_required = true
      where m.id = any (v_ids) and m.status = 'sending'
      returning 1
    ) select count(*) into v_count from reaped;
  exception when others then
    v_count := 0;
    foreach v_id in array v_ids loop
      begin
        update public.messages m
        set status = 'queued', lease_expires_at = null, provider_check_required = true
        where m.id = v_id and m.status = 'sending';
        if found then
          v_count := v_count + 1;
        end if;
      exception when others then
        raise warning 'herald: the expired lease of message % could not be reaped: % (%)', v_id, sqlerrm, sqlstate;
      end;
    end loop;
  end;
  perform herald.set_reason(v_prev);
  return v_count + v_failed;
end;
$$;
comment on function herald.reap_expired_leases() is 'pg_cron, every minute: messages whose dispatcher lease expired go back to queued, flagged for a provider look-up before any resend; one that lost its sender is cancelled (never sent) or failed (maybe sent). A row that cannot be reaped is skipped with a warning, never stopping the rest.';
revoke execute on function herald.reap_expired_leases() from public, authenticated;
grant execute on function herald.reap_expired_leases() to service_role;
