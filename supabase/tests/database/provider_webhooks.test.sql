-- Provider webhooks (…_provider_webhooks.sql): Twilio's status callbacks through
-- herald.apply_provider_status (herald.apply_status_event moves the attempt and the message
-- forward by rank only, so late, duplicate and contradicting callbacks change nothing) and
-- inbound messages through herald.apply_inbound (STOP and START families, replies that stop a
-- sequence, routing by the number written to), each stored once in provider_events.
-- Scenario rows are written directly as postgres (tests.workspace, tests.message…).
begin;
select plan(49);

/** Section - two messages the dispatcher handed to Twilio */
-- The workspaces already there (the demo data) are paused, so the claim sees only this file's.
update workspaces set automation_enabled = false;
select tests.workspace('Webhooks') as ws_r \gset
select tests.sender(:'ws_r', '+15550002002');
select tests.contact(:'ws_r', '+14155550071') as r_sent \gset
select tests.contact(:'ws_r', '+14155550075') as r_notsent \gset
select tests.message(:'r_sent', now() - interval '1 minute', 'queued') as mr_sent \gset
select tests.message(:'r_notsent', now() - interval '1 minute', 'queued') as mr_notsent \gset
select count(*) from herald.claim_messages(100);
select herald.record_send_result(:'mr_sent', 1, 'sent', 'SM' || md5('sent'), 'queued');
select herald.record_send_result(:'mr_notsent', 1, 'sent', 'SM' || md5('notsent'), 'queued');

/** Section - apply_provider_status: forward by rank only */
select count(*) as events_sent_before from message_events where message_id = :'mr_sent' \gset
select is(herald.apply_provider_status('SM' || md5('sent'), 'delivered', null, '{"MessageStatus":"delivered"}', 'tok-1'), 'applied',
  'delivered after sent: applied');
select results_eq(
  format($$ select m.status::text, m.delivered_at is not null, a.provider_status, a.last_callback_at is not null
            from messages m join message_attempts a on a.message_id = m.id where m.id = %L $$, :'mr_sent'),
  $$ values ('delivered', true, 'delivered'::text, true) $$,
  'the message and its attempt are delivered');
select is(herald.apply_provider_status('SM' || md5('sent'), 'delivered', null, '{"MessageStatus":"delivered"}', 'tok-1'), 'duplicate',
  'the same callback again (same idempotency token): duplicate');
select is((select count(*)::int from provider_events where idempotency_token = 'tok-1'), 1, 'the duplicate was not stored twice');
select is(herald.apply_provider_status('SM' || md5('sent'), 'sent', null, '{"MessageStatus":"sent"}', 'tok-2'), 'unchanged',
  'a late sent after delivered: unchanged');
select is(herald.apply_provider_status('SM' || md5('sent'), 'queued', null, '{"MessageStatus":"queued"}', 'tok-3'), 'unchanged',
  'a late queued after delivered: unchanged');
select is(herald.apply_provider_status('SM' || md5('sent'), 'undelivered', 30003, '{"MessageStatus":"undelivered"}', 'tok-4'), 'unchanged',
  'undelivered after delivered: unchanged (delivered is not taken back)');
select results_eq(
  format($$ select m.status::text, m.last_error_code, a.provider_status from messages m join message_attempts a on a.message_id = m.id
            where m.id = %L $$, :'mr_sent'),
  $$ values ('delivered', null::integer, 'delivered'::text) $$,
  'after late, duplicate and contradicting callbacks the message and its attempt are still delivered');
select is((select count(*)::int from message_events where message_id = :'mr_sent'), :events_sent_before + 1,
  'only the one real change reached the ledger');
select results_eq(
  format($$ select idempotency_token, outcome, message_id = %L from provider_events where idempotency_token like 'tok-%%' order by id $$, :'mr_sent'),
  $$ values ('tok-1', 'applied', true), ('tok-2', 'unchanged', true), ('tok-3', 'unchanged', true), ('tok-4', 'unchanged', true) $$,
  'every callback is stored once, with what was done with it');
select is(herald.apply_provider_status('SM' || md5('nobody'), 'delivered', null, '{}', 'tok-5'), 'unknown_sid',
  'an unknown sid: unknown_sid');
