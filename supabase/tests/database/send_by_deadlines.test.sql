-- Send-by deadlines (…_send_by_deadlines.sql): messages.expires_at and its rules
-- (herald.messages_deadline_on_insert), deadlines moving with their appointment
-- (herald.appointments_move_deadlines), herald.past_deadline, herald.validity_period_seconds,
-- and herald.cancel_expired_messages, which cancels what any deferral pushed past its deadline.
-- Clocks are fixed where it matters: the functions take the time as a parameter.
begin;
select plan(31);

select tests.workspace('Clinic', 'America/New_York', '21:00', '08:00') as ws \gset
select tests.sender(:'ws', '+15550008001');
select tests.contact(:'ws', '+14155550901') as c \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'c', 'Check-up', now() + interval '2 days')
  returning id as appt \gset

/** Section - the deadline on a message */
insert into messages (workspace_id, contact_id, body, send_at, appointment_id) values (:'ws', :'c', 'See you in a day', now() + interval '1 day', :'appt')
  returning id as reminder \gset
select is((select expires_at from messages where id = :'reminder'), now() + interval '2 days',
  'a message scheduled before its appointment expires at the appointment''s start');
insert into messages (workspace_id, contact_id, body, send_at, appointment_id) values (:'ws', :'c', 'How did it go?', now() + interval '3 days', :'appt')
  returning id as follow_up \gset
select is((select expires_at from messages where id = :'follow_up'), null, 'one scheduled after the start (a follow-up) has no deadline');
insert into messages (workspace_id, contact_id, body, send_at, appointment_id, expires_at)
values (:'ws', :'c', 'Bring your card', now() + interval '1 day', :'appt', now() + interval '1 day 12 hours') returning id as told \gset
select is((select expires_at from messages where id = :'told'), now() + interval '1 day 12 hours', 'a deadline given is kept');
select throws_ok(format($$ insert into messages (workspace_id, contact_id, body, send_at, expires_at) values (%L, %L, 'x', now() + interval '1 hour', now() + interval '1 hour') $$, :'ws', :'c'),
  '22023', null, 'a deadline at its own send time is refused');
select throws_ok(format($$ insert into messages (workspace_id, contact_id, body, send_at, expires_at) values (%L, %L, 'x', now() - interval '1 hour', now() - interval '1 minute') $$, :'ws', :'c'),
  '23514', null, 'a message cannot be created already expired');
select lives_ok(format($$ insert into messages (workspace_id, contact_id, body, send_at) values (%L, %L, 'x', now()) $$, :'ws', :'c'),
  'a message without appointment or deadline is untouched');

/** Section - moving the appointment moves the deadlines */
update appointments set starts_at = starts_at + interval '3 hours' where id = :'appt';
select results_eq(format('select send_at, expires_at from messages where id = %L', :'reminder'),
  $$ values (now() + interval '1 day 3 hours', now() + interval '2 days 3 hours') $$,
  'moving the appointment moves a pending reminder''s send time and deadline by the same amount');
select is((select expires_at from messages where id = :'told'), now() + interval '1 day 15 hours', 'a deadline given moves too');
update appointments set starts_at = now() - interval '1 hour' where id = :'appt';
select results_eq(format('select status::text, cancel_reason::text from messages where id in (%L, %L) order by id', :'reminder', :'told'),
  $$ values ('cancelled', 'expired'), ('cancelled', 'expired') $$,
  'moved into the past, its pending reminders are cancelled expired');
select results_eq(format($$ select reason from message_events where message_id = %L and to_status = 'cancelled' $$, :'reminder'),
  array['expired'], 'with expired in the ledger');
select is((select status::text from messages where id = :'follow_up'), 'scheduled', 'a follow-up without deadline is left alone');

/** Section - past_deadline and ValidityPeriod */
select ok(not herald.past_deadline('2026-06-15 12:00Z', '2026-06-15 11:59:59Z'), 'a second before the deadline is in time');
select ok(herald.past_deadline('2026-06-15 12:00Z', '2026-06-15 12:00Z'), 'at the deadline is too late');
select ok(not herald.past_deadline(null, '2030-01-01Z'), 'no deadline is never too late');
select is(herald.validity_period_seconds(null, now()), null, 'no deadline, no ValidityPeriod');
select is(herald.validity_period_seconds('2026-06-15 13:00:00.9Z', '2026-06-15 12:00Z'), 3600, 'whole seconds left, rounded down');
select is(herald.validity_period_seconds('2026-06-15 12:00:00.5Z', '2026-06-15 12:00Z'), 1, 'under a second left is 1, the least Twilio takes');
select is(herald.validity_period_seconds('2026-06-15 11:00Z', '2026-06-15 12:00Z'), 1, 'a deadline already past is 1 too');
select is(herald.validity_period_seconds('2026-06-16 12:00Z', '2026-06-15 12:00Z'), 36000, 'a day left is capped at 36,000, the most Twilio takes');
select is(herald.validity_period_seconds('2026-06-15 22:00Z', '2026-06-15 12:00Z'), 36000, 'exactly 36,000 seconds left is 36,000');

