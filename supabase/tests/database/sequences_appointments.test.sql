-- Sequences, their steps and enrollments, and appointments (…_sequences_appointments.sql): what
-- each may hold, admins shape sequences, enrollments are written by Herald only (at most one
-- active per sequence and contact), and any member books appointments. The sequence engine:
-- sequence_engine.test.sql; what archiving or deleting does: deletion_rules.test.sql.
begin;
select plan(15);

select tests.workspace_of('vera', 'Sequences Co', array['vik']) as ws \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155551301', 'Val') returning id as c \gset

/** Section - sequences and steps */
insert into sequences (workspace_id, name, status) values (:'ws', 'Onboarding', 'active') returning id as q \gset
select is((select stop_on_reply from sequences where id = :'q'), true, 'a sequence stops on a reply unless told otherwise');
select lives_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values (%L, %L, 1, '0', 'Hi') $$, :'ws', :'q'),
  'an owner adds a step');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 1, 'Again') $$, :'ws', :'q'),
  '23505', null, 'one step per position');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 0, 'Zero') $$, :'ws', :'q'),
  '23514', null, 'positions start at 1');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values (%L, %L, 2, '-1 hour', 'Back') $$,
  :'ws', :'q'), '23514', null, 'a delay is never negative');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 2, '   ') $$, :'ws', :'q'),
  '23514', null, 'a step says something');
select tests.authenticate_as('vik');
select throws_ok(format($$ insert into sequences (workspace_id, name) values (%L, 'Agent''s') $$, :'ws'), '42501', null,
  'an agent cannot create a sequence');
select is_empty(format($$ update sequence_steps set body = 'Changed' where sequence_id = %L returning id $$, :'q'),
  'nor change its steps');

/** Section - enrollments are Herald's to write */
select throws_ok(format($$ insert into sequence_enrollments (workspace_id, sequence_id, contact_id) values (%L, %L, %L) $$, :'ws', :'q', :'c'),
  '42501', null, 'a member cannot enroll a contact past enroll_contact');
select tests.clear_authentication();
insert into sequence_enrollments (workspace_id, sequence_id, contact_id) values (:'ws', :'q', :'c') returning id as e \gset
select throws_ok(format($$ insert into sequence_enrollments (workspace_id, sequence_id, contact_id) values (%L, %L, %L) $$, :'ws', :'q', :'c'),
  '23505', null, 'at most one active enrollment per sequence and contact');
select throws_ok(format($$ update sequence_enrollments set status = 'cancelled' where id = %L $$, :'e'), '23514', null,
  'a stopped enrollment says why, and when');
update sequence_enrollments set status = 'cancelled', stopped_reason = 'user_cancelled', completed_at = now() where id = :'e';
select lives_ok(format($$ insert into sequence_enrollments (workspace_id, sequence_id, contact_id) values (%L, %L, %L) $$, :'ws', :'q', :'c'),
  'once it stopped, the contact may be enrolled again');

/** Section - appointments */
select tests.authenticate_as('vik');
select lives_ok(format($$ insert into appointments (workspace_id, contact_id, title, starts_at) values (%L, %L, 'Call', now() + interval '1 day') $$,
  :'ws', :'c'), 'an agent books an appointment');
select is((select status::text from appointments where contact_id = :'c'), 'scheduled', 'scheduled until it is cancelled or completed');
select throws_ok(format($$ insert into appointments (workspace_id, contact_id, title, starts_at) values (%L, %L, ' ', now()) $$, :'ws', :'c'),
  '23514', null, 'an appointment needs a title');
select tests.clear_authentication();

select * from finish();
rollback;
