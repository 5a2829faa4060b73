-- Twilio's error classes applied (…_error_classes_applied.sql): herald.record_send_result acts on
-- an answer by the class of its code and HTTP status (herald.provider_error_class, now unknown for
-- no answer at all), with herald.provider_error_text as last_error; retry_free and defer_next_day
-- attempts are not spent (herald.record_lookup_miss counts only spent calls); a daily cap waits for
-- herald.next_day_send_at; 21610 goes through herald.opt_out_by_provider; status callbacks
-- (herald.apply_status_event) fail a message with the class text and send a transient or daily-cap
-- delivery failure again (herald.resend_after_delivery_error), once. All as service_role, the
-- dispatcher's and the webhooks' role; failed_messages as a member. Inside this transaction now()
-- does not move, so every expected instant is computed from it.
begin;
select plan(62);
update workspaces set automation_enabled = false;

select tests.workspace('Error classes', 'America/New_York') as ws \gset
update workspaces set retry_base_seconds = 60, max_attempts = 3 where id = :'ws';
select tests.sender(:'ws', '+15550031001');
select tests.create_user('ec_owner');
insert into workspace_members (workspace_id, user_id, role) values (:'ws', tests.get_user_id('ec_owner'), 'owner');

-- One contact and one due message per case.
create temp table cases (name text primary key, contact uuid, message uuid);
insert into cases (name, contact)
select n, tests.contact(:'ws', '+1415553' || lpad(i::text, 4, '0'))
from unnest(array['free', 'creds', 'trans', 'last', 'defer', 'expire', 'perm', 'odd', 'unsub', 'noanswer', 'lookup',
                  'cb_perm', 'cb_window', 'cb_trans', 'cb_spent', 'cb_defer', 'cb_blocked']) with ordinality u (n, i);
update cases set message = tests.message(contact, now() - interval '1 minute', 'queued');
update messages m set max_attempts = case c.name when 'free' then 2 when 'last' then 1 when 'lookup' then 2
                                                 when 'cb_spent' then 1 else 3 end
from cases c where m.id = c.message;
-- Its deadline falls before the workspace's next day whatever the hour of the run: halfway to it.
update messages m set expires_at = now() + (herald.next_local_day(now(), 'America/New_York') - now()) / 2
from cases c where m.id = c.message and c.name = 'expire';
grant select on cases to service_role;
select c.message as m_free from cases c where c.name = 'free' \gset
select c.message as m_creds from cases c where c.name = 'creds' \gset
select c.message as m_trans from cases c where c.name = 'trans' \gset
select c.message as m_last from cases c where c.name = 'last' \gset
select c.message as m_defer from cases c where c.name = 'defer' \gset
select c.message as m_expire from cases c where c.name = 'expire' \gset
select c.message as m_perm from cases c where c.name = 'perm' \gset
select c.message as m_odd from cases c where c.name = 'odd' \gset
select c.message as m_unsub, c.contact as c_unsub from cases c where c.name = 'unsub' \gset
select c.message as m_noanswer from cases c where c.name = 'noanswer' \gset
select c.message as m_lookup from cases c where c.name = 'lookup' \gset
select c.message as m_cb_perm from cases c where c.name = 'cb_perm' \gset
select c.message as m_cb_window from cases c where c.name = 'cb_window' \gset
select c.message as m_cb_trans from cases c where c.name = 'cb_trans' \gset
select c.message as m_cb_spent from cases c where c.name = 'cb_spent' \gset
select c.message as m_cb_defer from cases c where c.name = 'cb_defer' \gset
select c.message as m_cb_blocked, c.contact as c_cb_blocked from cases c where c.name = 'cb_blocked' \gset

-- Claimed and confirmed as the dispatcher does, right before each provider call.
select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(100, interval '1 minute')), 17, 'every case claimed');
select is((select count(*)::int from herald.confirm_send(array(select message from cases order by name),
                                                          array(select 1 from cases order by name)) where verdict = 'send'),
  17, 'and confirmed for its provider call');

/** Section - the lookup and the text */
select results_eq($$ select (herald.provider_error_class(c, s)).class
                     from (values (null::integer, null::integer), (null, 401), (20003, 401), (63038, 429)) v (c, s) $$,
  $$ values ('unknown'), ('retry_free'), ('retry_free'), ('defer_next_day') $$,
  'no answer at all is unknown, not transient; 401 is rejected credentials (retry_free); a known code wins over its status');