/** Section - what a deferral pushed past its deadline is cancelled, never sent */
-- New York, the night the clocks go back (2026-11-01: 02:00 EDT → 01:00 EST). The appointment is
-- at the second 01:30 (EST, 06:30Z); its reminder an hour before is the first 01:30 (EDT, 05:30Z),
-- inside quiet hours (21:00–08:00).
select tests.contact(:'ws', '+14155550902') as night \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'night', 'Night shift', '2026-11-01 06:30Z')
  returning id as night_appt \gset
insert into messages (workspace_id, contact_id, body, send_at, appointment_id, created_at)
values (:'ws', :'night', 'Your appointment is in an hour', '2026-11-01 05:30Z', :'night_appt', '2026-10-31 12:00Z') returning id as night_msg \gset
select is((select expires_at from messages where id = :'night_msg'), '2026-11-01 06:30Z'::timestamptz,
  'the reminder expires at the appointment, the repeated 01:30');
select tests.authenticate_as_service_role();
select herald.queue_due_messages(20000, '2026-11-01 05:30Z');
select tests.clear_authentication();
select results_eq(format('select status::text, cancel_reason::text, send_at from messages where id = %L', :'night_msg'),
  $$ values ('cancelled', 'expired', '2026-11-01 05:30Z'::timestamptz) $$,
  'queueing cancels it expired at once: quiet hours would hold it to 08:00 EST (13:00Z), after the appointment');
select results_eq(format($$ select from_status::text, to_status::text, reason, actor from message_events
                            where message_id = %L and to_status = 'cancelled' $$, :'night_msg'),
  $$ values ('scheduled', 'cancelled', 'expired', 'cron') $$, 'the ledger says why, and who');
select tests.authenticate_as_service_role();
select is(herald.cancel_expired_messages('2026-11-01 06:30Z'), 0, 'at the start the pg_cron safety net finds nothing left to expire');
select tests.clear_authentication();
select is((select count(*)::int from messages where id = :'night_msg' and status = 'cancelled'), 1,
  'it can never be queued or sent after the appointment');

-- Across midnight: an appointment at 00:30 EST whose reminder an hour before falls at 23:30,
-- inside quiet hours, is cancelled; one at 09:00 whose reminder waits overnight still goes, at
-- 08:00 (plus the spread), before its deadline.
select tests.contact(:'ws', '+14155550904') as late \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values
  (:'ws', :'late', 'After midnight', '2026-12-11 05:30Z'), (:'ws', :'late', 'In the morning', '2026-12-11 14:00Z');
insert into messages (workspace_id, contact_id, body, send_at, appointment_id, created_at)
select :'ws', :'late', 'Reminder: ' || a.title, '2026-12-11 04:30Z', a.id, '2026-12-01 12:00Z' from appointments a where a.contact_id = :'late';
select tests.authenticate_as_service_role();
select herald.queue_due_messages(20000, '2026-12-11 04:30Z');
select tests.clear_authentication();
select results_eq(format($$ select body, status::text, coalesce(cancel_reason::text, '-') from messages where contact_id = %L order by body $$, :'late'),
  $$ values ('Reminder: After midnight', 'cancelled', 'expired'), ('Reminder: In the morning', 'scheduled', '-') $$,
  'at 23:30 EST: the reminder of the 00:30 appointment is cancelled expired, the 09:00 one waits');
select ok((select send_at >= '2026-12-11 13:00Z' and send_at < expires_at from messages where body = 'Reminder: In the morning'),
  'to 08:00 EST (13:00Z) or a little after, before its appointment');
select is((select reason from message_events e join messages m on m.id = e.message_id
           where m.body = 'Reminder: In the morning' order by e.id desc limit 1), 'quiet_hours', 'with reason quiet_hours');

select tests.contact(:'ws', '+14155550903') as busy \gset
insert into messages (workspace_id, contact_id, body, send_at, expires_at, created_at)
values (:'ws', :'busy', 'queued but too late', '2026-11-01 05:00Z', '2026-11-01 05:10Z', '2026-10-31 12:00Z'),
       (:'ws', :'busy', 'still in time', '2026-11-01 05:00Z', '2026-11-01 07:00Z', '2026-10-31 12:00Z');
update messages set status = 'queued' where contact_id = :'busy';
select tests.authenticate_as_service_role();
select is(herald.cancel_expired_messages('2026-11-01 06:00Z'), 1, 'a queued message past its deadline is expired too');
select tests.clear_authentication();
select results_eq(format('select body, status::text from messages where contact_id = %L order by body', :'busy'),
  $$ values ('queued but too late', 'cancelled'), ('still in time', 'queued') $$, 'and only that one');
select is((select schedule from cron.job where jobname = 'herald-cancel-expired-messages'), '* * * * *',
  'pg_cron runs herald.cancel_expired_messages every minute');

select * from finish();
rollback;
