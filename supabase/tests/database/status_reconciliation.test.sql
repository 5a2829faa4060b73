-- Reconciling missed status callbacks (…_status_reconciliation.sql): herald.select_status_checks
-- (the pg_cron job) picks the attempts of messages still sent or sending that nothing was heard of
-- for the configured age, herald.claim_status_checks hands them to a dispatcher under a lease, and
-- herald.record_status_check applies what Twilio says by rank only, with actor reconciliation.
-- Inside this transaction now() does not move: attempts are dated back by hand where time would.
begin;
select plan(31);
update workspaces set automation_enabled = false;
delete from herald.status_checks;

select results_eq(
  $$ select schedule, command from cron.job where jobname = 'herald-reconcile-statuses' $$,
  $$ values ('* * * * *'::text, 'select herald.select_status_checks(''10 minutes'')'::text) $$,
  'pg_cron selects status checks every minute, after 10 minutes of silence (the job''s argument is the setting)');

select tests.workspace('Reconciles') as ws \gset
select tests.sender(:'ws', '+15550024101');
select tests.create_user('sr_owner');
insert into workspace_members (workspace_id, user_id, role) values (:'ws', tests.get_user_id('sr_owner'), 'owner');
create temp table cases (name text primary key, contact uuid, message uuid, sid text);
grant select on cases to public;
insert into cases (name, contact)
select n, tests.contact(:'ws', '+1415552410' || i)
from unnest(array['silent', 'heard', 'delivered', 'ancient', 'stuck', 'flaky']) with ordinality t(n, i);
update cases set message = tests.message(contact, now() - interval '1 minute', 'queued'), sid = 'SM' || md5(name);

-- Claimed, confirmed and taken by Twilio, as the dispatcher does it.
select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(100, interval '1 minute')), 6, 'six claimed');
select count(*) from herald.confirm_send((select array_agg(message) from cases), array_fill(1, array[6]));
select count(herald.record_send_result(message, 1, 'sent', sid, 'queued')) from cases where name <> 'stuck';
select tests.clear_authentication();
-- stuck: Twilio's sid is on its attempt while the message is still sending (a stale writer).
update message_attempts set provider_sid = 'SM' || md5('stuck'), responded_at = now()
where message_id = (select message from cases where name = 'stuck');
-- Twenty minutes of silence for all; heard got a callback a minute ago; ancient went out days ago.
update message_attempts set requested_at = now() - interval '20 minutes', responded_at = now() - interval '20 minutes'
where message_id in (select message from cases);
update message_attempts set last_callback_at = now() - interval '1 minute' where provider_sid = 'SM' || md5('heard');
update message_attempts set requested_at = now() - interval '4 days' where provider_sid = 'SM' || md5('ancient');
update messages set sent_at = now() - interval '4 days' where id = (select message from cases where name = 'ancient');
select herald.apply_provider_status('SM' || md5('delivered'), 'delivered', null, '{}');

/** Section - the job's selection */
select tests.authenticate_as_service_role();
select is(herald.select_status_checks('10 minutes'), 3, 'three are due: silent, stuck (sending with a sid) and flaky');
select tests.clear_authentication();
select results_eq(
  $$ select c.name from herald.status_checks s join message_attempts a on a.id = s.attempt_id
     join cases c on c.message = a.message_id order by 1 $$,
  $$ values ('flaky'::text), ('silent'), ('stuck') $$,
  'not the one heard of a minute ago, not the delivered one, not the one from days ago');
select tests.authenticate_as_service_role();
select is(herald.select_status_checks('10 minutes'), 3, 'selecting again adds nothing');
select throws_ok($$ select herald.select_status_checks('0 seconds') $$, '22023', 'the wait before a status check must be positive',
  'a wait of nothing is refused');
select throws_ok($$ select herald.select_status_checks('1 hour', '30 minutes') $$, '22023', null,
  'giving up before starting is refused');

/** Section - the dispatcher's claim */
select throws_ok($$ select * from herald.claim_status_checks(0) $$, '22023', 'limit must be between 1 and 1000', 'a claim of none is refused');
select throws_ok($$ select * from herald.claim_status_checks(10, interval '1 second') $$, '22023', 'lease must be at least 10 seconds',
  'a lease too short is refused');
select is((select count(*)::int from herald.claim_status_checks(2) c
           where c.provider_sid in (select sid from cases where name in ('silent', 'stuck', 'flaky'))), 2,
  'a batch of two of them, by sid');
