-- No deferral carries a message past its deadline (…_deferrals_keep_deadlines.sql):
-- herald.messages_deferral_keeps_deadline cancels expired, instead of deferring, a message that
-- the daily limit, a retry backoff or a plain update would move to or past its expires_at; an
-- appointment move, which carries the deadline along, is exempt. The dispatcher's functions run as
-- service_role; the plain update as a stale writer would (postgres). now() does not move inside
-- this transaction, so every instant is computed from it.
begin;
select plan(9);
update workspaces set automation_enabled = false;

select tests.workspace('Deadlines kept', 'UTC', p_daily_limit => 1) as ws \gset
update workspaces set retry_base_seconds = 600 where id = :'ws';
select tests.sender(:'ws', '+15550041001');
select tests.contact(:'ws', '+14155554001') as c \gset

/** Section - the daily limit */
-- Two due messages, room for one today: the second would wait for tomorrow, past its deadline.
insert into messages (workspace_id, contact_id, body, send_at, category, expires_at) values
  (:'ws', :'c', 'first today', now() - interval '2 minutes', 'transactional', now() + interval '1 hour'),
  (:'ws', :'c', 'over the limit', now() - interval '1 minute', 'transactional', now() + interval '1 hour');
select tests.authenticate_as_service_role();
select is(herald.queue_due_messages(100, now()) - 'deferred_quiet_hours',
  '{"queued": 1, "cancelled": 0, "failed": 0, "deferred_daily_limit": 1}'::jsonb,
  'queueing: one queued, the other deferred by the daily limit…');
select tests.clear_authentication();
select results_eq($$ select body, status::text, coalesce(cancel_reason::text, '-'), send_at < now() from messages
                     where workspace_id = (select id from workspaces where name = 'Deadlines kept') order by body $$,
  $$ values ('first today', 'queued', '-', true), ('over the limit', 'cancelled', 'expired', true) $$,
  '…which its deadline turned into a cancellation: expired, send_at left as it was');
select results_eq($$ select e.from_status::text, e.to_status::text, e.reason from message_events e
                     join messages m on m.id = e.message_id where m.body = 'over the limit' and e.to_status = 'cancelled' $$,
  $$ values ('scheduled', 'cancelled', 'expired') $$, 'the ledger says expired');

/** Section - a retry backoff */
-- The queued one is claimed and Twilio answers 503 with 15 minutes of deadline left: a 10-minute
-- base backoff with jitter may reach past it, so the deadline is moved to 5 minutes to be sure.
select id as m_first from messages where body = 'first today' \gset
update messages set expires_at = now() + interval '5 minutes' where id = :'m_first';
select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(10)), 1, 'claimed');
select is(herald.record_send_result(:'m_first', 1, 'transient', null, null, 20503, 'Service Unavailable', 503)::text, 'cancelled',
  'a transient error whose backoff would pass the deadline cancels it rather than retrying it too late');
select tests.clear_authentication();
select results_eq(format($$ select status::text, cancel_reason::text, last_error_code from messages where id = %L $$, :'m_first'),
  $$ values ('cancelled', 'expired', 20503) $$, 'expired, with the error that came before');

/** Section - a plain update, and the exempt appointment move */
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'c', 'Visit', now() + interval '2 days')
returning id as appt \gset
insert into messages (workspace_id, contact_id, body, send_at, appointment_id)
values (:'ws', :'c', 'see you tomorrow', now() + interval '1 day', :'appt') returning id as m_reminder \gset
update appointments set starts_at = starts_at + interval '3 days' where id = :'appt';
select results_eq(format($$ select status::text, send_at, expires_at from messages where id = %L $$, :'m_reminder'),
  $$ values ('scheduled', now() + interval '4 days', now() + interval '5 days') $$,
  'an appointment moved three days on takes its reminder and the reminder''s deadline along: not expired');
update messages set send_at = expires_at + interval '1 minute' where id = :'m_reminder';
select results_eq(format($$ select status::text, cancel_reason::text, send_at from messages where id = %L $$, :'m_reminder'),
  $$ values ('cancelled', 'expired', now() + interval '4 days') $$,
  'a plain update that moves it past its deadline cancels it instead');
select is((select count(*)::int from messages where body = 'see you tomorrow' and status = 'scheduled'), 0,
  'nothing is left waiting past its deadline');

select * from finish();
rollback;
