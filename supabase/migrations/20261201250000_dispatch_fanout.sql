/**
 * Dispatch sized by the work. pg_cron posted one dispatcher call every 10 seconds and a call
 * claimed one batch: however many senders a project had and however fast they were, the whole
 * project sent about 20 messages a second. Now:
 *
 *   - herald.dispatch_fanout says how many dispatcher calls the due backlog needs: what each
 *     sender can send within one call's time budget (its due queued messages, counted in
 *     segments against its mps, so a sender never asks for more than its rate can use), summed,
 *     divided by what one call is sized to send in its budget, capped by a maximum, less the
 *     calls still running;
 *   - the pg_cron job (herald.invoke_dispatch, where pg_net and Vault exist) posts that many
 *     requests at once, and the local stack runner asks the same function and makes the same
 *     number of calls, so the local figure is the hosted one;
 *   - each call keeps claiming and sending until its time budget or no work is left, registered
 *     in herald.dispatch_runs while it runs (herald.begin_dispatch_run / end_dispatch_run), so
 *     the next tick counts it instead of posting a second generation on top of it.
 *
 * The three numbers are one row of herald.dispatch_settings, changed with plain SQL as the
 * project owner (update herald.dispatch_settings set max_calls = 40). The budget stays well
 * inside Supabase's edge function limits (150 s request idle timeout, 150 s wall clock on the free
 * plan): a call claims until its budget ends, its last claims reserving send slots at most 5 s past
 * it (half the shortest lease), and answers once it has sent what it holds.
 */

/** Section - settings */
create table herald.dispatch_settings (
  id boolean primary key default true constraint dispatch_settings_one_row check (id),
  call_budget interval not null default '60 seconds'
    constraint dispatch_settings_call_budget_range check (call_budget between interval '1 second' and interval '120 seconds'),
  call_rate numeric not null default 50
    constraint dispatch_settings_call_rate_range check (call_rate > 0 and call_rate <= 10000),
  max_calls integer not null default 20
    constraint dispatch_settings_max_calls_range check (max_calls between 1 and 500)
);
insert into herald.dispatch_settings default values;
alter table herald.dispatch_settings enable row level security;
comment on table herald.dispatch_settings is 'How dispatch fans out (one row): each call''s time budget, the send rate one call is sized for, and the most calls at once. Change it with SQL as the project owner.';
comment on column herald.dispatch_settings.id is 'Always true: the table holds one row.';
comment on column herald.dispatch_settings.call_budget is 'How long one dispatcher call keeps claiming and sending (1 to 120 seconds; Supabase answers 504 to a request still running at 150 s). Also the window herald.dispatch_fanout sizes for.';
comment on column herald.dispatch_settings.call_rate is 'Messages per second one dispatcher call is sized to send: its 32 concurrent provider calls over Twilio''s latency, and the function''s CPU time per request, bound it.';
comment on column herald.dispatch_settings.max_calls is 'The most dispatcher calls running at once, whatever the backlog: each holds up to HERALD_DB_POOL_SIZE database connections.';

/** Section - running calls */
create table herald.dispatch_runs (
  id uuid primary key default gen_random_uuid(),
  started_at timestamptz not null default now(),
  claims_until timestamptz not null
);
create index dispatch_runs_claims_until_idx on herald.dispatch_runs (claims_until);
alter table herald.dispatch_runs enable row level security;
comment on table herald.dispatch_runs is 'Dispatcher calls running now, each from its start to its end; a call that dies leaves its row, which stops counting when its budget is over.';
comment on column herald.dispatch_runs.claims_until is 'When the call''s time budget ends: it claims nothing after it.';

create function herald.begin_dispatch_run(p_budget interval default null)
returns table (run_id uuid, budget interval)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_budget interval := coalesce(p_budget, (select s.call_budget from herald.dispatch_settings s));
begin
  if v_budget is null then
    raise exception 'herald.dispatch_settings has no row' using errcode = '55000',
      hint = 'insert into herald.dispatch_settings default values';
  end if;
  if v_budget < interval '0' or v_budget > interval '120 seconds' then
    raise exception 'a dispatch call''s budget must be between 0 and 120 seconds, not %', v_budget
      using errcode = '22023', hint = 'Supabase answers 504 to a request still running after 150 seconds.';
  end if;
  -- Rows of calls that died long ago; they stopped counting when their budget ended.
  delete from herald.dispatch_runs r where r.claims_until < now() - interval '1 hour';
  insert into herald.dispatch_runs (claims_until) values (now() + v_budget) returning id into run_id;
  budget := v_budget;
  return next;
end;
$$;
comment on function herald.begin_dispatch_run(interval) is 'A dispatcher call starts: registers it until its budget ends (the given one, else dispatch_settings.call_budget; 0 = one claim) and returns its id and budget.';
revoke execute on function herald.begin_dispatch_run(interval) from public, anon, authenticated;
grant execute on function herald.begin_dispatch_run(interval) to service_role;

create function herald.end_dispatch_run(p_run_id uuid) returns boolean
language sql
security definer
set search_path = ''
as $$
  with gone as (delete from herald.dispatch_runs r where r.id = p_run_id returning 1)
  select exists (select 1 from gone)