select results_eq($$ select herald.provider_error_text(c, t)
                     from (values (21211, 'The ''To'' number is not valid'), (39999, 'Boom'), (39999, null), (null, 'connection refused')) v (c, t) $$,
  $$ values ((select message from provider_errors where code = 21211)),
            ('Boom (Twilio error 39999: https://www.twilio.com/docs/api/errors/39999)'::text),
            ('(Twilio error 39999: https://www.twilio.com/docs/api/errors/39999)'),
            ('connection refused') $$,
  'last_error: what a person can do for a known code; the provider''s words and the code''s page otherwise');

/** Section - retry_free: Twilio never processed it */
select is(herald.record_send_result(:'m_free', 1, 'transient', null, null, 20429, 'Too Many Requests', 429)::text, 'queued',
  '429 / 20429: back to queued');
select results_eq(format($$ select m.attempts, m.lease_expires_at is null, m.last_error_code, m.last_error = p.message,
                                   a.spent, a.provider_status, a.error_code
                            from messages m join message_attempts a on a.message_id = m.id
                            join provider_errors p on p.code = 20429 where m.id = %L $$, :'m_free'),
  $$ values (1, true, 20429, true, false, 'error'::text, 20429) $$,
  'the attempt row stays, as the call it was, and says it is not spent');
select results_eq(format($$ select from_status::text, to_status::text, reason from message_events
                            where message_id = %L order by id desc limit 1 $$, :'m_free'),
  $$ values ('sending'::text, 'queued'::text, 'retry_free_20429'::text) $$, 'the ledger names the class and the code');
select is(herald.record_send_result(:'m_creds', 1, 'permanent', null, null, null, 'HTTP 401', 401)::text, 'queued',
  'rejected credentials (401, whatever the dispatcher guessed): back to queued, not failed');
select is((select reason from message_events where message_id = :'m_creds' order by id desc limit 1), 'retry_free_http_401',
  'without a code, the ledger names the HTTP status');

-- Claimed again: attempt 2 is this message's first spent one, so a transient error (max_attempts
-- 2) is retried; counted by calls, it would have failed.
select is((select attempt_no from herald.claim_messages(100, interval '1 minute') where message_id = :'m_free'), 2,
  'the next claim makes attempt 2 (the numbers stay unique)');
select is(herald.record_send_result(:'m_free', 2, 'transient', null, null, 20500, 'Internal Server Error', 500)::text, 'scheduled',
  'a transient error on the first spent attempt of two is retried');
select ok((select tests.secs(send_at) between 30 and 90 from messages where id = :'m_free'),
  'with the backoff of one spent attempt: 60 s × [0.5, 1.5]');

/** Section - transient */
select is(herald.record_send_result(:'m_trans', 1, 'permanent', null, null, 21611, 'Queue full', 400)::text, 'scheduled',
  '21611 is transient by its class, whatever the dispatcher guessed from the 400');
select results_eq(format($$ select m.last_error = p.message, e.reason, a.spent, tests.secs(m.send_at) between 30 and 90
                            from messages m join provider_errors p on p.code = 21611
                            join message_attempts a on a.message_id = m.id
                            join message_events e on e.message_id = m.id and e.from_status = 'sending'
                            where m.id = %L $$, :'m_trans'),
  $$ values (true, 'retry_backoff'::text, true, true) $$,
  'retried with backoff, the attempt spent, with what a person can do');
select is(herald.record_send_result(:'m_last', 1, 'transient', null, null, 20503, 'Service Unavailable', 503)::text, 'failed',
  'transient with no attempt left: failed');
select results_eq(format($$ select e.reason, m.last_error = p.message from messages m
                            join provider_errors p on p.code = 20503
                            join message_events e on e.message_id = m.id and e.to_status = 'failed' where m.id = %L $$, :'m_last'),
  $$ values ('max_attempts'::text, true) $$, 'reason max_attempts, and the class text for failed_messages');

/** Section - defer_next_day */
select is(herald.record_send_result(:'m_defer', 1, 'transient', null, null, 63038, 'Account exceeded the daily limit', 429)::text,
  'scheduled', '63038 (HTTP 429): deferred, not retried');
