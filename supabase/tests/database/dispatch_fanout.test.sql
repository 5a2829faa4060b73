-- Dispatch sized by the work (…_dispatch_fanout.sql): herald.dispatch_fanout says how many
-- dispatcher calls to start, from what each sender can send within one call's budget;
-- herald.begin_dispatch_run / herald.end_dispatch_run register the calls running meanwhile; and
-- where pg_net and Vault exist, herald.invoke_dispatch posts that many requests.
begin;

select exists (select 1 from pg_available_extensions where name = 'pg_net')
       and exists (select 1 from pg_namespace where nspname = 'vault') as scheduled_here \gset
select plan(case when :'scheduled_here'::boolean then 34 else 32 end);

-- Only this file's messages are due; a budget of 10 s and calls sized for 0.5 msg/s (5 messages
-- per call) keep the numbers small.
update workspaces set automation_enabled = false;
update herald.dispatch_settings set call_budget = '10 seconds', call_rate = 0.5, max_calls = 20;
select tests.create_user('fan_owner');
select tests.create_user('fan_stranger');

create function pg_temp.fanout(p_every interval default '10 seconds')
returns table (calls integer, needed integer, running integer, sendable integer, call_budget interval)
language sql as $$ select * from herald.dispatch_fanout(p_every) $$;
-- Functions are not executable by public by default (the project's default privileges).
grant execute on function pg_temp.fanout(interval) to service_role;

/** Section - what the backlog needs */
select tests.authenticate_as_service_role();
select results_eq($$ select * from pg_temp.fanout() $$,
  $$ values (0, 0, 0, 0, interval '10 seconds') $$, 'nothing due: no call');
select tests.clear_authentication();

select tests.workspace('Fan-out') as ws \gset
select tests.sender(:'ws', '+15557781001', 1) as s1 \gset
insert into contacts (workspace_id, phone) select :'ws', '+1415778' || lpad(i::text, 4, '0') from generate_series(1, 30) i;
insert into messages (workspace_id, contact_id, sender_id, channel, body, send_at, status)
select :'ws', c.id, :'s1', 'sms', 'short ' || c.phone, now() - interval '1 minute', 'queued'
from contacts c where c.workspace_id = :'ws' order by c.phone limit 25;

select tests.authenticate_as_service_role();
select results_eq($$ select sendable, needed, calls from pg_temp.fanout() $$, $$ values (10, 2, 2) $$,
  '25 due on a sender at 1 msg/s: 10 can go out in a 10 s budget, two calls of 5');
select tests.clear_authentication();

-- Segments count against the sender's rate; a WhatsApp message is one, whatever its length.
insert into senders (workspace_id, channel, phone_number, status, mps) values (:'ws', 'sms', '+15557781002', 'connected', 0.5)
returning id as s2 \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
values (:'ws', 'whatsapp', '+15557781003', 'connected', 0.5, true) returning id as s3 \gset
insert into messages (workspace_id, contact_id, sender_id, channel, body, send_at, status)
select :'ws', c.id, :'s2', 'sms', repeat('a', 200), now() - interval '30 seconds' + i * interval '1 second', 'queued'
from (select id, row_number() over (order by phone) as i from contacts where workspace_id = :'ws') c where c.i <= 4;
insert into messages (workspace_id, contact_id, sender_id, channel, body, send_at, status)
select :'ws', c.id, :'s3', 'whatsapp', repeat('b', 200), now() - interval '30 seconds', 'queued'
from (select id, row_number() over (order by phone) as i from contacts where workspace_id = :'ws') c where c.i <= 3;
select is((select min(segments) from messages where sender_id = :'s2'), 2, 'a 200-character SMS is two segments');

select tests.authenticate_as_service_role();
select results_eq($$ select sendable, needed, calls from pg_temp.fanout() $$, $$ values (15, 3, 3) $$,
  'two 2-segment SMS fit in 5 segments (0.5 msg/s for 10 s), three WhatsApp messages do: 10 + 2 + 3');
select tests.clear_authentication();

-- Not due, not queued, or in a paused workspace: not counted.
insert into messages (workspace_id, contact_id, sender_id, channel, body, send_at, status)
select :'ws', c.id, :'s1', 'sms', 'later ' || c.phone, now() + interval '1 minute', 'queued'
from contacts c where c.workspace_id = :'ws' order by c.phone limit 5;
insert into messages (workspace_id, contact_id, sender_id, channel, body, send_at, status)
select :'ws', c.id, :'s1', 'sms', 'scheduled ' || c.phone, now() - interval '1 minute', 'scheduled'
from contacts c where c.workspace_id = :'ws' order by c.phone limit 5;
select tests.workspace('Paused fan-out') as wp \gset
select tests.sender(:'wp', '+15557781004', 100) as sp \gset
insert into contacts (workspace_id, phone) values (:'wp', '+14157789999') returning id as cp \gset
insert into messages (workspace_id, contact_id, sender_id, channel, body, send_at, status)
select :'wp', :'cp', :'sp', 'sms', 'paused ' || i, now() - interval '1 minute', 'queued' from generate_series(1, 50) i;
update workspaces set automation_enabled = false where id = :'wp';
select tests.authenticate_as_service_role();
select results_eq($$ select sendable from pg_temp.fanout() $$, $$ values (15) $$,
  'messages not yet due, still scheduled, or of a paused workspace are not counted');
select tests.clear_authentication();

-- The maximum caps the calls.
update herald.dispatch_settings set max_calls = 2;
select tests.authenticate_as_service_role();
select results_eq($$ select needed, calls from pg_temp.fanout() $$, $$ values (2, 2) $$, 'max_calls caps the calls');
select tests.clear_authentication();
update herald.dispatch_settings set max_calls = 20;

/** Section - calls already running */
select tests.authenticate_as_service_role();
select run_id as r1, budget as b1 from herald.begin_dispatch_run() \gset
select is(:'b1'::interval, interval '10 seconds', 'a call with no budget of its own gets the setting''s');
select results_eq($$ select running, calls from pg_temp.fanout('5 seconds') $$, $$ values (1, 2) $$,
  'a call still claiming at the next tick does part of the work: one fewer');
select results_eq($$ select running, calls from pg_temp.fanout('10 seconds') $$, $$ values (0, 3) $$,
  'one whose budget ends by the next tick is replaced now');
select run_id as r2, budget as b2 from herald.begin_dispatch_run(interval '30 seconds') \gset
select run_id as r3 from herald.begin_dispatch_run(interval '30 seconds') \gset
select run_id as r4 from herald.begin_dispatch_run(interval '30 seconds') \gset
select is(:'b2'::interval, interval '30 seconds', 'a call may bring its own budget');
select results_eq($$ select running, calls from pg_temp.fanout('10 seconds') $$, $$ values (3, 0) $$,
  'as many calls running as needed: none more');
select is(herald.end_dispatch_run(:'r2'), true, 'a call that ends is no longer running');
select is(herald.end_dispatch_run(:'r2'), false, 'and ending it twice says it was not running');
select results_eq($$ select running, calls from pg_temp.fanout('10 seconds') $$, $$ values (2, 1) $$,
  'its place is taken at the next tick');
select lives_ok($$ select * from herald.begin_dispatch_run(interval '0') $$, 'a budget of 0 (one claim) is allowed');
select tests.clear_authentication();

-- A call that died leaves its row: it stops counting when its budget is over, and goes an hour later.
update herald.dispatch_runs set claims_until = now() - interval '2 hours' where id = :'r3';
update herald.dispatch_runs set claims_until = now() - interval '1 second' where id = :'r4';
select tests.authenticate_as_service_role();
select results_eq($$ select running from pg_temp.fanout('1 second') $$, $$ values (1) $$,
  'runs past their budget do not count');
select lives_ok($$ select * from herald.begin_dispatch_run() $$, 'the next call starts');
select tests.clear_authentication();
select results_eq(format($$ select id from herald.dispatch_runs where id in (%L, %L) $$, :'r3', :'r4'),
  format($$ values (%L::uuid) $$, :'r4'), 'and clears away rows more than an hour past their budget');

/** Section - bad input */
select tests.authenticate_as_service_role();
select throws_ok($$ select * from herald.dispatch_fanout(null) $$, '22023', null, 'a cadence is required');
select throws_ok($$ select * from herald.dispatch_fanout(interval '0') $$, '22023', null, 'and must be at least a second');
select throws_ok($$ select * from herald.begin_dispatch_run(interval '121 seconds') $$, '22023',
  'a dispatch call''s budget must be between 0 and 120 seconds, not 00:02:01', 'a budget past 120 s is refused');
select throws_ok($$ select * from herald.begin_dispatch_run(interval '-1 second') $$, '22023', null, 'so is a negative one');
select tests.clear_authentication();
select throws_ok($$ update herald.dispatch_settings set call_budget = '0' $$, '23514', null, 'the setting''s budget is at least a second');
select throws_ok($$ update herald.dispatch_settings set call_budget = '3 minutes' $$, '23514', null, 'and at most 120 s');
select throws_ok($$ update herald.dispatch_settings set call_rate = 0 $$, '23514', null, 'a call''s rate is positive');
select throws_ok($$ update herald.dispatch_settings set max_calls = 0 $$, '23514', null, 'at least one call');
select throws_ok($$ insert into herald.dispatch_settings default values $$, '23505', null, 'one row of settings only');

/** Section - who may ask */
select tests.authenticate_as('fan_stranger');
select throws_ok($$ select * from herald.dispatch_fanout() $$, '42501', null, 'a member cannot ask for the fan-out');
select throws_ok($$ select * from herald.begin_dispatch_run() $$, '42501', null, 'nor register a dispatcher call');
select throws_ok(format($$ select herald.end_dispatch_run(%L) $$, :'r1'), '42501', null, 'nor end one');
select tests.authenticate_as_anon();
select throws_ok($$ select * from herald.dispatch_fanout() $$, '42501', null, 'anon cannot ask for the fan-out');
select tests.clear_authentication();

-- Without its row of settings, the fan-out says what to do.
delete from herald.dispatch_settings;
select tests.authenticate_as_service_role();
select throws_ok($$ select * from herald.dispatch_fanout() $$, '55000', 'herald.dispatch_settings has no row',
  'no settings: refused, naming the table');
select tests.clear_authentication();

\if :scheduled_here
select results_eq($$ select command from cron.job where jobname = 'herald-dispatch' $$,
  $$ values ('select herald.invoke_dispatch()'::text) $$, 'the pg_cron job still calls herald.invoke_dispatch');
select is(has_function_privilege('authenticated', 'herald.invoke_dispatch()', 'execute'), false,
  'members cannot make the database post with the service key');
\endif

select * from finish();
rollback;
