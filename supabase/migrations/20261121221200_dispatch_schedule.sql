/**
 * Scheduling the dispatcher from the database, as Supabase documents for invoking an edge
 * function from pg_cron: pg_net posts to /functions/v1/dispatch with the service role key read
 * from Vault. On hosted Supabase (pg_cron 1.6) it runs every 10 seconds.
 *
 * Where pg_net is not available (the local stack: it is neither in Debian nor on npm) this
 * migration does nothing harmful: it schedules nothing and says so; `npm start` calls dispatch on
 * the same cadence instead. Everything that touches pg_net or Vault is created through EXECUTE
 * inside the branch that has them, so the schema still lints where they are absent.
 *
 * To enable on a project, store two secrets once (SQL editor):
 *   select vault.create_secret('https://<project-ref>.supabase.co/functions/v1', 'herald_functions_url');
 *   select vault.create_secret('<service role key>', 'herald_service_role_key');
 */
do $migration$
declare
  -- extversion may carry a packaging suffix (Debian: 1.4-1): compare major.minor only.
  v_cron_version integer[] := (select (regexp_match(extversion, '^(\d+)\.(\d+)'))::integer[] from pg_catalog.pg_extension where extname = 'pg_cron');
begin
  if not exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_net')
     or not exists (select 1 from pg_catalog.pg_namespace where nspname = 'vault') then
    raise notice 'herald: pg_net or Vault is not available here, so dispatch is not scheduled in the database; call POST /functions/v1/dispatch on a schedule instead (npm start does).';
    return;
  end if;

  create extension if not exists pg_net with schema extensions;

  execute $fn$
    create or replace function herald.invoke_dispatch() returns bigint
    language plpgsql
    security definer
    set search_path = ''
    as $body$
    declare
      v_url text;
      v_key text;
    begin
      select decrypted_secret into v_url from vault.decrypted_secrets where name = 'herald_functions_url';
      select decrypted_secret into v_key from vault.decrypted_secrets where name = 'herald_service_role_key';
      if v_url is null or v_key is null then
        raise warning 'herald: store the Vault secrets herald_functions_url and herald_service_role_key to let pg_cron run dispatch';
        return null;
      end if;
      return net.http_post(
        url := rtrim(v_url, '/') || '/dispatch',
        headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || v_key),
        body := '{}'::jsonb,
        timeout_milliseconds := 60000
      );
    end;
    $body$
  $fn$;
  execute 'revoke execute on function herald.invoke_dispatch() from public, authenticated';
  execute 'comment on function herald.invoke_dispatch() is ''pg_cron: POST /functions/v1/dispatch through pg_net with the service role key from Vault.''';

  -- Sub-minute schedules came with pg_cron 1.5.
  perform cron.schedule('herald-dispatch',
                        case when v_cron_version >= array[1, 5] then '10 seconds' else '* * * * *' end,
                        'select herald.invoke_dispatch()');
end
$migration$;
