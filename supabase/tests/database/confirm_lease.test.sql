-- The confirmation writes only the leases that need it (…_confirm_lease.sql): through
-- herald.stretch_leases, herald.confirm_send and its per-message steps (herald.confirm_send_each,
-- which every message of a workspace with a daily limit takes) leave a message whose lease outlasts
-- the call as it is (the same row version), and extend one that would run out during the call to
-- now() + the call timeout. Every other verdict is proven in confirm_batches.test.sql.
begin;
select plan(9);
update workspaces set automation_enabled = false;

select tests.workspace('Confirm lease') as ws \gset
select tests.sender(:'ws', '+15550045001');
-- The same two cases in a workspace with a daily limit (not reached): the per-message steps.
select tests.workspace('Confirm lease, daily limit') as ws_limit \gset
update workspaces set daily_limit = 100 where id = :'ws_limit';
select tests.sender(:'ws_limit', '+15550045002');
create temp table cases (name text primary key, message uuid);
insert into cases
select n, tests.message(tests.contact(w, '+141555504' || k, tests.daytime_zone()), now() - interval '1 minute', 'queued')
from unnest(array['roomy', 'short', 'roomy each', 'short each'], array[:'ws', :'ws', :'ws_limit', :'ws_limit']::uuid[],
            array[51, 52, 53, 54]) x (n, w, k);
grant select on cases to service_role;
select is((select count(*)::int from herald.claim_messages(10, interval '2 minutes', interval '15 seconds')), 4, 'all four claimed');
-- 'short': its slot wait ate its lease, 5 s are left for a 15 s call.
update messages set lease_expires_at = now() + interval '5 seconds' where id in (select message from cases where name like 'short%');
create temp table before as select c.name, m.ctid::text as version, m.lease_expires_at from cases c join messages m on m.id = c.message;

select tests.authenticate_as_service_role();
select is((select array_agg(e.verdict order by e.n)
           from herald.confirm_send(array(select message from cases order by name), array[1, 1, 1, 1], interval '15 seconds')
                with ordinality e (message_id, verdict, reason, body, content_sid, content_variables, n)),
  '{send,send,send,send}', 'all may go');
select tests.clear_authentication();

select is((select m.ctid::text from messages m where m.id = (select message from cases where name = 'roomy')),
          (select version from before where name = 'roomy'),
  'a lease that outlasts the call: the message is not written at all (the same row version)');
select is((select m.lease_expires_at from messages m where m.id = (select message from cases where name = 'roomy')),
          (select lease_expires_at from before where name = 'roomy'), 'and its lease is the claim''s');
select is((select m.lease_expires_at from messages m where m.id = (select message from cases where name = 'short')),
          now() + interval '15 seconds', 'a lease that would run out during the call: extended to now() + the call timeout');

select is((select m.ctid::text from messages m where m.id = (select message from cases where name = 'roomy each')),
          (select version from before where name = 'roomy each'),
  'the per-message steps too: a lease that outlasts the call is not written');
select is((select m.lease_expires_at from messages m where m.id = (select message from cases where name = 'roomy each')),
          (select lease_expires_at from before where name = 'roomy each'), 'and its lease is the claim''s');
select is((select m.lease_expires_at from messages m where m.id = (select message from cases where name = 'short each')),
          now() + interval '15 seconds', 'and one that would run out during the call is extended to now() + the call timeout');
select is((select a.confirmed_at is not null from message_attempts a where a.message_id = (select message from cases where name = 'roomy each')),
          true, 'its attempt is confirmed all the same');

select * from finish();
rollback;
