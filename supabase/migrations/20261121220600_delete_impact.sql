/**
 * What a delete would do, derived from the live catalog (seed 002 kept its cascade rules in a
 * document the schema did not follow). herald.delete_impact() walks pg_constraint from a row:
 * every foreign key that points at a row in the delete set either cascades (and the walk goes
 * on from those rows), sets columns null, or blocks. A foreign key added by a later migration
 * shows up here without touching this function. Used by preview_delete() and by the triggers
 * that write deletion_log, so the preview and the log can never disagree.
 */

-- One step of the walk: every foreign key referencing p_table, with the SQL that selects the
-- referencing rows of the rows selected by p_parent_sql. Recurses through cascades.
create function herald.delete_impact_walk(
  p_table regclass,
  p_parent_sql text,
  p_depth integer,
  inout p_paths jsonb
)
language plpgsql
set search_path = ''
as $$
declare
  fk record;
  v_child_sql text;
  v_key text;
begin
  if p_depth > 10 then
    raise exception 'delete_impact: foreign keys nest deeper than 10 levels from %', p_table using errcode = '54001';
  end if;
  for fk in
    select c.conrelid::regclass as child, c.confdeltype as action,
           (select string_agg(format('c.%I', a.attname), ', ' order by k.ord)
              from unnest(c.conkey) with ordinality k(attnum, ord)
              join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum) as child_cols,
           (select string_agg(format('p.%I', a.attname), ', ' order by k.ord)
              from unnest(c.confkey) with ordinality k(attnum, ord)
              join pg_catalog.pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.attnum) as parent_cols,
           (select string_agg(a.attname, ',' order by a.attnum)
              from pg_catalog.pg_attribute a
              where a.attrelid = c.conrelid and a.attnum = any (coalesce(c.confdelsetcols, c.conkey))) as set_cols
    from pg_catalog.pg_constraint c
    where c.contype = 'f' and c.confrelid = p_table
    order by c.conrelid::regclass::text, c.conname
  loop
    v_child_sql := format('select c.ctid as ctid, c.* from %s c where (%s) in (select %s from (%s) p)',
                          fk.child, fk.child_cols, fk.parent_cols, p_parent_sql);
    if fk.action = 'c' then
      v_key := fk.child::text;
      p_paths := jsonb_set(p_paths, array['cascade', v_key],
                           coalesce(p_paths -> 'cascade' -> v_key, '[]'::jsonb) || to_jsonb(v_child_sql));
      if fk.child <> p_table then
        select herald.delete_impact_walk(fk.child, v_child_sql, p_depth + 1, p_paths) into p_paths;
      end if;
    elsif fk.action in ('n', 'd') then
      v_key := fk.child::text || '.' || fk.set_cols;
      p_paths := jsonb_set(p_paths, array['set_null', v_key],
                           coalesce(p_paths -> 'set_null' -> v_key, '[]'::jsonb) || to_jsonb(v_child_sql));
    else
      v_key := fk.child::text;
      p_paths := jsonb_set(p_paths, array['blocked_by', v_key],
                           coalesce(p_paths -> 'blocked_by' -> v_key, '[]'::jsonb) || to_jsonb(v_child_sql));
    end if;
  end loop;
end;
$$;

-- Counts, per table, the rows a delete of p_table's row p_id would remove (cascade), the rows
-- it would change (set null) and the rows that would make it fail (blocked_by), each row once
-- however many paths reach it; and the pending messages and active enrollments among them,
-- which Herald's rules cancel first.
create function herald.delete_impact(p_table regclass, p_id uuid) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_paths jsonb := '{"cascade": {}, "set_null": {}, "blocked_by": {}}';
  v_root text := format('select t.ctid as ctid, t.* from %s t where t.id = %L', p_table, p_id);
  v_result jsonb := jsonb_build_object('cascade', '{}'::jsonb, 'set_null', '{}'::jsonb, 'blocked_by', '{}'::jsonb);
  v_key text;
  v_table text;
  v_queries jsonb;
  v_union text;
  v_deleted text;
  v_count bigint;
  v_affected_messages text := '';
