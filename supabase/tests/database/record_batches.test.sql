-- The dispatcher's answers a batch at a time (…_record_batches.sql): herald.record_send_results
-- leaves every message, attempt and ledger row exactly as herald.record_send_result called once
-- per answer in the same order would. Two twin sets of the same cases are claimed and confirmed
-- alike; twin one is recorded answer by answer, twin two in one batch; then the two are compared
-- case by case. And the batch refuses bad input whole, for whom it is not.
begin;
select plan(13);
update workspaces set automation_enabled = false;

select tests.workspace('Record batches', 'America/New_York') as ws \gset
update workspaces set retry_base_seconds = 60, max_attempts = 3 where id = :'ws';
select tests.sender(:'ws', '+15550041001');

-- fresh: accepted. early: a callback beat the answer. found: a look-up found it delivered.
-- twice: the same answer twice in a row. trans, perm, notsent, unknown: errors and no answer.
-- stale: an answer for an attempt that no longer holds the message.
create temp table cases (name text, twin integer, i integer, contact uuid, message uuid, primary key (name, twin));
insert into cases (name, twin, i, contact)
select n, t, i, tests.contact(:'ws', '+1415554' || t || lpad(i::text, 3, '0'))
from unnest(array['fresh', 'early', 'found', 'twice', 'trans', 'perm', 'notsent', 'unknown', 'stale']) with ordinality u (n, i),
     generate_series(1, 2) t;
update cases set message = tests.message(contact, now() - interval '1 minute', 'queued');
grant select on cases to service_role;

select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(100, interval '1 minute')), 18, 'both twins claimed');
select is((select count(*)::int from herald.confirm_send(array(select message from cases order by name, twin),
                                                          array(select 1 from cases order by name, twin)) where verdict = 'send'),
  18, 'and confirmed for their provider calls');

-- The answers, in the order the dispatcher got them; a gone message (erased meanwhile) too.
create temp table answers (n integer, name text, attempt_no integer, outcome text, provider_status text,
                           error_code integer, error_message text, http_status integer);
insert into answers values
  (1, 'fresh', 1, 'sent', 'queued', null, null, 201),
  (2, 'early', 1, 'sent', 'queued', null, null, 201),
  (3, 'found', 1, 'sent', 'delivered', null, null, null),
  (4, 'twice', 1, 'sent', 'queued', null, null, 201),
  (5, 'twice', 1, 'sent', 'queued', null, null, 201),
  (6, 'trans', 1, 'transient', null, 20500, 'Internal Server Error', 500),
  (7, 'perm', 1, 'permanent', null, 21211, 'Invalid ''To'' Phone Number', 400),
  (8, 'notsent', 1, 'not_sent', null, null, 'not sent: contact_opted_out', null),
  (9, 'unknown', 1, 'unknown', null, null, 'no answer in 15 s', null),
  (10, 'stale', 7, 'permanent', null, 21211, 'late', 400),
  (11, 'gone', 1, 'sent', 'queued', null, null, 201);
create function pg_temp.sid(p_name text, p_twin integer) returns text language sql immutable
as $$ select case when p_name in ('trans', 'perm', 'notsent', 'unknown', 'stale') then null else 'SM' || md5(p_name || p_twin) end $$;
grant select on answers to service_role;
grant execute on function pg_temp.sid(text, integer) to service_role;

-- A status callback that arrived before the answer, for each twin's early message.
select is((select array_agg(herald.apply_provider_status(pg_temp.sid('early', t), 'delivered', null, '{}', null) order by t)
           from generate_series(1, 2) t), '{unknown_sid,unknown_sid}', 'the early callbacks wait for their sid');

-- Twin one, an answer at a time; twin two, one batch.
create temp table results (twin integer, n integer, status public.message_status);
grant insert, select on results to service_role;
insert into results
select 1, a.n, herald.record_send_result(coalesce(c.message, '00000000-0000-4000-8000-000000000001'), a.attempt_no, a.outcome,
                                         pg_temp.sid(a.name, 1), a.provider_status, a.error_code, a.error_message, a.http_status)
from answers a left join cases c on c.name = a.name and c.twin = 1
order by a.n;
insert into results
select 2, b.i, b.status
from herald.record_send_results(
  array(select coalesce(c.message, '00000000-0000-4000-8000-000000000002') from answers a left join cases c on c.name = a.name and c.twin = 2 order by a.n),
  array(select attempt_no from answers order by n), array(select outcome from answers order by n),
  array(select pg_temp.sid(name, 2) from answers order by n), array(select provider_status from answers order by n),
  array(select error_code from answers order by n), array(select error_message from answers order by n),
  array(select http_status from answers order by n)) with ordinality b (message_id, status, i);