$$;
comment on function herald.end_dispatch_run(uuid) is 'A dispatcher call is over: it no longer counts as running. False if it was not registered (or expired long ago).';
revoke execute on function herald.end_dispatch_run(uuid) from public, anon, authenticated;
grant execute on function herald.end_dispatch_run(uuid) to service_role;

/** Section - the fan-out */
create function herald.dispatch_fanout(p_every interval default '10 seconds')
returns table (calls integer, needed integer, running integer, sendable integer, call_budget interval)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_settings herald.dispatch_settings;
  v_budget_s numeric;
begin
  if p_every is null or p_every < interval '1 second' or p_every > interval '1 hour' then
    raise exception 'the caller''s cadence must be between 1 second and 1 hour, not %', coalesce(p_every::text, 'null')
      using errcode = '22023', hint = 'Pass how often you ask, e.g. interval ''10 seconds'' for the pg_cron job.';
  end if;
  select * into v_settings from herald.dispatch_settings;
  if not found then
    raise exception 'herald.dispatch_settings has no row' using errcode = '55000',
      hint = 'insert into herald.dispatch_settings default values';
  end if;
  v_budget_s := extract(epoch from v_settings.call_budget);
  call_budget := v_settings.call_budget;

  -- What each sender can send within one budget: its due queued messages, oldest first, as long
  -- as their segments fit in mps × budget (a WhatsApp message is one, whatever its length). More
  -- calls cannot make a sender faster, so its share stops there; the per-sender limit keeps the
  -- scan short however long the backlog.
  select coalesce(sum(w.n), 0)::integer into sendable
  from public.senders se
  join public.workspaces ws on ws.id = se.workspace_id
  cross join lateral (
    select count(*) filter (where d.spent <= se.mps * v_budget_s) as n
    from (
      select sum(case when m.channel = 'whatsapp' then 1 else m.segments end)
               over (order by m.send_at rows unbounded preceding) as spent
      from public.messages m
      where m.sender_id = se.id and m.status = 'queued' and m.send_at <= now()
      order by m.send_at
      limit ceil(se.mps * v_budget_s)::integer
    ) d
  ) w
  where ws.automation_enabled and se.phone_number is not null;

  needed := least(v_settings.max_calls, ceil(sendable / (v_settings.call_rate * v_budget_s)))::integer;
  -- A call still claiming at the caller's next tick does this tick's work; one ending before it
  -- is replaced now, so the senders do not wait a tick between generations.
  running := (select count(*) from herald.dispatch_runs r where r.claims_until > now() + p_every)::integer;
  calls := greatest(0, needed - running);
  return next;
end;
$$;
comment on function herald.dispatch_fanout(interval) is 'How many dispatcher calls to start now: due queued messages each sender can send within one call budget (segments against its mps), summed, over what one call sends in its budget (call_rate × call_budget), capped by max_calls, less the calls still claiming at the caller''s next tick (p_every).';
revoke execute on function herald.dispatch_fanout(interval) from public, anon, authenticated;
grant execute on function herald.dispatch_fanout(interval) to service_role;

/** Section - the pg_cron job posts the fan-out */
-- As in …_dispatch_schedule.sql: only where pg_net and Vault exist (hosted Supabase), created
-- through EXECUTE so the schema lints without them. Same signature and job; the function now
-- posts as many requests as herald.dispatch_fanout says (the job's own schedule is the cadence)
-- and returns how many it posted.
do $migration$
begin
  if not exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_net')
     or not exists (select 1 from pg_catalog.pg_namespace where nspname = 'vault') then
    raise notice 'herald: pg_net or Vault is not available here; the stack runner posts the fan-out instead (npm start).';
    return;
  end if;

  execute $fn$
    create or replace function herald.invoke_dispatch() returns bigint
    language plpgsql
    security definer
    set search_path = ''
    as $body$
    declare
      v_url text;
      v_key text;
      v_every interval;
      v_calls integer;
      v_budget interval;
    begin
      select decrypted_secret into v_url from vault.decrypted_secrets where name = 'herald_functions_url';
      select decrypted_secret into v_key from vault.decrypted_secrets where name = 'herald_service_role_key';
      if v_url is null or v_key is null then
        raise warning 'herald: store the Vault secrets herald_functions_url and herald_service_role_key to let pg_cron run dispatch';
        return null;
      end if;
      -- '10 seconds' on pg_cron 1.5 and later; a cron expression (every minute) before.
      v_every := coalesce((select j.schedule::interval from cron.job j
                           where j.jobname = 'herald-dispatch' and j.schedule ~ '^\d+ seconds?$'), interval '1 minute');
      select f.calls, f.call_budget into v_calls, v_budget from herald.dispatch_fanout(v_every) f;
      for i in 1 .. v_calls loop
        -- The call answers when its budget is over (and its last sends are recorded): wait for it.
        perform net.http_post(
          url := rtrim(v_url, '/') || '/dispatch',
          headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || v_key),
          body := '{}'::jsonb,
          timeout_milliseconds := ((extract(epoch from v_budget) + 30) * 1000)::integer
        );
      end loop;
      return v_calls;
    end;
    $body$
  $fn$;
  execute 'revoke execute on function herald.invoke_dispatch() from public, authenticated';
  execute 'comment on function herald.invoke_dispatch() is ''pg_cron: POST /functions/v1/dispatch through pg_net, as many times at once as herald.dispatch_fanout says, with the service role key from Vault; returns how many requests it posted.''';
end
$migration$;
