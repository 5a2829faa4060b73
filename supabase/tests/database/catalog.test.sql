-- Catalog-wide rules that no single feature test would catch: they hold for every table and
-- every RPC, including those added after this test was written.
begin;
select plan(13);

select is_empty($$
  select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity
$$, 'RLS is enabled on every table in public');

select is_empty($$
  select c.conrelid::regclass || '.' || a.attname
  from pg_constraint c
  join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (coalesce(c.confdelsetcols, c.conkey))
  where c.contype = 'f' and c.confdeltype = 'n' and a.attnotnull
$$, 'no foreign key sets null on a not-null column (deleting the parent would fail)');

select is_empty($$
  select c.conrelid::regclass || '.' || a.attname
  from pg_constraint c
  join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
  where c.contype = 'f' and c.confupdtype = 'n' and a.attnotnull
$$, 'no foreign key sets null on update on a not-null column');

-- Every *_id column in Herald's schemas is a foreign key, or says in its comment why it is not.
select is_empty($$
  select n.nspname || '.' || c.relname || '.' || a.attname
  from pg_attribute a
  join pg_class c on c.oid = a.attrelid
  join pg_namespace n on n.oid = c.relnamespace
  where n.nspname in ('public', 'herald') and c.relkind in ('r', 'p')
    and a.attnum > 0 and not a.attisdropped and a.attname like '%\_id'
    and not exists (
      select 1 from pg_constraint k
      where k.conrelid = c.oid and k.contype = 'f' and a.attnum = any (k.conkey)
    )
    and coalesce(col_description(c.oid, a.attnum), '') !~* 'no foreign key'
$$, 'every *_id column has a foreign key or a comment saying why not');

-- Every foreign key is backed by an index whose leading columns are the key (deletes cascade fast).
select is_empty($$
  select k.conrelid::regclass || ' (' || k.conname || ')'
  from pg_constraint k
  join pg_namespace n on n.oid = (select relnamespace from pg_class where oid = k.conrelid)
  where k.contype = 'f' and n.nspname in ('public', 'herald')
    and not exists (
      select 1 from pg_index i
      where i.indrelid = k.conrelid
        and (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] @> k.conkey
        and (i.indkey::int2[])[0:array_length(k.conkey, 1) - 1] <@ k.conkey
    )
$$, 'every foreign key has an index starting with its columns');

-- One updated_at mechanism: a table with the column keeps it current with exactly one
-- moddatetime(updated_at) trigger before each row update (herald_setup says why moddatetime).
select is_empty($$
  select c.oid::regclass::text
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid and a.attname = 'updated_at' and not a.attisdropped
  where n.nspname in ('public', 'herald') and c.relkind in ('r', 'p')
    and (select count(*) from pg_trigger t
         where t.tgrelid = c.oid and not t.tgisinternal and t.tgfoid = 'extensions.moddatetime'::regproc
           and t.tgtype & (1 | 2 | 16) = (1 | 2 | 16) and t.tgargs = 'updated_at\000'::bytea) <> 1
$$, 'every table with updated_at keeps it current the one way: a moddatetime(updated_at) trigger before each row update');
select cmp_ok((select count(*)::int from pg_attribute a join pg_class c on c.oid = a.attrelid
           where c.relnamespace in ('public'::regnamespace, 'herald'::regnamespace) and c.relkind = 'r'
             and a.attname = 'updated_at' and not a.attisdropped), '>=', 8,
  'which covers at least Herald''s eight tables with updated_at');

/** Section - who may call what */
-- A client calls a function in herald only where it runs in her own context: the policies
-- (my_workspace_ids), what her tables' constraints, defaults and views call (from pg_depend), membership questions about
-- herself (has_role), and the status groups the views she reads are built from. Everything else
-- there runs as its owner, from Herald's RPCs, triggers and jobs, or as the service role. In
-- public, anon calls nothing (none is listed). Extensions' functions are not Herald's and are
-- left out.
create temp table member_callable (proname name primary key);
-- check_violation and normalize_keyword run inside triggers that fire as the member (the
-- generated check-violation triggers, the workspace keyword trigger); placeholder_pattern inside
-- placeholders_valid, which a check constraint calls.
insert into member_callable values ('check_violation'), ('normalize_keyword'), ('placeholder_pattern');
insert into member_callable values ('my_workspace_ids'), ('is_iana_time_zone'), ('has_role'), ('pending_statuses'),
  ('in_flight_statuses'), ('final_statuses'), ('sent_statuses'), ('delivered_statuses'), ('failed_statuses');