select results_eq($$ select outcome, message_id, workspace_id from provider_events where idempotency_token = 'tok-5' $$,
  $$ values ('unknown_sid', null::uuid, null::uuid) $$, 'and it is kept, attached to nothing');
select is(herald.apply_provider_status('SM' || md5('notsent'), 'undelivered', 30003, '{}', 'tok-6'), 'applied',
  'undelivered after sent: applied');
select results_eq(
  format($$ select m.status::text, m.last_error_code, e.reason from messages m
            join message_events e on e.message_id = m.id and e.to_status = 'undelivered' where m.id = %L $$, :'mr_notsent'),
  $$ values ('undelivered', 30003, 'provider_undelivered_30003') $$,
  'undelivered keeps the error code, in the message and the ledger');
select results_eq(
  format($$ select coalesce(from_status::text, '-') || '>' || to_status::text from message_events where message_id = %L order by id $$, :'mr_sent'),
  $$ values ('->queued'), ('queued>sending'), ('sending>sent'), ('sent>delivered') $$,
  'the ledger of a delivered message: each step once');

/** Section - apply_inbound: STOP, START, replies, routing */
select tests.workspace('Inbound') as ws_i \gset
select tests.sender(:'ws_i', '+15550003001');
insert into sequences (workspace_id, name, status, stop_on_reply) values (:'ws_i', 'Stops on reply', 'active', true) returning id as seq_stop \gset
insert into sequences (workspace_id, name, status, stop_on_reply) values (:'ws_i', 'Keeps going', 'active', false) returning id as seq_go \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
  (:'ws_i', :'seq_stop', 1, '1 hour', 'Hello'), (:'ws_i', :'seq_stop', 2, '1 day', 'Again'),
  (:'ws_i', :'seq_go', 1, '2 hours', 'News');
select tests.contact(:'ws_i', '+14155550101') as i_stop \gset
select tests.contact(:'ws_i', '+14155550102') as i_reply \gset
select herald.enroll(s, :'i_stop', now()) as ie_stop from sequences s where s.id = :'seq_stop' \gset
select tests.message(:'i_stop', now() + interval '1 day') as im_plain \gset
select herald.enroll(s, :'i_reply', now()) as ie_reply_stop from sequences s where s.id = :'seq_stop' \gset
select herald.enroll(s, :'i_reply', now()) as ie_reply_go from sequences s where s.id = :'seq_go' \gset

select is((herald.apply_inbound('+14155550101', '+15550003001', '  stop ', 'SM' || md5('in-1'), '{}')).outcome, 'opted_out',
  'STOP (any case, any spacing): opted_out');
select results_eq(format($$ select opted_out_at is not null, last_inbound_at is not null from contacts where id = %L $$, :'i_stop'),
  $$ values (true, true) $$, 'the contact is opted out and its reply recorded');
select results_eq(
  format($$ select status::text, cancel_reason::text, count(*)::int from messages where contact_id = %L group by 1, 2 $$, :'i_stop'),
  $$ values ('cancelled', 'contact_opted_out', 2) $$, 'every pending message of the contact is cancelled');
select results_eq(format($$ select status::text, stopped_reason from sequence_enrollments where id = %L $$, :'ie_stop'),
  $$ values ('cancelled', 'contact_opted_out') $$, 'and its enrollment stopped');
select ok(herald.is_suppressed(:'ws_i', '+14155550101'), 'the number is suppressed');
select is((herald.apply_inbound('+14155550101', '+15550003001', 'Start', 'SM' || md5('in-2'), '{}')).outcome, 'opted_in',
  'START: opted_in');
select results_eq(format($$ select opted_out_at is null, herald.is_suppressed(workspace_id, phone) from contacts where id = %L $$, :'i_stop'),
  $$ values (true, false) $$, 'the contact is opted back in and the suppression lifted');
select is((select count(*)::int from messages where contact_id = :'i_stop' and status = 'cancelled'), 2,
  'what was cancelled stays cancelled');

select is((herald.apply_inbound('+14155550102', '+15550003001', 'Who is this?', 'SM' || md5('in-3'), '{}')).outcome, 'replied',
  'any other text: replied');
