-- No double send at lease expiry: a claimed message's lease covers its reserved slot plus the
-- provider call, and a late answer for a lost lease is recorded as sent, never followed by a
-- second call for it.
begin;
select plan(6);
update workspaces set automation_enabled = false;

insert into workspaces (name, quiet_hours_start, quiet_hours_end) values ('Slow sender', '00:00', '00:00') returning id as ws \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'ws', 'sms', '+15557776001', 'connected', 0.2, true);
insert into contacts (workspace_id, phone) select :'ws', '+1415777600' || i from generate_series(1, 4) i;
insert into messages (workspace_id, contact_id, body, send_at, status)
select workspace_id, id, 'slow ' || phone, now() - interval '1 minute' + right(phone, 1)::integer * interval '1 second', 'queued'
from contacts where workspace_id = :'ws';

-- One message every 5 s, a 10 s lease, a 15 s provider timeout.
create temp table c1 as select * from herald.claim_messages(100, interval '10 seconds', interval '15 seconds');
select is((select count(*)::int from c1), 2, 'the slots within half the lease are claimed');
select is_empty($$ select c.message_id from c1 c join messages m on m.id = c.message_id
                   where m.lease_expires_at < c.send_not_before + interval '15 seconds' $$,
  'each lease covers its slot plus the provider timeout');

-- A lease is lost anyway (the dispatcher stalled), the reaper puts the message back, and the
-- next claim takes it as attempt 2, flagged for a provider look-up.
select message_id as m from c1 order by send_not_before limit 1 \gset
update messages set lease_expires_at = now() - interval '1 second' where id = :'m';
select herald.reap_expired_leases();
update herald.sender_slots set next_slot_at = now() where sender_id in (select id from senders where workspace_id = :'ws');
create temp table c2 as select * from herald.claim_messages(100, interval '10 seconds', interval '15 seconds');
select results_eq(format($$ select attempt_no, provider_check_required from c2 where message_id = %L $$, :'m'),
  $$ values (2, true) $$, 'reclaimed as attempt 2, to be looked up first');
-- Then the first attempt's answer arrives: Twilio has the message.
select is(herald.record_send_result(:'m', 1, 'sent', 'SM' || repeat('f', 32), 'queued')::text, 'sent',
  'the late answer is recorded as sent');
select results_eq(format($$ select verdict, reason from herald.confirm_send(array[%L::uuid], array[2]) $$, :'m'),
  $$ values ('skip'::text, 'not_ours'::text) $$, 'and attempt 2 is not sent');
select is((select provider_sid from messages where id = :'m'), 'SM' || repeat('f', 32), 'the message keeps the first attempt''s sid');

select * from finish();
rollback;