-- Expected instants are computed as postgres: herald.spread is no API role's to call.
select tests.clear_authentication();
select results_eq(format($$ select m.send_at = herald.next_local_day(now(), 'America/New_York') + herald.spread(m.id, interval '30 minutes'),
                                   m.attempts, a.spent, m.last_error = p.message
                            from messages m join message_attempts a on a.message_id = m.id
                            join provider_errors p on p.code = 63038 where m.id = %L $$, :'m_defer'),
  $$ values (true, 1, false, true) $$,
  'to the start of the workspace''s next day (spread over its first half hour), the attempt not spent');
select results_eq(format($$ select from_status::text, to_status::text, reason, detail ? 'send_at_to' from message_events
                            where message_id = %L order by id desc limit 1 $$, :'m_defer'),
  $$ values ('sending'::text, 'scheduled'::text, 'defer_next_day_63038'::text, true) $$,
  'the ledger names the class and the code, and the move of send_at');
select tests.authenticate_as_service_role();
select is(herald.record_send_result(:'m_expire', 1, 'transient', null, null, 63038, 'Account exceeded the daily limit', 429)::text,
  'cancelled', 'a deadline before the next day: cancelled');
select is((select cancel_reason::text from messages where id = :'m_expire'), 'expired', 'with reason expired');

