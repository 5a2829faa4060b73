-- The purge deletes exactly its batch (…_purge_exact_batches.sql): herald.purge_deleted_contacts
-- takes the batch's ids once, so no plan can purge past the limit. (The rescanning plan that did
-- showed up in one full run, a call limited to 100 purging 250; the planner settings below make
-- the other plans dear, but no setting found here forces that one, so this guards the counts
-- under a nested loop rather than reproducing it.)
begin;
select plan(3);

insert into workspaces (name) values ('Purge, exactly') returning id as ws \gset
insert into contacts (workspace_id, phone) select :'ws', '+1415777' || lpad(i::text, 4, '0') from generate_series(1, 250) i;
update contacts set deleted_at = now() - interval '40 days' where workspace_id = :'ws';
analyze contacts;

set local enable_hashjoin = off;
set local enable_mergejoin = off;
set local enable_hashagg = off;
set local enable_material = off;
select is(herald.purge_deleted_contacts('30 days', 100), 100, 'a call limited to 100 purges 100, whatever the plan');
select is(herald.purge_deleted_contacts('30 days', 1000, interval '0 seconds'), 100, 'one batch when the time budget is spent');
select is((select count(*)::int from contacts where workspace_id = :'ws'), 50, 'and the rest waits for the next call');

select * from finish();
rollback;
