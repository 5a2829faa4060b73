-- Right before each provider call the dispatcher confirms with the database that the message is
-- still its own under a live lease and that its contact may still be messaged; otherwise nothing
-- is sent and the message is cancelled with the reason. A hard delete while a message is at the
-- provider still sends the sid returned to the erasure outbox, and nothing of the contact is
-- stored by later callbacks.
begin;
select plan(20);
-- The messages below are about claiming, not the law: transactional, so the legal hours for
-- marketing (tested with fixed clocks in send_rules) do not make this file depend on the hour.
-- Rolled back with the rest of the file.
alter table public.messages alter column category set default 'transactional';
update workspaces set automation_enabled = false;

select tests.create_user('psc_owner');
select tests.authenticate_as('psc_owner');
select create_workspace('Confirms') as ws \gset
select tests.clear_authentication();
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00' where id = :'ws';
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'ws', 'sms', '+15557775001', 'connected', 100, true);
insert into contacts (workspace_id, phone)
select :'ws', '+1415777500' || i from generate_series(1, 6) i;
insert into messages (workspace_id, contact_id, body, send_at, status)
select workspace_id, id, 'hello ' || phone, now() - interval '1 minute', 'queued' from contacts where workspace_id = :'ws';
select id as c1 from contacts where phone = '+14157775001' \gset
select id as c2 from contacts where phone = '+14157775002' \gset
select id as c3 from contacts where phone = '+14157775003' \gset
select id as c4 from contacts where phone = '+14157775004' \gset
select id as c5 from contacts where phone = '+14157775005' \gset
select id as c6 from contacts where phone = '+14157775006' \gset
select id as m1 from messages where contact_id = :'c1' \gset
select id as m2 from messages where contact_id = :'c2' \gset
select id as m3 from messages where contact_id = :'c3' \gset
select id as m4 from messages where contact_id = :'c4' \gset
select id as m5 from messages where contact_id = :'c5' \gset
select id as m6 from messages where contact_id = :'c6' \gset
select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(100, interval '1 minute')), 6, 'six claimed');
select tests.clear_authentication();

-- 1. still fine: go, with the lease stretched over the provider call
select tests.authenticate_as_service_role();
select results_eq(format($$ select verdict, reason from herald.confirm_send(array[%L::uuid], array[1], interval '15 seconds') $$, :'m1'),
  $$ values ('send'::text, null::text) $$, 'an eligible message under its live lease: send');
select tests.clear_authentication();
select ok((select lease_expires_at >= now() + interval '15 seconds' from messages where id = :'m1'), 'its lease covers the provider call');
select isnt((select confirmed_at from message_attempts where message_id = :'m1'), null, 'and its attempt is marked confirmed');

-- 2. what happened during the wait for the slot
select is(herald.apply_inbound('+14157775002', '+15557775001', 'STOP', 'SM' || repeat('d', 32), '{}'), 'opted_out', 'contact 2 texts STOP');
select tests.authenticate_as('psc_owner');
select delete_contact(:'c3');
select take_lead(:'c4');
select tests.clear_authentication();
update messages set lease_expires_at = now() - interval '1 second' where id = :'m5';
select tests.authenticate_as_service_role();
create temp table v as
select * from herald.confirm_send(array[:'m2', :'m3', :'m4', :'m5', :'m6']::uuid[], array[1, 1, 1, 1, 2]);
select tests.clear_authentication();
select results_eq('select message_id, verdict, reason from v order by message_id',
  format($$ select * from (values (%L::uuid, 'cancelled'::text, 'contact_opted_out'::text), (%L, 'cancelled', 'contact_deleted'),
                                  (%L, 'cancelled', 'human_takeover'), (%L, 'skip', 'lease_expired'), (%L, 'skip', 'not_ours')) t
            order by 1 $$, :'m2', :'m3', :'m4', :'m5', :'m6'),
  'STOP, soft delete and takeover cancel; a lost lease or another attempt''s message is not ours to send');
select results_eq(format($$ select id, status::text, coalesce(cancel_reason::text, '-'), attempts from messages where id in (%L, %L, %L, %L) order by id $$,
                         :'m2', :'m3', :'m4', :'m5'),
  format($$ select * from (values (%L::uuid, 'cancelled'::text, 'contact_opted_out'::text, 0), (%L, 'cancelled', 'contact_deleted', 0),
                                  (%L, 'cancelled', 'human_takeover', 0), (%L, 'sending', '-', 1)) t order by 1 $$, :'m2', :'m3', :'m4', :'m5'),
  'the cancelled ones spent no attempt; the lost lease is left to the reaper');
select is((select count(*)::int from message_attempts where message_id in (:'m2', :'m3', :'m4')), 0, 'their attempt rows are gone');
select is((select reason from message_events where message_id = :'m2' order by id desc limit 1), 'contact_opted_out', 'the ledger says why');

-- 3. a deleted message, and bad input
select tests.authenticate_as_service_role();
select results_eq(format($$ select verdict, reason from herald.confirm_send(array[%L::uuid], array[1]) $$, gen_random_uuid()),
  $$ values ('skip'::text, 'gone'::text) $$, 'a message that is no more: skip');
select throws_ok($$ select * from herald.confirm_send(array[gen_random_uuid()], array[1, 2]) $$, '22023', null,
  'ids and attempt numbers must pair up');
select tests.clear_authentication();
select tests.authenticate_as('psc_owner');
select throws_ok(format($$ select * from herald.confirm_send(array[%L::uuid], array[1]) $$, :'m1'), '42501', null,
  'a member cannot call it');
select tests.clear_authentication();

-- 4. hard delete while message 1 is at the provider (herald.contacts_keep_inflight, before delete on contacts)
select tests.authenticate_as('psc_owner');
select delete_contact(:'c1', true);
select tests.clear_authentication();
select tests.authenticate_as_service_role();
select is(herald.record_send_result(:'m1', 1, 'sent', 'SM' || repeat('e', 32), 'queued'), null, 'the provider''s late answer finds nothing to record');
select tests.clear_authentication();
select is((select count(*)::int from herald.provider_erasures where provider_sid = 'SM' || repeat('e', 32)), 1,
  'but its sid goes to the provider-erasure outbox');
select tests.authenticate_as_service_role();
select is(herald.apply_provider_status('SM' || repeat('e', 32), 'delivered', null, '{"To": "+14157775001", "MessageStatus": "delivered"}'),
  'erased', 'a later status callback for it is recognised');
select tests.clear_authentication();
select is((select count(*)::int from provider_events where provider_sid = 'SM' || repeat('e', 32)), 0, 'and stores nothing of the deleted contact');
select is((select count(*)::int from provider_events where payload::text like '%+14157775001%'), 0, 'the number appears in no provider event');

-- 5. the send window's arithmetic (herald.defer_sending, which confirm_send calls to put a message back
-- to scheduled, is proven in claiming.test.sql)
select is(herald.local_day_start('2026-03-29 12:00+00', 'Europe/London'), '2026-03-29 00:00+00'::timestamptz,
  'a local day starts at local midnight, on the day the clocks go forward too');
select is(herald.local_day_start('2026-07-01 23:30+00', 'Europe/London'), '2026-07-01 23:00+00'::timestamptz,
  'half past midnight in London in summer is already the next local day');
select is(herald.day_use(:'ws', herald.local_day_start(now(), 'UTC')), 2::bigint,
  'the day''s use counts the messages still in flight (5 and 6), not the cancelled ones');

select * from finish();
rollback;