select is_empty($$
  select p.oid::regprocedure::text, r.role
  from pg_proc p
  cross join (values ('anon'), ('authenticated')) r(role)
  where p.pronamespace = 'herald'::regnamespace and has_function_privilege(r.role, p.oid, 'execute')
    and not (r.role = 'authenticated' and p.proname in (select proname from member_callable))
    -- what a public table's defaults, generated columns and check constraints, or a view, call
    -- runs as the member who writes or reads: derived from the catalog, never listed by hand
    and not (r.role = 'authenticated' and exists (
      select 1 from pg_depend d
      where d.refclassid = 'pg_proc'::regclass and d.refobjid = p.oid
        and d.classid in ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_rewrite'::regclass)))
    and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
$$, 'no function in herald is executable by anon, nor by authenticated unless it is listed as one members need');
select is_empty($$
  select p.oid::regprocedure::text
  from pg_proc p
  where p.pronamespace = 'public'::regnamespace and has_function_privilege('anon', p.oid, 'execute')
    and p.proname <> all ('{}'::name[])
    and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
$$, 'no function in public is executable by anon');
select is_empty($$
  select m.proname from member_callable m
  where not exists (select 1 from pg_proc p where p.pronamespace = 'herald'::regnamespace and p.proname = m.proname
                    and has_function_privilege('authenticated', p.oid, 'execute'))
$$, 'and those listed are, or members could not read or write anything');

/** Section - no RPC answers a caller without a user */
-- Every function in public is an RPC (the API exposes them all). Each one the catalog lists, so
-- a new one is covered without editing this test, is called by callers without a user: the
-- database owner with no JWT, `authenticated` with a token that has no sub, and anon; once with
-- every argument null and once with a plausible value of each argument's type. Each call must
-- stop at 42501 before it looks anything up or checks any argument: "not signed in", or for
-- anon, which may not call RPCs at all, permission denied.
create temp table rpc_calls (rpc text, caller text, call text, sqlstate text, message text);
do $$
declare
  f record;
  v_args text;
  v_caller text;
  v_call text;
  v_state text;
  v_message text;
begin
  for f in
    select p.proname,
           coalesce(string_agg(format('null::%s', format_type(a.t, null)), ', ' order by a.n), '') as nulls,
           coalesce(string_agg(format('(%s)::%s', case format_type(a.t, null)
                                        when 'uuid' then 'gen_random_uuid()' when 'text' then $v$'x'$v$
                                        when 'interval' then $v$'1 day'$v$ when 'boolean' then 'true'
                                        when 'date' then 'current_date' when 'timestamp with time zone' then 'now()'
                                        when 'integer' then '1' when 'jsonb' then $v$'{}'$v$ else 'null' end,
                                      format_type(a.t, null)), ', ' order by a.n), '') as values
    from pg_proc p
    left join lateral unnest(p.proargtypes::oid[]) with ordinality a(t, n) on true
    where p.pronamespace = 'public'::regnamespace and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype
      and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
    group by p.oid, p.proname
  loop
    foreach v_args in array array[f.nulls, f.values] loop
      foreach v_caller in array array['postgres', 'authenticated', 'anon'] loop
        v_call := format('select public.%I(%s)', f.proname, v_args);
        v_state := null;
        v_message := null;
        begin
          perform set_config('role', v_caller, true);
          perform set_config('request.jwt.claims', case when v_caller = 'postgres' then '' else json_build_object('role', v_caller)::text end, true);
          execute v_call;
          perform set_config('role', 'postgres', true);
          perform set_config('request.jwt.claims', '', true);
        exception when others then
          get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
        end;
        insert into rpc_calls values (f.proname, v_caller, v_call, v_state, v_message);
      end loop;
    end loop;
  end loop;
end;
$$;
select cmp_ok((select count(distinct rpc)::int from rpc_calls), '>=', 13, 'every RPC in public was called (13 or more)');
select is_empty($$ select rpc, caller, call, coalesce(sqlstate, 'success'), message from rpc_calls
                   where caller <> 'anon' and (sqlstate, message) is distinct from ('42501', 'not signed in') $$,
  'without a user every RPC raises 42501 "not signed in", before any lookup, whatever its arguments');
select is_empty($$ select rpc, call, coalesce(sqlstate, 'success'), message from rpc_calls
                   where caller = 'anon' and sqlstate is distinct from '42501' $$,
  'and anon may not call any of them (42501)');

select * from finish();
rollback;
