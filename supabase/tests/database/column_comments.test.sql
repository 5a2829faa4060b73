-- Everything an app developer reads carries a comment: every table and view in public, and every
-- column of them. Catalog-wide, so a table or column added by a later migration without one fails.
begin;
select plan(2);

select is_empty($$
  select c.relname
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
    and coalesce(obj_description(c.oid, 'pg_class'), '') = ''
  order by 1
$$, 'every public table and view has a comment');

select is_empty($$
  select c.relname || '.' || a.attname
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  join pg_attribute a on a.attrelid = c.oid
  where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f')
    and a.attnum > 0 and not a.attisdropped
    and coalesce(col_description(c.oid, a.attnum), '') = ''
  order by 1
$$, 'every column of every public table and view has a comment');

select * from finish();
rollback;