select results_eq($$ select n, status from results where twin = 2 order by n $$,
                  $$ select n, status from results where twin = 1 order by n $$,
  'the batch answers each message''s status, in order, as the one-by-one calls did');
select results_eq($$ select status::text from results where twin = 2 order by n $$,
  $$ values ('sent'), ('delivered'), ('delivered'), ('sent'), ('sent'), ('scheduled'), ('failed'), ('queued'), ('sending'), ('sending'), (null) $$,
  'which are: accepted, delivered by the early callback and by the look-up, retried, failed, back in the queue, kept for the look-up, untouched, erased');

/** Section - twin for twin */
create function pg_temp.message_state(p_twin integer) returns table (name text, state text)
language sql as $$
  select c.name, concat_ws(' | ', m.status, m.provider_sid is not null, m.provider_sid = pg_temp.sid(c.name, p_twin), m.sent_at is not null,
                           m.delivered_at is not null, m.failed_at is not null, m.attempts, m.last_error_code, m.last_error,
                           m.provider_check_required, sign(extract(epoch from m.send_at - now())),
                           sign(extract(epoch from m.lease_expires_at - now())))
  from cases c join public.messages m on m.id = c.message where c.twin = p_twin
$$;
create function pg_temp.attempt_state(p_twin integer) returns table (name text, state text)
language sql as $$
  select c.name, concat_ws(' | ', a.attempt_no, a.provider_sid = pg_temp.sid(c.name, p_twin), a.provider_status, a.error_code,
                           a.error_message, a.spent, a.responded_at is not null, a.last_callback_at is not null)
  from cases c join public.message_attempts a on a.message_id = c.message where c.twin = p_twin
$$;
grant execute on function pg_temp.message_state(integer), pg_temp.attempt_state(integer) to service_role;

select results_eq($$ select * from pg_temp.message_state(2) order by 1 $$, $$ select * from pg_temp.message_state(1) order by 1 $$,
  'every message is as the one-by-one calls left its twin: status, sid, times, attempts, error, look-up flag, send_at and lease moved out or not (their retry delays are jittered)');
select results_eq($$ select * from pg_temp.attempt_state(2) order by 1, 2 $$, $$ select * from pg_temp.attempt_state(1) order by 1, 2 $$,
  'every attempt too (a not_sent one gone, a spent one kept)');
select results_eq($$ select name, tests.ledger_of(message) from cases where twin = 2 order by 1 $$,
                  $$ select name, tests.ledger_of(message) from cases where twin = 1 order by 1 $$,
  'and every ledger row, with its reason and the dispatcher or provider as actor');
select is((select count(*)::int from public.provider_events e where e.provider_sid = pg_temp.sid('early', 2) and e.outcome = 'applied'), 1,
  'the early callback was applied when its sid became known');

/** Section - refused whole */
select tests.clear_authentication();
create temp table before_refusals as select id, status, updated_at from public.messages;
grant select on before_refusals to service_role;
select tests.authenticate_as_service_role();
select throws_ok(format($$ select * from herald.record_send_results(array[%L, %L]::uuid[], array[1], array['sent', 'sent']) $$,
                        (select message from cases where name = 'fresh' and twin = 1), (select message from cases where name = 'perm' and twin = 1)),
  '22023', 'the answer arrays differ in length (2 message ids)', 'arrays of different lengths are refused');
select throws_ok(format($$ select * from herald.record_send_results(array[%L, %L]::uuid[], array[1, 1], array['sent', 'maybe'], array['SM' || md5('x'), null]) $$,
                        (select message from cases where name = 'fresh' and twin = 1), (select message from cases where name = 'perm' and twin = 1)),
  '22023', 'invalid outcome maybe', 'an invalid outcome anywhere refuses the whole batch, before anything is recorded');
select tests.clear_authentication();
select is_empty($$ select id, status, updated_at from public.messages except select * from before_refusals $$, 'and nothing changed');

select tests.create_user('nobody');
select tests.authenticate_as('nobody');
select throws_ok($$ select * from herald.record_send_results('{}', '{}', '{}') $$, '42501', null,
  'members (or anyone signed in) cannot record answers: only the dispatcher, as service_role');

select * from finish();
rollback;
