-- The purge of soft-deleted contacts runs in bounded batches: each call deletes at most its limit
-- and stops once its time budget is spent, and the next call carries on where it stopped (a run
-- cut short loses nothing but its own batch).
begin;
select plan(6);

insert into workspaces (name) values ('Purge') returning id as ws \gset
insert into contacts (workspace_id, phone) select :'ws', '+1415888' || lpad(i::text, 4, '0') from generate_series(1, 250) i;
update contacts set deleted_at = now() - interval '40 days' where workspace_id = :'ws';
insert into contacts (workspace_id, phone) values (:'ws', '+14158889999') returning id as keep \gset
update contacts set deleted_at = now() - interval '1 day' where id = :'keep';

select is(herald.purge_deleted_contacts('30 days', 100), 100, 'a call deletes at most its limit');
select is((select count(*)::int from contacts where workspace_id = :'ws'), 151, 'and leaves the rest for the next call');
select is(herald.purge_deleted_contacts('30 days', 1000, interval '0 seconds'), 100,
  'a spent time budget ends the call after one batch');
select is(herald.purge_deleted_contacts('30 days', 1000), 50, 'the next call carries on');
select is(herald.purge_deleted_contacts('30 days', 1000), 0, 'until nothing past retention is left');
select is((select count(*)::int from deletion_log where workspace_id = :'ws' and mode = 'hard'), 250, 'each purged contact is logged');

select * from finish();
rollback;
