-- herald.claim_messages: which due messages a dispatcher takes, and on what terms. Each section
-- uses workspaces of its own; automation is switched off for every earlier workspace at the start
-- of each, so only that section's messages are due.
begin;
select plan(19);
-- The messages below are about claiming, not the law: transactional, so the legal hours for
-- marketing (tested with fixed clocks in send_rules) do not make this file depend on the hour.
-- Rolled back with the rest of the file.
alter table public.messages alter column category set default 'transactional';

-- 1. Claims interleave workspaces: a workspace's backlog on a fast sender does not fill every batch
--    while another workspace's due message waits behind all of it.
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

create temp table fair1 as select * from herald.claim_messages(100);
select ok((select count(*) from fair1 where message_id = :'code') = 1, 'the first claim takes the other workspace''s message');
select is((select count(*)::int from fair1), 100, 'and still fills the batch from the backlog');
select is((select count(distinct workspace_id)::int from fair1), 2, 'both workspaces are in it');

-- 2. No double send at lease expiry: a claimed message's lease covers its reserved slot plus the
--    provider call, and a late answer for a lost lease is recorded as sent, never followed by a
--    second call for it.
update workspaces set automation_enabled = false;
insert into workspaces (name, quiet_hours_start, quiet_hours_end) values ('Slow sender', '00:00', '00:00') returning id as ws \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'ws', 'sms', '+15557776001', 'connected', 0.2, true);
insert into contacts (workspace_id, phone) select :'ws', '+1415777600' || i from generate_series(1, 4) i;
insert into messages (workspace_id, contact_id, body, send_at, status)
select workspace_id, id, 'slow ' || phone, now() - interval '1 minute' + right(phone, 1)::integer * interval '1 second', 'queued'
from contacts where workspace_id = :'ws';

-- One message every 5 s, a 10 s lease, a 15 s provider timeout.
create temp table lease1 as select * from herald.claim_messages(100, interval '10 seconds', interval '15 seconds');
select is((select count(*)::int from lease1), 2, 'the slots within half the lease are claimed');
select is_empty($$ select c.message_id from lease1 c join messages m on m.id = c.message_id
                   where m.lease_expires_at < c.send_not_before + interval '15 seconds' $$,
  'each lease covers its slot plus the provider timeout');

-- A lease is lost anyway (the dispatcher stalled), the reaper puts the message back, and the
-- next claim takes it as attempt 2, flagged for a provider look-up.
select message_id as m from lease1 order by send_not_before limit 1 \gset
update messages set lease_expires_at = now() - interval '1 second' where id = :'m';
select herald.reap_expired_leases();
update herald.sender_slots set next_slot_at = now() where sender_id in (select id from senders where workspace_id = :'ws');
create temp table lease2 as select * from herald.claim_messages(100, interval '10 seconds', interval '15 seconds');
select results_eq(format($$ select attempt_no, provider_check_required from lease2 where message_id = %L $$, :'m'),
  $$ values (2, true) $$, 'reclaimed as attempt 2, to be looked up first');
-- Then the first attempt's answer arrives: Twilio has the message.
select is(herald.record_send_result(:'m', 1, 'sent', 'SM' || repeat('f', 32), 'queued')::text, 'sent',
  'the late answer is recorded as sent');
select results_eq(format($$ select verdict, reason from herald.confirm_send(array[%L::uuid], array[2]) $$, :'m'),
  $$ values ('skip'::text, 'not_ours'::text) $$, 'and attempt 2 is not sent');
select is((select provider_sid from messages where id = :'m'), 'SM' || repeat('f', 32), 'the message keeps the first attempt''s sid');