begin
  select herald.delete_impact_walk(p_table, v_root, 1, v_paths) into v_paths;

  for v_key, v_queries in select * from jsonb_each(v_paths -> 'cascade') loop
    select string_agg(format('select ctid from (%s) q', q), ' union ') into v_union
    from jsonb_array_elements_text(v_queries) q;
    execute format('select count(*) from (%s) u', v_union) into v_count;
    v_result := jsonb_set(v_result, array['cascade', v_key], to_jsonb(v_count));
  end loop;

  -- Rows reached by set null or a blocking key do not count where the delete removes them anyway.
  for v_key, v_queries in select * from jsonb_each(v_paths -> 'set_null') union all
                          select * from jsonb_each(v_paths -> 'blocked_by') loop
    v_table := split_part(v_key, '.', 1) || '.' || split_part(v_key, '.', 2);
    select string_agg(format('select ctid from (%s) q', q), ' union ') into v_union
    from jsonb_array_elements_text(v_queries) q;
    select string_agg(format('select ctid from (%s) d', q), ' union ') into v_deleted
    from jsonb_array_elements_text(v_paths -> 'cascade' -> v_table) q;
    execute format('select count(*) from (%s) u %s', v_union,
                   case when v_deleted is null then '' else format('where u.ctid not in (%s)', v_deleted) end)
      into v_count;
    if v_count > 0 or v_paths -> 'set_null' ? v_key then
      v_result := jsonb_set(v_result,
                            array[case when v_paths -> 'set_null' ? v_key then 'set_null' else 'blocked_by' end, v_key],
                            to_jsonb(v_count));
    end if;
  end loop;

  -- Every pending message the delete touches is cancelled first (or, for a sender, re-bound).
  select string_agg(format('select ctid, status, workspace_id, enrollment_id, retry_of from (%s) q', q), ' union ')
    into v_affected_messages
  from (
    select jsonb_array_elements_text(v_paths -> 'cascade' -> 'public.messages') q
    union all
    select jsonb_array_elements_text(value) from jsonb_each(v_paths -> 'set_null') where key like 'public.messages.%'
  ) s;
  if p_table = 'public.messages'::regclass then
    v_affected_messages := concat_ws(' union ', v_affected_messages,
                                     format('select ctid, status, workspace_id, enrollment_id, retry_of from (%s) r', v_root));
  end if;
  v_count := 0;
  if v_affected_messages is not null and v_affected_messages <> '' then
    execute format('select count(*) from (%s) m where m.status in (''scheduled'', ''queued'')', v_affected_messages)
      into v_count;
  end if;
  v_result := v_result || jsonb_build_object('cancel', jsonb_build_object('messages', v_count));

  -- Active enrollments stop: those the delete removes, and those whose pending message it
  -- cancels (herald.advance_enrollments stops an enrollment when its message is cancelled).
  select string_agg(format('select q.id from (%s) q where q.status = ''active''', q), ' union ') into v_union
  from jsonb_array_elements_text(v_paths -> 'cascade' -> 'public.sequence_enrollments') q;
  if v_affected_messages is not null and v_affected_messages <> '' then
    v_union := concat_ws(' union ', v_union, format(
      'select e.id from public.sequence_enrollments e join (%s) m on m.workspace_id = e.workspace_id and m.enrollment_id = e.id '
      'where e.status = ''active'' and m.status in (''scheduled'', ''queued'') and m.retry_of is null', v_affected_messages));
  end if;
  v_count := 0;
  if v_union is not null and v_union <> '' then
    execute format('select count(*) from (%s) e', v_union) into v_count;
  end if;
  v_result := jsonb_set(v_result, '{cancel,sequence_enrollments}', to_jsonb(v_count));
  return v_result;
end;
$$;
comment on function herald.delete_impact(regclass, uuid) is 'Per table: rows a delete would cascade to, set null, or be blocked by; and the pending messages and active enrollments Herald would cancel. Walks pg_constraint, so it follows the live schema.';
