-- TRUNCATE bypasses row level security: no client role may truncate any table or view in public,
-- including those added after this test was written.
begin;
select plan(3);

select is_empty($$
  select c.relname || ' (' || r.rolname || ')'
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  cross join (values ('anon'), ('authenticated')) r(rolname)
  where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
    and has_table_privilege(r.rolname, c.oid, 'TRUNCATE')
$$, 'anon and authenticated hold TRUNCATE on nothing in public');

select is_empty($$
  select d.defaclrole::regrole::text from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace
  cross join lateral aclexplode(d.defaclacl) a
  where n.nspname = 'public' and d.defaclobjtype = 'r' and a.privilege_type = 'TRUNCATE'
    and d.defaclrole = current_user::regrole -- the role that runs the migrations and owns the tables
    and a.grantee in ('anon'::regrole, 'authenticated'::regrole)
$$, 'and tables created later do not get it by default');

select tests.create_user('trunc_user');
select tests.authenticate_as('trunc_user');
select throws_ok('truncate public.contact_tags', '42501', null, 'a signed-in user cannot truncate a table');
select tests.clear_authentication();

select * from finish();
rollback;
