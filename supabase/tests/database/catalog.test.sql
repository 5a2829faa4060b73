-- Catalog-wide rules that no single feature test would catch: they hold for every table,
-- including tables added after this test was written.
begin;
select plan(5);

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

select * from finish();
rollback;
