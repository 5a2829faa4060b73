-- What every update of messages pays once per statement (…_statement_costs.sql):
-- herald.current_actor answers as before, as PL/pgSQL whose plans the session keeps; and
-- herald.advance_enrollments' first look ("does this statement end a sequence step?") is a
-- static statement, so an update that ends none plans nothing. Its work (the next step, the
-- stopped enrollment) is proven in sequence_engine.test.sql; here, that it still happens.
begin;
select plan(9);
update workspaces set automation_enabled = false;

/** Section - herald.current_actor */
select is((select l.lanname from pg_proc p join pg_language l on l.oid = p.prolang
           where p.oid = 'herald.current_actor()'::regprocedure), 'plpgsql',
  'herald.current_actor is PL/pgSQL: its plans are kept for the session, not made again per statement');
-- As the ledger triggers and RPCs call it: as their owner, with the caller's JWT claims.
select tests.create_user('actor') as actor \gset
select set_config('request.jwt.claims', json_build_object('sub', :'actor', 'role', 'authenticated')::text, true);
select is(herald.current_actor(), :'actor', 'a user with a JWT is herself');
select set_config('herald.actor', 'dispatcher', true);
select is(herald.current_actor(), :'actor', 'even when the caller declares an actor: the JWT''s user comes first');
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
select is(herald.current_actor(), 'dispatcher', 'the service role: what the caller declared');
select set_config('herald.actor', '', true);
select is(herald.current_actor(), 'service_role', 'and with nothing declared, its role');
select tests.clear_authentication();
select is(herald.current_actor(), current_user::text, 'with no JWT and nothing declared: the database role');

/** Section - herald.advance_enrollments' first look */
select ok((select p.prosrc from pg_proc p where p.oid = 'herald.advance_enrollments()'::regprocedure)
          ~ '\n  select coalesce\(bool_or\(n\.enrollment_id is not null',
  'herald.advance_enrollments looks at the new rows in a static statement, planned once per session');

-- And the sequence still advances: a sent first step schedules the second; a claim does not.
select tests.workspace('Statement costs') as ws \gset
select tests.sender(:'ws', '+15550044001');
select tests.contact(:'ws', '+14155550441', tests.daytime_zone()) as contact \gset
insert into sequences (workspace_id, name, status) values (:'ws', 'Two steps', 'active') returning id as seq \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body)
values (:'ws', :'seq', 1, interval '0', 'First'), (:'ws', :'seq', 2, interval '1 day', 'Second');
select herald.enroll(s, :'contact', now() - interval '1 minute') as enrollment from sequences s where s.id = :'seq' \gset
update messages set send_at = now() - interval '1 minute', status = 'queued' where enrollment_id = :'enrollment';
select count(*) from herald.claim_messages(10, interval '1 minute');
select is((select count(*)::int from messages where enrollment_id = :'enrollment'), 1, 'a claim ends no step: nothing scheduled');
select herald.record_send_result(m.id, 1, 'sent', 'SM' || md5('statement costs'), 'queued')
from messages m where m.enrollment_id = :'enrollment';
select is((select array_agg(body order by send_at) from messages where enrollment_id = :'enrollment'), array['First', 'Second'],
  'the first step sent: the second is scheduled');

select * from finish();
rollback;
