/**
 * Housekeeping on a schedule (pg_cron): every hour, senders that are not connected, have no
 * number and were not seen for a day are removed; every night, contacts soft-deleted more than
 * 30 days ago are erased for good.
 *
 * Both go through the same deletes as a user's, so the deletion rules apply: a stale sender's
 * pending messages are re-bound to the default sender or cancelled (sender_deleted), a purged
 * contact's provider records are queued for erasure, and each delete is in deletion_log.
 */

/** Section - stale senders */
-- The delete itself: the stale senders of the given workspaces, or of all (p_workspace_ids
-- null, for pg_cron and the service role).
create function herald.delete_stale_senders(p_older_than interval, p_workspace_ids uuid[] default null) returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_count integer;
begin
  if p_older_than is null or p_older_than < interval '0' then
    raise exception 'older_than must be a positive interval' using errcode = '22023';
  end if;
  if (select auth.uid()) is null then
    perform set_config('herald.actor', coalesce(nullif(current_setting('herald.actor', true), ''), 'cron'), true);
  end if;
  with gone as (
    delete from public.senders s
    where s.status <> 'connected' and s.phone_number is null
      and coalesce(s.last_seen_at, s.created_at) < now() - p_older_than
      and (p_workspace_ids is null or s.workspace_id = any (p_workspace_ids))
    returning 1
  ) select count(*) into v_count from gone;
  return v_count;
end;
$$;
comment on function herald.delete_stale_senders(interval, uuid[]) is 'Deletes the senders of the given workspaces (null: all) that are not connected, have no number and were not seen for p_older_than (pg_cron, hourly; cleanup_stale_senders()).';
-- Cron's and cleanup_stale_senders()'s: any other caller could clean up every workspace.
revoke execute on function herald.delete_stale_senders(interval, uuid[]) from public;

create function public.cleanup_stale_senders(older_than interval default '1 day') returns integer
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A user cleans up the workspaces she administers; the service role (a trusted back end)
  -- cleans up all of them. Anyone else is not signed in.
  if (select auth.role()) is distinct from 'service_role' then
    perform herald.require_user();
    return herald.delete_stale_senders(older_than, array(select herald.my_workspace_ids('admin')));
  end if;
  return herald.delete_stale_senders(older_than);
end;
$$;
comment on function public.cleanup_stale_senders(interval) is 'Deletes senders that are not connected and have no number, with their groups and campaign links; their pending messages are re-bound to the default sender or cancelled (sender_deleted).';
revoke execute on function public.cleanup_stale_senders(interval) from public, anon;
grant execute on function public.cleanup_stale_senders(interval) to authenticated, service_role;

/** Section - soft-deleted contacts past retention */
create function herald.purge_deleted_contacts(p_retention interval default '30 days') returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_actor text := coalesce(current_setting('herald.actor', true), '');
begin
  perform set_config('herald.actor', 'cron', true);
  with gone as (
    delete from public.contacts where deleted_at < now() - p_retention returning 1
  ) select count(*) into v_count from gone;
  perform set_config('herald.actor', v_actor, true);
  return v_count;
end;
$$;
comment on function herald.purge_deleted_contacts(interval) is 'Hard-deletes contacts soft-deleted longer ago than the retention period (pg_cron, daily).';
-- Cron's alone: any other caller could erase every workspace's soft-deleted contacts early.
revoke execute on function herald.purge_deleted_contacts(interval) from public;

/** Section - schedules */
select cron.schedule('herald-purge-deleted-contacts', '17 3 * * *', $$select herald.purge_deleted_contacts()$$);
select cron.schedule('herald-cleanup-stale-senders', '7 * * * *', $$select herald.delete_stale_senders('1 day')$$);