-- 3. (Transactional messages to contacts in UTC, so only the workspace's own window applies.)
--    Quiet hours and daily limits hold when a message is claimed and again right before it is sent,
--    not only when it is queued: a backlog queued before the window began is not sent at night.
update workspaces set automation_enabled = false;
-- Quiet now, in UTC: from an hour ago to an hour from now.
insert into workspaces (name, quiet_hours_start, quiet_hours_end)
values ('Night', (now() - interval '1 hour')::time, (now() + interval '1 hour')::time) returning id as wq \gset
insert into workspaces (name, quiet_hours_start, quiet_hours_end, daily_limit) values ('Limited', '00:00', '00:00', 1) returning id as wl \gset
insert into workspaces (name, quiet_hours_start, quiet_hours_end) values ('Evening falls', '00:00', '00:00') returning id as we \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values
  (:'wq', 'sms', '+15557773001', 'connected', 100, true), (:'wl', 'sms', '+15557773002', 'connected', 100, true),
  (:'we', 'sms', '+15557773003', 'connected', 100, true);
insert into contacts (workspace_id, phone, timezone) values (:'wq', '+14157773001', 'UTC') returning id as cq \gset
insert into contacts (workspace_id, phone, timezone) values (:'wl', '+14157773002', 'UTC') returning id as cl \gset
insert into contacts (workspace_id, phone, timezone) values (:'we', '+14157773003', 'UTC') returning id as ce \gset
-- Queued earlier (a backlog, a paused workspace resumed, a dispatcher outage).
insert into messages (workspace_id, contact_id, body, send_at, status, category) values (:'wq', :'cq', 'at night?', now() - interval '2 hours', 'queued', 'transactional') returning id as mq \gset
-- The limit of 1 is used by a message sent today.
insert into messages (workspace_id, contact_id, body, send_at, status, sent_at, category) values (:'wl', :'cl', 'sent', now() - interval '1 minute', 'sent', now(), 'transactional');
insert into messages (workspace_id, contact_id, body, send_at, status, category) values (:'wl', :'cl', 'over the limit', now() - interval '1 minute', 'queued', 'transactional') returning id as ml \gset
insert into messages (workspace_id, contact_id, body, send_at, status, category) values (:'we', :'ce', 'just in time', now() - interval '1 minute', 'queued', 'transactional') returning id as me \gset

create temp table window1 as select * from herald.claim_messages(100);
select results_eq('select message_id from window1', format($$ values (%L::uuid) $$, :'me'), 'the claim takes only the message whose window is open');
select results_eq(format($$ select status::text, send_at > now() from messages where id = %L $$, :'mq'), $$ values ('scheduled', true) $$,
  'the one in quiet hours is deferred past them');
select is((select reason from message_events where message_id = :'mq' order by id desc limit 1), 'quiet_hours', 'with reason quiet_hours');
select results_eq(format($$ select status::text, send_at > now() from messages where id = %L $$, :'ml'), $$ values ('scheduled', true) $$,
  'the one over the daily limit is deferred');
select is((select reason from message_events where message_id = :'ml' order by id desc limit 1), 'daily_limit', 'with reason daily_limit');

-- Claimed in the open window; quiet hours begin while it waits for its slot.
update workspaces set quiet_hours_start = (now() - interval '1 hour')::time, quiet_hours_end = (now() + interval '1 hour')::time where id = :'we';
create temp table confirm1 as select * from herald.confirm_send(array[:'me'::uuid], array[1]);
select results_eq('select verdict, reason from confirm1', $$ values ('deferred'::text, 'quiet_hours'::text) $$,
  'the confirmation right before sending defers it');
select results_eq(format($$ select status::text, attempts, lease_expires_at is null from messages where id = %L $$, :'me'),
  $$ values ('scheduled', 0, true) $$, 'back to scheduled, the attempt not spent');
select is((select count(*)::int from message_attempts where message_id = :'me'), 0, 'and its attempt row gone');
-- The daily limit at the confirmation: another message sent meanwhile used the day.
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00', daily_limit = 1 where id = :'we';
update messages set status = 'queued', send_at = now() - interval '1 second' where id = :'me';
create temp table window2 as select * from herald.claim_messages(100);
insert into messages (workspace_id, contact_id, body, send_at, status, sent_at, category) values (:'we', :'ce', 'sent meanwhile', now(), 'sent', now(), 'transactional');
create temp table confirm2 as select * from herald.confirm_send(array[:'me'::uuid], array[1]);
select results_eq('select verdict, reason from confirm2', $$ values ('deferred'::text, 'daily_limit'::text) $$,
  'a day used up meanwhile defers it at the confirmation too');
select is((select status::text from messages where id = :'me'), 'scheduled', 'to the next day');

select * from finish();
rollback;
