-- Unknown outcomes (…_unknown_outcomes.sql): herald.record_send_result's 'unknown' (a call that
-- got no answer) keeps the message in sending, flagged for a provider look-up after the retry
-- delay, never resent blind and never cancelled under it; herald.record_lookup_miss decides what a
-- look-up that found nothing allows; a look-up that finds the message delivered moves the message,
-- not only its attempt. All as service_role, the dispatcher's role. Inside this transaction now()
-- does not move: leases are expired by hand where the clock would.
begin;
select plan(29);
update workspaces set automation_enabled = false;

select tests.workspace('Unknowns') as ws \gset
update workspaces set retry_base_seconds = 60, max_attempts = 2 where id = :'ws';
select tests.sender(:'ws', '+15550024001');
select tests.contact(:'ws', '+14155524001') as c1 \gset
select tests.contact(:'ws', '+14155524002') as c2 \gset
select tests.contact(:'ws', '+14155524003') as c3 \gset
select tests.contact(:'ws', '+14155524004') as c4 \gset
select tests.message(:'c1', now() - interval '1 minute', 'queued') as m1 \gset
select tests.message(:'c2', now() - interval '1 minute', 'queued') as m2 \gset
select tests.message(:'c3', now() - interval '1 minute', 'queued') as m3 \gset
select tests.message(:'c4', now() - interval '1 minute', 'queued') as m4 \gset
update messages set max_attempts = 2 where workspace_id = :'ws';
select tests.create_user('uo_owner');
insert into workspace_members (workspace_id, user_id, role) values (:'ws', tests.get_user_id('uo_owner'), 'owner');

-- What the dispatcher does for each message: claim, confirm right before the call.
select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(100, interval '1 minute')), 4, 'four claimed');
select is((select count(*)::int from herald.confirm_send(array[:'m1', :'m2', :'m3', :'m4']::uuid[], array[1, 1, 1, 1]) where verdict = 'send'),
  4, 'and confirmed for the provider call');

/** Section - no answer */
select is(herald.record_send_result(:'m1', 1, 'unknown', null, null, null, 'POST /Messages.json: no answer within 15000 ms')::text,
  'sending', 'a call with no answer leaves the message sending');
select results_eq(format($$ select provider_check_required, tests.secs(send_at) between 30 and 90, lease_expires_at = send_at,
                                   attempts, last_error from messages where id = %L $$, :'m1'),
  $$ values (true, true, true, 1, 'POST /Messages.json: no answer within 15000 ms'::text) $$,
  'flagged for the look-up, which waits out the retry delay (60 s base: 30-90 s) under the lease; no attempt given back');
select results_eq(format($$ select provider_status, responded_at is not null from message_attempts where message_id = %L $$, :'m1'),
  $$ values ('unknown'::text, true) $$, 'the attempt is kept, its outcome unknown');
select results_eq(format($$ select from_status::text, to_status::text, reason, actor, detail ? 'send_at_to'
                            from message_events where message_id = %L order by id desc limit 1 $$, :'m1'),
  $$ values ('sending'::text, 'sending'::text, 'unknown_outcome'::text, 'dispatcher'::text, true) $$,
  'the ledger says why the message waits, by the dispatcher');
select is((select count(*)::int from messages where id = :'m1' and status = 'scheduled'), 0, 'no resend is scheduled');
select is(herald.record_send_result(:'m1', 7, 'unknown')::text, 'sending', 'an answer for another attempt changes nothing');
select throws_ok(format($$ select herald.record_send_result(%L, 1, 'timeout') $$, :'m1'), '22023', 'invalid outcome timeout',
  'an outcome it does not know is refused');

-- The contact of a message whose outcome is unknown is deleted: the message may be at Twilio,
-- so it is not cancelled; the look-up decides.
select herald.record_send_result(:'m2', 1, 'unknown', null, null, null, 'connection reset');
select tests.authenticate_as('uo_owner');
select delete_contact(:'c2');
select tests.authenticate_as_service_role();
select is((select status::text from messages where id = :'m2'), 'sending', 'a delete does not cancel a message Twilio may have');

