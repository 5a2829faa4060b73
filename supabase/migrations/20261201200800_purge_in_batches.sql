/**
 * The purge of soft-deleted contacts, in batches.
 *
 * purge_deleted_contacts() hard-deleted every contact past retention in one transaction: 2,000
 * contacts took 20 s, 100,000 would hold their locks for many minutes, and a run killed near the
 * end lost all of its work. Now each call deletes at most p_limit contacts, in batches of 100
 * taken with skip locked (oldest soft delete first), and stops after the batch that spends its time
 * budget; the next call carries on where it stopped. pg_cron calls it every ten minutes, so a
 * large backlog drains in bounded steps and a day's deletions are gone the same day.
 */
drop function herald.purge_deleted_contacts(interval);
create function herald.purge_deleted_contacts(
  p_retention interval default '30 days',
  p_limit integer default 2000,
  p_time_budget interval default '20 seconds'
) returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  c_batch constant integer := 100;
  v_started timestamptz := clock_timestamp();
  v_batch integer;
  v_count integer := 0;
  v_actor text := coalesce(current_setting('herald.actor', true), '');
begin
  if p_retention is null or p_retention < interval '0' then
    raise exception 'retention must be a positive interval' using errcode = '22023';
  end if;
  if p_limit is null or p_limit < 1 then
    raise exception 'limit must be at least 1' using errcode = '22023';
  end if;
  perform set_config('herald.actor', 'cron', true);
  loop
    with gone as (
      delete from public.contacts c
      where c.id in (select x.id from public.contacts x
                     where x.deleted_at < now() - p_retention
                     order by x.deleted_at
                     limit least(c_batch, p_limit - v_count)
                     for update skip locked)
      returning 1
    ) select count(*) into v_batch from gone;
    v_count := v_count + v_batch;
    exit when v_batch = 0 or v_count >= p_limit or clock_timestamp() - v_started >= coalesce(p_time_budget, interval '0');
  end loop;
  perform set_config('herald.actor', v_actor, true);
  return v_count;
end;
$$;
comment on function herald.purge_deleted_contacts(interval, integer, interval) is 'Hard-deletes contacts soft-deleted longer ago than the retention period, at most p_limit per call, in batches of 100 until the time budget is spent; the next call carries on (pg_cron, every ten minutes).';
-- Cron's alone: any other caller could erase every workspace's soft-deleted contacts early.
revoke execute on function herald.purge_deleted_contacts(interval, integer, interval) from public;

select cron.schedule('herald-purge-deleted-contacts', '*/10 * * * *', $$select herald.purge_deleted_contacts()$$);
