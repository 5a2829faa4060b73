-- Guards added after review: an opt-out is lifted only by the contact, a message is never
-- deleted on its own, and a message back from a lost lease is not stranded when its contact
-- became off limits meanwhile.
begin;
select plan(11);

select tests.create_user('owner');
select tests.authenticate_as('owner');
select create_workspace('Guards', 'UTC') as ws \gset
select tests.clear_authentication();
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00' where id = :'ws';
insert into senders (workspace_id, channel, phone_number, status, is_default, mps)
values (:'ws', 'sms', '+15005550006', 'connected', true, 100);
insert into contacts (workspace_id, phone, opted_out_at) values (:'ws', '+14155557001', now()) returning id as stopped \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155557002') returning id as ada \gset

-- 1. only the contact lifts an opt-out
select tests.authenticate_as('owner');
select throws_ok(format($$ update contacts set opted_out_at = null where id = %L $$, :'stopped'), '42501',
  format('contact %s opted out; only the contact can opt back in', :'stopped'), 'a member cannot clear an opt-out');
select tests.authenticate_as_service_role();
select throws_ok(format($$ update contacts set opted_out_at = null where id = %L $$, :'stopped'), '42501', null,
  'nor can the service role');
select tests.clear_authentication();
select is(herald.apply_inbound('+14155557001', '+15005550006', 'START', 'SM' || repeat('a', 32), '{}'), 'opted_in',
  'a START reply is the way back');
select is((select opted_out_at from contacts where id = :'stopped'), null, 'and it clears the opt-out');

-- 2. messages go only with their contact
select tests.authenticate_as('owner');
select schedule_message(:'ada', 'one') as m1 \gset
select tests.authenticate_as_service_role();
select throws_ok(format($$ delete from messages where id = %L $$, :'m1'), '42501', 'messages are not deleted one by one',
  'the service role cannot delete a message directly');
select tests.clear_authentication();
select throws_ok(format($$ delete from messages where id = %L $$, :'m1'), '42501', null, 'nor can postgres');
select is((select count(*)::int from message_events where message_id = :'m1'), 1, 'its ledger is intact');

-- 3. a lost lease whose contact is deleted meanwhile: claimed for the provider check, then cancelled
select herald.queue_due_messages();
select count(*) from herald.claim_messages(10, interval '30 seconds');
select tests.authenticate_as('owner');
select delete_contact(:'ada');
select tests.clear_authentication();
update messages set lease_expires_at = now() - interval '1 second' where id = :'m1';
select herald.reap_expired_leases();
select is((select status::text from messages where id = :'m1'), 'queued',
  'in flight when the contact went, so reaped back to queued (only the provider knows if it went out)');
select results_eq(
  format($$ select message_id, blocked_reason::text from herald.claim_messages(10, interval '30 seconds') where workspace_id = %L $$, :'ws'),
  format($$ values (%L::uuid, 'contact_deleted') $$, :'m1'),
  'the claim still takes it, flagged with why its contact is off limits');
select is(herald.record_send_result(:'m1', 2, 'not_sent', null, null, null, 'not sent: contact_deleted')::text, 'cancelled',
  'not found at the provider and blocked: cancelled, not stranded');
select is((select cancel_reason::text from messages where id = :'m1'), 'contact_deleted', 'with the contact''s reason');

select * from finish();
rollback;
