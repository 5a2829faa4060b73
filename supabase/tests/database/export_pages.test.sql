-- export-queue reads one workspace at a time in pages keyed on (send_at, id). With
-- messages_workspace_send_at_idx a page is a range scan of the index that stops after the page's
-- rows; without it each page sorted every remaining row of the workspace.
begin;
select plan(4);

select has_index('public', 'messages', 'messages_workspace_send_at_idx', array['workspace_id', 'send_at', 'id'],
  'messages are indexed in export order within a workspace');

-- Five workspaces of 600 messages each.
insert into workspaces (name) select 'Export ' || i from generate_series(1, 5) i;
insert into contacts (workspace_id, phone)
select w.id, '+1415888' || lpad(row_number() over ()::text, 4, '0') from workspaces w where w.name like 'Export %';
insert into messages (workspace_id, contact_id, body, send_at, status)
select c.workspace_id, c.id, 'page me', now() + g * interval '1 minute', 'scheduled'
from contacts c cross join generate_series(1, 600) g where c.phone like '+1415888%';
-- No analyze here: its row estimates outlive a rollback and would mislead the planner in every
-- later test on this cluster. Sequential and bitmap scans are off instead, so the plan shows
-- whether an index serves the page in its order: without one on (workspace_id, send_at, id) it
-- would need a Sort.
set local enable_seqscan = off;
set local enable_bitmapscan = off;
select id as ws from workspaces where name = 'Export 3' \gset

-- The page query of export-queue, second page on: the workspace, the key of the last row read.
select tests.plan_of(format($$
  select m.id from public.messages m
  where m.workspace_id = %L and (m.send_at, m.id) > (now() + interval '50 minutes', '00000000-0000-0000-0000-000000000000'::uuid)
  order by m.send_at, m.id limit 500 $$, :'ws')) as page_plan \gset

select matches(:'page_plan'::text, 'Index (Only )?Scan using messages_workspace_send_at_idx'::text,
  'a page is read from the index');
select doesnt_match(:'page_plan'::text, 'Sort'::text, 'with no sort of the workspace''s rows');
select is((select count(*)::int from (
  select m.id from public.messages m
  where m.workspace_id = :'ws' and (m.send_at, m.id) > (now() + interval '50 minutes', '00000000-0000-0000-0000-000000000000'::uuid)
  order by m.send_at, m.id limit 500) page), 500, 'and holds a full page');

select * from finish();
rollback;