select results_eq(
  format($$ select e.id, e.status::text, coalesce(e.stopped_reason, '-'), m.status::text, coalesce(m.cancel_reason::text, '-')
            from sequence_enrollments e join messages m on m.enrollment_id = e.id where e.contact_id = %L order by e.id $$, :'i_reply'),
  format($$ select * from (values (%L::uuid, 'cancelled', 'replied', 'cancelled', 'replied'),
                                  (%L::uuid, 'active', '-', 'scheduled', '-')) v order by 1 $$, :'ie_reply_stop', :'ie_reply_go'),
  'the stop_on_reply enrollment stops (replied) with its pending step; the other keeps going');
select results_eq(format($$ select opted_out_at is null, last_inbound_at is not null from contacts where id = %L $$, :'i_reply'),
  $$ values (true, true) $$, 'a reply is not an opt-out, and is recorded');
select is((herald.apply_inbound('+14155550102', '+15550003001', 'Who is this?', 'SM' || md5('in-3'), '{}')).outcome, 'duplicate',
  'the same inbound message again: duplicate');

-- The rest of the STOP and START families.
create temp table keywords as
  select k, tests.contact(:'ws_i', '+1415555020' || n) as contact_id, '+1415555020' || n as phone
  from unnest(array['STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT']) with ordinality u(k, n);
select results_eq(
  $$ select k, (herald.apply_inbound(phone, '+15550003001', lower(k), 'SM' || md5('kw-' || k), '{}')).outcome from keywords order by k $$,
  $$ values ('CANCEL', 'opted_out'), ('END', 'opted_out'), ('QUIT', 'opted_out'), ('STOPALL', 'opted_out'), ('UNSUBSCRIBE', 'opted_out') $$,
  'STOPALL, UNSUBSCRIBE, CANCEL, END and QUIT opt out too');
select is((select count(*)::int from keywords k join contacts c on c.id = k.contact_id where c.opted_out_at is not null), 5,
  'all five contacts are opted out');
select results_eq(
  $$ select (herald.apply_inbound(phone, '+15550003001', r, 'SM' || md5('kw2-' || k), '{}')).outcome
     from keywords join (values ('STOPALL', 'YES'), ('UNSUBSCRIBE', 'unstop')) v(kk, r) on kk = k order by k $$,
  $$ values ('opted_in'), ('opted_in') $$,
  'YES and UNSTOP opt back in');

-- A number Herald does not know: its STOP is kept as a suppression, and a contact added later is opted out.
select is((herald.apply_inbound('+14155550999', '+15550003001', 'STOP', 'SM' || md5('in-4'), '{}')).outcome, 'opted_out',
  'STOP from an unknown number: opted_out');
select ok(herald.is_suppressed(:'ws_i', '+14155550999'), 'the unknown number is suppressed');
select tests.contact(:'ws_i', '+14155550999') as i_late \gset
select ok((select opted_out_at is not null from contacts where id = :'i_late'),
  'a contact added later with that number starts opted out');

-- Routing: the To number names the workspace.
select tests.workspace('Inbound two') as ws_i2 \gset
select tests.sender(:'ws_i2', '+15550003002');
select tests.contact(:'ws_i', '+14155550777') as i_both_1 \gset
select tests.contact(:'ws_i2', '+14155550777') as i_both_2 \gset
select is((herald.apply_inbound('+14155550777', '+15550003002', 'STOP', 'SM' || md5('in-5'), '{}')).outcome, 'opted_out',
  'STOP to the second workspace''s number');
select results_eq(
  format($$ select id, opted_out_at is not null from contacts where id in (%L, %L) order by id $$, :'i_both_1', :'i_both_2'),
  format($$ select * from (values (%L::uuid, false), (%L::uuid, true)) v order by 1 $$, :'i_both_1', :'i_both_2'),
  'only the contact of the workspace that owns the To number is opted out');
select is((herald.apply_inbound('+14155550777', '+15550009999', 'hello', 'SM' || md5('in-6'), '{}')).outcome, 'unrouted',
  'a To number no sender has: unrouted');