/** Section - the look-up */
select herald.record_send_result(:'m3', 1, 'unknown', null, null, null, 'no answer');
select herald.record_send_result(:'m4', 1, 'unknown', null, null, null, 'no answer');
select tests.clear_authentication();
update messages set lease_expires_at = now() - interval '1 second', send_at = now() - interval '1 second'
where id in (:'m1', :'m2', :'m3', :'m4');
select is(herald.reap_expired_leases(), 4, 'once the delay has passed the reaper queues all four');
select tests.authenticate_as_service_role();
create temp table lookups as select * from herald.claim_messages(100, interval '1 minute');
select results_eq('select message_id, attempt_no, provider_check_required, blocked_reason::text from lookups order by message_id',
  format($$ select * from (values (%L::uuid, 2, true, null::text), (%L, 2, true, 'contact_deleted'), (%L, 2, true, null), (%L, 2, true, null)) v
            order by 1 $$, :'m1', :'m2', :'m3', :'m4'),
  'claimed again for the look-up, the deleted contact named');

-- Found, already delivered: the message is delivered, not only its attempt.
select is(herald.record_send_result(:'m1', 2, 'sent', 'SM' || repeat('1', 32), 'delivered')::text, 'delivered',
  'a look-up that finds the message delivered moves the message to delivered');
select results_eq(format($$ select status::text, delivered_at is not null, provider_sid, provider_check_required from messages where id = %L $$, :'m1'),
  format($$ values ('delivered'::text, true, %L::text, false) $$, 'SM' || repeat('1', 32)),
  'with its delivery time and sid');
select results_eq(format($$ select from_status::text, to_status::text, reason, actor from message_events where message_id = %L order by id desc limit 2 $$, :'m1'),
  $$ values ('sent'::text, 'delivered'::text, 'provider_delivered'::text, 'dispatcher'::text), ('sending', 'sent', null, 'dispatcher') $$,
  'the ledger: sent, then delivered as the provider says, found by the dispatcher');

-- Found undelivered: the same, with the provider's error code.
select is(herald.record_send_result(:'m3', 2, 'sent', 'SM' || repeat('3', 32), 'undelivered', 30003)::text, 'undelivered',
  'found undelivered: undelivered');
select is((select last_error_code from messages where id = :'m3'), 30003, 'with the provider''s error code');

-- Not found, attempts left: the lost attempt is marked not_found and the message may go.
select is(herald.record_lookup_miss(:'m4', 2), 'send', 'not found, one call of two spent: send');
select results_eq(format($$ select attempt_no, provider_status from message_attempts where message_id = %L order by attempt_no $$, :'m4'),
  $$ values (1, 'not_found'::text), (2, 'requested') $$, 'the lost attempt is marked not found');
select is((select provider_check_required from messages where id = :'m4'), false, 'the message needs no further look-up');
select is(herald.record_lookup_miss(:'m4', 2), 'skip', 'a second miss for the same attempt has nothing to decide');

-- Its second call gets no answer either; the look-up after it finds nothing: two calls of two.
select is((select verdict from herald.confirm_send(array[:'m4']::uuid[], array[2])), 'send', 'its second call is confirmed');
select herald.record_send_result(:'m4', 2, 'unknown', null, null, null, 'no answer again');
select tests.clear_authentication();
update messages set lease_expires_at = now() - interval '1 second', send_at = now() - interval '1 second' where id = :'m4';
select herald.reap_expired_leases();
select tests.authenticate_as_service_role();
select is((select attempt_no from herald.claim_messages(100, interval '1 minute') where message_id = :'m4'), 3, 'claimed for a third look-up');
select is(herald.record_lookup_miss(:'m4', 3), 'failed', 'not found, and max_attempts calls spent: failed, no third call');
select results_eq(format($$ select status::text, attempts, provider_check_required, (select count(*)::int from message_attempts where message_id = %L)
                            from messages where id = %L $$, :'m4', :'m4'),
  $$ values ('failed'::text, 2, false, 2) $$, 'the look-up attempt that called nothing is not counted');
select is((select reason from message_events where message_id = :'m4' order by id desc limit 1), 'max_attempts', 'the ledger says why');

-- The deleted contact's message was not at Twilio: cancelled, as the dispatcher's not_sent does.
select is(herald.record_lookup_miss(:'m2', 2), 'send', 'the deleted contact''s lost attempt was not at Twilio either');
select is(herald.record_send_result(:'m2', 2, 'not_sent', null, null, null, 'not sent: contact_deleted')::text, 'cancelled',
  'so it is cancelled, never sent');

/** Section - who may */
select tests.authenticate_as('uo_owner');
select throws_ok(format($$ select herald.record_lookup_miss(%L, 2) $$, :'m2'), '42501', null, 'a member cannot record a look-up');

select * from finish();
rollback;
