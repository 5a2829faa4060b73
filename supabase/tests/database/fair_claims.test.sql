-- Claims interleave workspaces: a workspace's backlog on a fast sender does not fill every batch
-- while another workspace's due message waits behind all of it.
begin;
select plan(3);
-- Only these workspaces' messages are due in this test.
update workspaces set automation_enabled = false;

insert into workspaces (name, quiet_hours_start, quiet_hours_end) values ('Backlog', '00:00', '00:00') returning id as wa \gset
insert into workspaces (name, quiet_hours_start, quiet_hours_end) values ('One code', '00:00', '00:00') returning id as wb \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'wa', 'sms', '+15557772001', 'connected', 1000, true);
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'wb', 'sms', '+15557772002', 'connected', 1, true);
insert into contacts (workspace_id, phone) select :'wa', '+1415777' || lpad(i::text, 4, '0') from generate_series(1, 300) i;
insert into contacts (workspace_id, phone) values (:'wb', '+14157779999') returning id as cb \gset
-- The backlog is older than the other workspace's message.
insert into messages (workspace_id, contact_id, body, send_at, status)
select :'wa', id, 'backlog', now() - interval '1 hour', 'queued' from contacts where workspace_id = :'wa';
insert into messages (workspace_id, contact_id, body, send_at, status)
values (:'wb', :'cb', 'your code is 1234', now() - interval '1 second', 'queued') returning id as code \gset

create temp table c1 as select * from herald.claim_messages(100);
select ok((select count(*) from c1 where message_id = :'code') = 1, 'the first claim takes the other workspace''s message');
select is((select count(*)::int from c1), 100, 'and still fills the batch from the backlog');
select is((select count(distinct workspace_id)::int from c1), 2, 'both workspaces are in it');

select * from finish();
rollback;