select is((select count(*)::int from herald.claim_status_checks(100)), 1, 'another dispatcher gets the third: the two are leased');
select is_empty($$ select * from herald.claim_status_checks(100) $$, 'and then nothing');

/** Section - what Twilio says */
select is(herald.record_status_check((select sid from cases where name = 'silent'), 'delivered'), 'applied',
  'delivered at Twilio: applied');
select tests.clear_authentication();
select results_eq($$ select status::text, delivered_at is not null from messages where id = (select message from cases where name = 'silent') $$,
  $$ values ('delivered'::text, true) $$, 'the message is delivered');
select results_eq($$ select from_status::text, to_status::text, reason, actor from message_events
                     where message_id = (select message from cases where name = 'silent') order by id desc limit 1 $$,
  $$ values ('sent'::text, 'delivered'::text, 'provider_delivered'::text, 'reconciliation'::text) $$,
  'the ledger says the reconciliation found it');
select is((select provider_status from message_attempts where provider_sid = (select sid from cases where name = 'silent')), 'delivered',
  'so does its attempt');
select is((select count(*)::int from herald.status_checks s join message_attempts a on a.id = s.attempt_id
           where a.provider_sid = (select sid from cases where name = 'silent')), 0, 'its check is done');

select tests.authenticate_as_service_role();
select is(herald.record_status_check((select sid from cases where name = 'stuck'), 'sent'), 'applied',
  'the stuck one is sent at Twilio: applied');
select tests.clear_authentication();
select is((select status::text from messages where id = (select message from cases where name = 'stuck')), 'sent', 'it is sent here too');
select results_eq($$ select s.checks, tests.secs(s.due_at), s.leased_until from herald.status_checks s
                     join message_attempts a on a.id = s.attempt_id where a.provider_sid = (select sid from cases where name = 'stuck') $$,
  $$ values (1, 1200::numeric, null::timestamptz) $$, 'still sent: checked again after twice the wait');

select tests.authenticate_as_service_role();
select is(herald.record_status_check((select sid from cases where name = 'flaky'), null, null, 'GET /Messages/SM….json: no answer within 15000 ms'),
  'failed', 'a failed look-up');
select tests.clear_authentication();
select results_eq($$ select s.checks, tests.secs(s.due_at), s.last_error from herald.status_checks s
                     join message_attempts a on a.id = s.attempt_id where a.provider_sid = (select sid from cases where name = 'flaky') $$,
  $$ values (1, 1200::numeric, 'GET /Messages/SM….json: no answer within 15000 ms'::text) $$, 'is tried again later, saying why');
select is((select status::text from messages where id = (select message from cases where name = 'flaky')), 'sent', 'and changes nothing');

-- A late report never takes a message back.
select tests.authenticate_as_service_role();
select is(herald.record_status_check((select sid from cases where name = 'stuck'), 'queued'), 'unchanged',
  'queued after sent: unchanged');
select is(herald.record_status_check('SM' || md5('nobody'), 'delivered'), 'gone', 'a sid with no check: nothing to do');
select throws_ok($$ select herald.record_status_check('SMx', 'teleported') $$, '22023', 'unknown provider status teleported',
  'a status Twilio does not have is refused');

-- The callback arrives after all: the next selection drops the check.
select herald.apply_provider_status((select sid from cases where name = 'stuck'), 'delivered', null, '{}');
select tests.authenticate_as_service_role();
select herald.select_status_checks('10 minutes');
select tests.clear_authentication();
select is((select count(*)::int from herald.status_checks), 1, 'a check whose message moved on goes; flaky stays');

-- A hard delete takes the checks of the contact's attempts with it.
select tests.authenticate_as('sr_owner');
select delete_contact((select contact from cases where name = 'flaky'), true);
select tests.clear_authentication();
select is((select count(*)::int from herald.status_checks), 0, 'the hard-deleted contact''s check went with its attempt');

/** Section - who may */
select tests.authenticate_as('sr_owner');
select throws_ok($$ select herald.select_status_checks() $$, '42501', null, 'a member cannot run the job');
select throws_ok($$ select * from herald.claim_status_checks() $$, '42501', null, 'nor claim checks');
select throws_ok($$ select herald.record_status_check('SMx', 'delivered') $$, '42501', null, 'nor record a status');

select * from finish();
rollback;
