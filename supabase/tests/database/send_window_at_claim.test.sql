-- Quiet hours and daily limits hold when a message is claimed and again right before it is sent,
-- not only when it is queued: a backlog queued before the window began is not sent at night.
begin;
select plan(10);
update workspaces set automation_enabled = false;

-- Quiet now, in UTC: from an hour ago to an hour from now.
insert into workspaces (name, quiet_hours_start, quiet_hours_end)
values ('Night', (now() - interval '1 hour')::time, (now() + interval '1 hour')::time) returning id as wq \gset
insert into workspaces (name, quiet_hours_start, quiet_hours_end, daily_limit) values ('Limited', '00:00', '00:00', 1) returning id as wl \gset
insert into workspaces (name, quiet_hours_start, quiet_hours_end) values ('Evening falls', '00:00', '00:00') returning id as we \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values
  (:'wq', 'sms', '+15557773001', 'connected', 100, true), (:'wl', 'sms', '+15557773002', 'connected', 100, true),
  (:'we', 'sms', '+15557773003', 'connected', 100, true);
insert into contacts (workspace_id, phone) values (:'wq', '+14157773001') returning id as cq \gset
insert into contacts (workspace_id, phone) values (:'wl', '+14157773002') returning id as cl \gset
insert into contacts (workspace_id, phone) values (:'we', '+14157773003') returning id as ce \gset
-- Queued earlier (a backlog, a paused workspace resumed, a dispatcher outage).
insert into messages (workspace_id, contact_id, body, send_at, status) values (:'wq', :'cq', 'at night?', now() - interval '2 hours', 'queued') returning id as mq \gset
-- The limit of 1 is used by a message sent today.
insert into messages (workspace_id, contact_id, body, send_at, status, sent_at) values (:'wl', :'cl', 'sent', now() - interval '1 minute', 'sent', now());
insert into messages (workspace_id, contact_id, body, send_at, status) values (:'wl', :'cl', 'over the limit', now() - interval '1 minute', 'queued') returning id as ml \gset
insert into messages (workspace_id, contact_id, body, send_at, status) values (:'we', :'ce', 'just in time', now() - interval '1 minute', 'queued') returning id as me \gset

create temp table c1 as select * from herald.claim_messages(100);
select results_eq('select message_id from c1', format($$ values (%L::uuid) $$, :'me'), 'the claim takes only the message whose window is open');
select results_eq(format($$ select status::text, send_at > now() from messages where id = %L $$, :'mq'), $$ values ('scheduled', true) $$,
  'the one in quiet hours is deferred past them');
select is((select reason from message_events where message_id = :'mq' order by id desc limit 1), 'quiet_hours', 'with reason quiet_hours');
select results_eq(format($$ select status::text, send_at > now() from messages where id = %L $$, :'ml'), $$ values ('scheduled', true) $$,
  'the one over the daily limit is deferred');
select is((select reason from message_events where message_id = :'ml' order by id desc limit 1), 'daily_limit', 'with reason daily_limit');

-- Claimed in the open window; quiet hours begin while it waits for its slot.
update workspaces set quiet_hours_start = (now() - interval '1 hour')::time, quiet_hours_end = (now() + interval '1 hour')::time where id = :'we';
create temp table v1 as select * from herald.confirm_send(array[:'me'::uuid], array[1]);
select results_eq('select verdict, reason from v1', $$ values ('deferred'::text, 'quiet_hours'::text) $$,
  'the confirmation right before sending defers it');
select results_eq(format($$ select status::text, attempts, lease_expires_at is null from messages where id = %L $$, :'me'),
  $$ values ('scheduled', 0, true) $$, 'back to scheduled, the attempt not spent');
select is((select count(*)::int from message_attempts where message_id = :'me'), 0, 'and its attempt row gone');
-- The daily limit at the confirmation: another message sent meanwhile used the day.
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00', daily_limit = 1 where id = :'we';
update messages set status = 'queued', send_at = now() - interval '1 second' where id = :'me';
create temp table c2 as select * from herald.claim_messages(100);
insert into messages (workspace_id, contact_id, body, send_at, status, sent_at) values (:'we', :'ce', 'sent meanwhile', now(), 'sent', now());
create temp table v2 as select * from herald.confirm_send(array[:'me'::uuid], array[1]);
select results_eq('select verdict, reason from v2', $$ values ('deferred'::text, 'daily_limit'::text) $$,
  'a day used up meanwhile defers it at the confirmation too');
select is((select status::text from messages where id = :'me'), 'scheduled', 'to the next day');

select * from finish();
rollback;