-- An opt-out no member can lift (herald.contacts_guard_opt_in): the contact's own START can.
insert into contacts (workspace_id, phone, opted_out_at) values (:'ws_i', '+14155557001', now()) returning id as stopped \gset
select is((herald.apply_inbound('+14155557001', '+15550003001', 'START', 'SM' || repeat('a', 32), '{}')).outcome, 'opted_in',
  'a START reply is the way back for a contact imported opted out');
select is((select opted_out_at from contacts where id = :'stopped'), null, 'and it clears the opt-out');

/** Section - apply_status_event: one callback onto its attempt and message, stored by its caller */
select tests.contact(:'ws_r', '+14155550078') as r_direct \gset
select tests.message(:'r_direct', now() - interval '1 minute', 'queued') as mr_direct \gset
select count(*) from herald.claim_messages(100);
select herald.record_send_result(:'mr_direct', 1, 'sent', 'SM' || md5('direct'), 'queued');
select results_eq(
  $$ select outcome, workspace_id, message_id from herald.apply_status_event('SM' || md5('direct'), 'delivered', null) $$,
  format($$ values ('applied'::text, %L::uuid, %L::uuid) $$, :'ws_r', :'mr_direct'),
  'apply_status_event says what it did and to which message');
select results_eq(
  format($$ select m.status::text, a.provider_status, (select count(*)::int from provider_events e where e.provider_sid = a.provider_sid)
            from messages m join message_attempts a on a.message_id = m.id where m.id = %L $$, :'mr_direct'),
  $$ values ('delivered', 'delivered'::text, 0) $$,
  'the message and its attempt moved; the provider event is its caller''s to write');
select results_eq($$ select outcome, workspace_id, message_id from herald.apply_status_event('SM' || md5('none'), 'delivered', null) $$,
  $$ values ('unknown_sid'::text, null::uuid, null::uuid) $$, 'an unknown sid: unknown_sid, attached to nothing');
-- A message that carries its sid without an attempt row (written by an older dispatcher, say)
-- is found by the sid on the message itself.
select tests.message(:'r_direct', now() - interval '1 minute') as mr_bare \gset
select tests.mark_sent(array[:'mr_bare'::uuid]);
update messages set provider_sid = 'SM' || md5('bare') where id = :'mr_bare';
select is((herald.apply_status_event('SM' || md5('bare'), 'undelivered', 30005)).outcome, 'applied',
  'a sid only the message knows: applied');
select results_eq(format($$ select status::text, last_error_code from messages where id = %L $$, :'mr_bare'),
  $$ values ('undelivered', 30005) $$, 'the message is undelivered with the provider''s error');

/** Section - provider events are the members' to read, Herald's to write */
select tests.create_user('wendy');
insert into workspace_members (workspace_id, user_id, role) values (:'ws_r', tests.get_user_id('wendy'), 'owner');
select tests.authenticate_as('wendy');
select results_eq($$ select count(*)::int, count(*) filter (where workspace_id <> $$ || quote_literal(:'ws_r') || $$)::int from provider_events $$,
  format($$ select count(*)::int, 0 from provider_events where workspace_id = %L $$, :'ws_r'),
  'a member reads her workspace''s provider events and no other''s');
select throws_ok(format($$ insert into provider_events (workspace_id, kind, outcome, payload) values (%L, 'status', 'applied', '{}') $$, :'ws_r'),
  '42501', null, 'and cannot write one');

/** Section - who may apply webhooks */
select tests.create_user('mallory');
select tests.authenticate_as('mallory');
select throws_ok($$ select herald.apply_provider_status('SMx', 'delivered', null, '{}') $$, '42501', null,
  'authenticated cannot apply status callbacks');
select throws_ok($$ select herald.apply_inbound('+14155550101', '+15550003001', 'STOP', 'SMx', '{}') $$, '42501', null,
  'authenticated cannot apply inbound messages');
select throws_ok($$ select herald.apply_status_event('SMx', 'delivered', null) $$, '42501', null,
  'authenticated cannot apply a stored callback either');
select tests.authenticate_as_service_role();
select is(herald.apply_provider_status('SM' || md5('nobody at all'), 'sent', null, '{}'), 'unknown_sid',
  'the service role (the twilio-status function) can');
select tests.clear_authentication();

select * from finish();
rollback;