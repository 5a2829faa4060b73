/**
 * The purge of soft-deleted contacts deletes exactly its batch. It deleted
 * `where id in (select … limit 100 for update skip locked)`, and a plan that ran that subquery
 * once per contact scanned (a nested loop, which the planner picks on some statistics) got another
 * 100 rows on every rescan, each batch's own deletions being skipped as locked: a call limited to
 * 100 purged every contact past retention, whatever its limit and time budget. The batch's ids
 * are now taken first, once, and the delete is of those ids.
 */

create or replace function herald.purge_deleted_contacts(
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
  v_ids uuid[];
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
    select array_agg(x.id) into v_ids from (
      select c.id from public.contacts c
      where c.deleted_at < now() - p_retention
      order by c.deleted_at
      limit least(c_batch, p_limit - v_count)
      for update skip locked
    ) x;
    with gone as (
      delete from public.contacts c where c.id = any (coalesce(v_ids, '{}'))
      returning 1
    ) select count(*) into v_batch from gone;
    v_count := v_count + v_batch;
    exit when v_batch = 0 or v_count >= p_limit or clock_timestamp() - v_started >= coalesce(p_time_budget, interval '0');
  end loop;
  perform set_config('herald.actor', v_actor, true);
  return v_count;
end;
$$;