-- The next day's window: the workspace's day, then the first instant the recipient may get it
-- (herald.next_day_send_at runs inside the dispatcher's functions, as their owner: so here).
select tests.clear_authentication();
select tests.workspace('Error classes, quiet', 'America/New_York', '21:00', '08:00') as ws_q \gset
select tests.sender(:'ws_q', '+15550031002');
select tests.message(tests.contact(:'ws_q', '+14155531901'), now() + interval '1 hour') as m_q \gset
select tests.workspace('Error classes, UTC', 'UTC', '21:00', '08:00') as ws_u \gset
select tests.sender(:'ws_u', '+15550031003');
select tests.message(tests.contact(:'ws_u', '+81355531902', 'Asia/Tokyo'), now() + interval '1 hour') as m_u \gset
select is((select herald.next_day_send_at(m) from messages m where m.id = :'m_q'),
  (((now() at time zone 'America/New_York')::date + 1) + time '08:00') at time zone 'America/New_York'
    + herald.spread(:'m_q', interval '30 minutes'),
  'New York, quiet until 08:00: the next day''s window opens at 08:00 local (spread over half an hour)');
select is((select herald.next_day_send_at(m) from messages m where m.id = :'m_u'),
  herald.next_local_day(now(), 'UTC') + herald.spread(:'m_u', interval '30 minutes'),
  'a UTC workspace''s next day starts at 09:00 in Tokyo, inside the recipient''s window: no later');
select tests.authenticate_as_service_role();

/** Section - permanent */
select is(herald.record_send_result(:'m_perm', 1, 'permanent', null, null, 21408, 'Permission to send an SMS has not been enabled', 400)::text,
  'failed', '21408: failed at once');
select results_eq(format($$ select m.last_error_code, m.last_error = p.message, e.reason from messages m
                            join provider_errors p on p.code = 21408
                            join message_events e on e.message_id = m.id and e.to_status = 'failed' where m.id = %L $$, :'m_perm'),
  $$ values (21408, true, 'provider_error_21408'::text) $$, 'with the class text and the code in the ledger');
select is(herald.record_send_result(:'m_odd', 1, 'transient', null, null, 21999, 'Something new', 400)::text, 'failed',
  'a 4xx code Herald does not know: permanent');
select is((select last_error from messages where id = :'m_odd'),
  'Something new (Twilio error 21999: https://www.twilio.com/docs/api/errors/21999)', 'in Twilio''s words, with its page');

select is(herald.record_send_result(:'m_unsub', 1, 'permanent', null, null, 21610, 'Attempt to send to unsubscribed recipient', 400)::text,
  'failed', '21610: failed at once');
select tests.clear_authentication();
select results_eq(format($$ select c.opted_out_at is not null, s.reason from contacts c
                            join suppressions s on s.workspace_id = c.workspace_id and s.phone_hash = herald.phone_hash(c.workspace_id, c.phone)
                            where c.id = %L $$, :'c_unsub'),
  $$ values (true, 'provider_unsubscribed'::text) $$, 'the contact is opted out and the number suppressed, as reported by the provider');
select results_eq(format($$ select channel::text, status::text, source::text, proof, actor from consents where contact_id = %L $$, :'c_unsub'),
  format($$ values ('sms'::text, 'opted_out'::text, 'provider'::text, 'Twilio error 21610 answering message %s, attempt 1'::text, 'dispatcher'::text) $$, :'m_unsub'),
  'and a consent record says so, with the message and attempt as proof');
select herald.opt_out_by_provider(m, 'again') from messages m where m.id = :'m_unsub';
select is((select count(*)::int from consents where contact_id = :'c_unsub'), 1, 'a second report records no second opt-out');

select tests.authenticate_as('ec_owner');
select results_eq(format($$ select f.id, f.status::text, f.last_error from failed_messages f
                            where f.id in (%L, %L) order by f.last_error_code $$, :'m_perm', :'m_unsub'),
  format($$ select * from (values (%L::uuid, 'failed'::text, (select message from provider_errors where code = 21408)),
                                  (%L::uuid, 'failed', (select message from provider_errors where code = 21610))) v $$, :'m_perm', :'m_unsub'),
  'a member reads in failed_messages what to do about each');
select tests.authenticate_as_service_role();

/** Section - no answer */
select is(herald.record_send_result(:'m_noanswer', 1, 'transient', null, null, null, 'could not connect (connection refused)')::text,
  'scheduled', 'a connection never made (no answer, nothing written): the dispatcher''s transient stands');
select is((select last_error from messages where id = :'m_noanswer'), 'could not connect (connection refused)', 'in its own words');

/** Section - the look-up counts spent calls only */
-- Attempt 1 got a 429 (not spent), attempt 2 no answer (spent): the look-up for attempt 3 finds
-- nothing, and with max_attempts 2 one spent call leaves room for another.
select herald.record_send_result(:'m_lookup', 1, 'transient', null, null, 20429, 'Too Many Requests', 429);
select is((select attempt_no from herald.claim_messages(100, interval '1 minute') where message_id = :'m_lookup'), 2, 'attempt 2 claimed');
select is((select verdict from herald.confirm_send(array[:'m_lookup']::uuid[], array[2])), 'send', 'and confirmed');
select herald.record_send_result(:'m_lookup', 2, 'unknown', null, null, null, 'no answer');
select tests.clear_authentication();
-- The retry delay passes: the lease and send_at it moved out are behind us.
update messages set lease_expires_at = now() - interval '1 second', send_at = now() - interval '1 second' where id = :'m_lookup';
select tests.authenticate_as_service_role();
select is(herald.reap_expired_leases(), 1, 'the lease runs out: reaped for the look-up');
select is((select attempt_no from herald.claim_messages(100, interval '1 minute') where message_id = :'m_lookup'), 3, 'the look-up is attempt 3');
select is(herald.record_lookup_miss(:'m_lookup', 3), 'send', 'one spent call of two: it may be sent (two confirmed calls, but the 429 is no call)');

/** Section - status callbacks */
select herald.record_send_result(c.message, 1, 'sent', 'SM' || md5(c.name), 'queued')
from cases c where c.name like 'cb_%' order by c.name;
select is((select count(*)::int from messages m join cases c on c.message = m.id where c.name like 'cb_%' and m.status = 'sent'), 6,
  'the callback cases are sent');

select is(herald.apply_provider_status('SM' || md5('cb_perm'), 'undelivered', 30003, '{}', 'cb-perm-1'), 'applied',
  'undelivered 30003 applies');
select results_eq(format($$ select m.status::text, m.last_error_code, m.last_error = p.message, e.reason, e.actor
                            from messages m join provider_errors p on p.code = 30003
                            join message_events e on e.message_id = m.id and e.to_status = 'undelivered' where m.id = %L $$, :'m_cb_perm'),
  $$ values ('undelivered'::text, 30003, true, 'provider_undelivered_30003'::text, 'provider'::text) $$,
  'undelivered, with what a person can do');
select results_eq($$ select herald.apply_provider_status('SM' || md5('cb_perm'), s, e, '{}', t)
                     from (values ('undelivered', 30003, 'cb-perm-1'), ('undelivered', 30003, null), ('sent', null, null), ('delivered', null, null))
                          v (s, e, t) $$,
  $$ values ('duplicate'), ('unchanged'), ('unchanged'), ('unchanged') $$,
  'a redelivery, a repeat and late callbacks change nothing');
select is((select count(*)::int from messages where retry_of = :'m_cb_perm'), 0, 'a permanent delivery error is not sent again');
select is(herald.apply_provider_status('SM' || md5('cb_window'), 'failed', 63016, '{}'), 'applied', 'failed 63016 applies');
select is((select last_error from messages where id = :'m_cb_window'), (select message from provider_errors where code = 63016),
  '63016: a template is what it needs');

select is(herald.apply_provider_status('SM' || md5('cb_trans'), 'failed', 30001, '{}'), 'applied', 'failed 30001 applies');
select results_eq(format($$ select o.status::text, o.last_error = p.message, r.status::text, r.body = o.body, r.category = o.category,
                                   r.max_attempts, tests.secs(r.send_at) between 30 and 90, e.reason, r.sender_id = o.sender_id
                            from messages o join provider_errors p on p.code = 30001
                            join messages r on r.retry_of = o.id
                            join message_events e on e.message_id = r.id and e.from_status is null where o.id = %L $$, :'m_cb_trans'),
  $$ values ('failed'::text, true, 'scheduled'::text, true, true, 2, true, 'retry_backoff_30001'::text, true) $$,
  'the message stays failed as Twilio said; a new one (retry_of) goes after the backoff with the two attempts left');
select is(herald.apply_provider_status('SM' || md5('cb_trans'), 'failed', 30001, '{}'), 'unchanged', 'the same callback again changes nothing');
select is((select count(*)::int from messages where retry_of = :'m_cb_trans'), 1, 'and sends nothing again');
select is(herald.apply_provider_status('SM' || md5('cb_spent'), 'undelivered', 30008, '{}'), 'applied', 'undelivered 30008 applies');
select is((select count(*)::int from messages where retry_of = :'m_cb_spent'), 0, 'with its only attempt spent, nothing is sent again');

select is(herald.apply_provider_status('SM' || md5('cb_defer'), 'failed', 30023, '{}'), 'applied', 'failed 30023 applies');
select tests.clear_authentication();
select results_eq(format($$ select a.spent, r.max_attempts,
                                   r.send_at = herald.next_local_day(now(), 'America/New_York') + herald.spread(o.id, interval '30 minutes'),
                                   e.reason
                            from messages o join message_attempts a on a.message_id = o.id
                            join messages r on r.retry_of = o.id
                            join message_events e on e.message_id = r.id and e.from_status is null where o.id = %L $$, :'m_cb_defer'),
  $$ values (false, 3, true, 'defer_next_day_30023'::text) $$,
  'a daily cap by callback: the attempt not spent, sent again on the next day with all three attempts');

update contacts set opted_out_at = now() where id = :'c_cb_blocked';
select tests.authenticate_as_service_role();
select is(herald.apply_provider_status('SM' || md5('cb_blocked'), 'failed', 30001, '{}'), 'applied', 'failed 30001 for an opted-out contact');
select is((select count(*)::int from messages where retry_of = :'m_cb_blocked'), 0, 'is not sent again');
select tests.clear_authentication();
select throws_ok(format($$ select herald.resend_after_delivery_error(%L, 'permanent', 30003) $$, :'m_cb_perm'), '22023',
  'only transient and defer_next_day errors are sent again, not permanent', 'a permanent error is never sent again');
select tests.authenticate_as_service_role();

/** Section - bad input and who may call */
select throws_ok(format($$ select herald.record_send_result(%L, 1, 'transient', null, null, 20500, 'x', 42) $$, :'m_trans'), '22023',
  'invalid HTTP status 42', 'an HTTP status that is none is refused');
select is((select status::text from messages where id = :'m_trans'), 'scheduled', 'and changes nothing');
select is(to_regprocedure('herald.record_send_result(uuid, integer, text, text, text, integer, text)'), null::regprocedure,
  'the seven-argument signature is gone, so no call is ambiguous');
select tests.authenticate_as('ec_owner');
select throws_ok(format($$ select herald.record_send_result(%L, 1, 'sent', 'SMx') $$, :'m_trans'), '42501', null,
  'a member cannot record a provider answer');
select throws_ok(format($$ select herald.resend_after_delivery_error(%L, 'transient', 30001) $$, :'m_cb_perm'), '42501', null,
  'nor send a failed message again through the dispatcher''s path');

select * from finish();
rollback;
