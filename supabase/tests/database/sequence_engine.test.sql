-- The sequence engine (…_sequence_engine.sql): herald.enroll schedules step 1, and
-- herald.advance_enrollments (a statement trigger on messages) schedules each next step when
-- a step is sent, at its send time + the next step's delay, completes the enrollment after the
-- last step, and stops it when a step ends cancelled, failed or undelivered, cancelling whatever
-- the enrollment still has pending in the same statement. Statuses the dispatcher would set are
-- set as the service role, along the status graph.
begin;
select plan(16);

select tests.workspace_of('sol', 'Engine Co') as ws \gset
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws', 'sms', '+15005550006', 'connected', true);
insert into sequences (workspace_id, name, status) values (:'ws', 'Drip', 'active') returning id as q_drip \gset
insert into sequences (workspace_id, name) values (:'ws', 'Draft') returning id as q_draft \gset
insert into sequences (workspace_id, name, status) values (:'ws', 'Empty', 'active') returning id as q_empty \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
  (:'ws', :'q_draft', 1, '0', 'x'),
  (:'ws', :'q_drip', 1, '0', 'Hi {{first_name}} {{last_name}}'),
  (:'ws', :'q_drip', 2, '2 days', 'Your code: {{ var.code }} & {{first_name}}; {{var.missing}}end'),
  (:'ws', :'q_drip', 3, '1 hour', 'Last one, {{last_name}}');
insert into contacts (workspace_id, phone, first_name, last_name) values (:'ws', '+14155551001', 'Ada', 'Byron') returning id as a \gset
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws', :'a', 'code', 'a\1b&c$1');
insert into contacts (workspace_id, phone, first_name) values
  (:'ws', '+14155551002', 'Fay'), (:'ws', '+14155551003', 'Gil'), (:'ws', '+14155551004', 'Hal'), (:'ws', '+14155551005', 'Ian');
select (array_agg(id order by phone))[1] as fay, (array_agg(id order by phone))[2] as gil, (array_agg(id order by phone))[3] as hal,
       (array_agg(id order by phone))[4] as ian
from contacts where workspace_id = :'ws' and phone between '+14155551002' and '+14155551005' \gset
select tests.clear_authentication();

/** Section - herald.enroll: an active sequence with steps, once per contact */
select herald.enroll(s, :'a', '2030-01-01 09:00Z') as ed from sequences s where s.id = :'q_drip' \gset
select results_eq(format($$ select e.status::text, e.current_position, m.body, m.send_at from sequence_enrollments e
                            join messages m on m.enrollment_id = e.id where e.id = %L $$, :'ed'),
  $$ values ('active'::text, 1, 'Hi Ada Byron'::text, '2030-01-01 09:00Z'::timestamptz) $$,
  'enroll makes an active enrollment at step 1 and schedules step 1 at the start + its delay, rendered');
select is((select herald.enroll(s, :'a', now()) from sequences s where s.id = :'q_drip'), :'ed'::uuid,
  'enrolling again while active returns the same enrollment, and schedules nothing more');
select throws_ok(format($$ select herald.enroll(s, %L, now()) from sequences s where s.id = %L $$, :'fay', :'q_draft'), '55000',
  format('sequence %s is draft', :'q_draft'), 'a draft sequence takes no enrollment');
select throws_ok(format($$ select herald.enroll(s, %L, now()) from sequences s where s.id = %L $$, :'fay', :'q_empty'), '55000',
  format('sequence %s has no steps', :'q_empty'), 'a sequence without steps takes none either');

/** Section - herald.advance_enrollments: each step sent schedules the next */
select id as step1_msg from messages where enrollment_id = :'ed' \gset
select tests.authenticate_as_service_role();
select tests.mark_sent(array[:'step1_msg']::uuid[], '2030-01-01 10:00:00+00');
select tests.clear_authentication();
select results_eq(
  format($$ select s.position, m.body, m.send_at, m.status::text from messages m join sequence_steps s on s.id = m.step_id
            where m.enrollment_id = %L and m.id <> %L $$, :'ed', :'step1_msg'),
  $$ values (2, 'Your code: a\1b&c$1 & Ada; end', '2030-01-03 10:00:00+00'::timestamptz, 'scheduled') $$,
  'step 1 sent schedules step 2 at its send time + the delay, with \1, & and $1 rendered literally');
select is((select current_position from sequence_enrollments where id = :'ed'), 2, 'the enrollment is at step 2');
select id as step2_msg from messages where enrollment_id = :'ed' and status = 'scheduled' \gset
select tests.authenticate_as_service_role();
select tests.mark_sent(array[:'step2_msg']::uuid[], '2030-01-03 10:00:05+00');
select id as step3_msg from messages where enrollment_id = :'ed' and status = 'scheduled' \gset
update messages set status = 'queued' where id = :'step3_msg';
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'step3_msg';
update messages set status = 'delivered', lease_expires_at = null, sent_at = '2030-01-03 11:00:05+00', delivered_at = now()
where id = :'step3_msg';
select tests.clear_authentication();
select results_eq(format($$ select body, send_at from messages where id = %L $$, :'step3_msg'),
  $$ values ('Last one, Byron', '2030-01-03 11:00:05+00'::timestamptz) $$, 'step 3 followed step 2 by its delay');
select results_eq(format($$ select status::text, current_position, completed_at is not null from sequence_enrollments where id = %L $$, :'ed'),
  $$ values ('completed', 3, true) $$, 'after the last step (here straight to delivered) the enrollment completes');
select is((select count(*)::int from messages where enrollment_id = :'ed'), 3, 'and nothing more is scheduled');

/** Section - set-based: many enrollments advance in one statement */
select count(herald.enroll(s, c, '2030-02-01 09:00Z')) from sequences s, unnest(array[:'fay', :'gil', :'hal', :'ian']::uuid[]) c
where s.id = :'q_drip';
create temp table first_steps as
  select m.id, m.contact_id, m.enrollment_id from messages m where m.contact_id in (:'fay', :'gil', :'hal', :'ian');
select array_agg(id) as sent_together from first_steps where contact_id in (:'fay', :'gil', :'hal') \gset
select tests.authenticate_as_service_role();
select tests.mark_sent(:'sent_together', '2030-02-01 09:00Z');
select tests.clear_authentication();
select results_eq(
  $$ select c.first_name, m.body, m.send_at from messages m join contacts c on c.id = m.contact_id
     where m.enrollment_id in (select enrollment_id from first_steps) and m.id not in (select id from first_steps) order by c.first_name $$,
  $$ values ('Fay'::text, 'Your code:  & Fay; end'::text, '2030-02-03 09:00Z'::timestamptz), ('Gil', 'Your code:  & Gil; end', '2030-02-03 09:00Z'),
            ('Hal', 'Your code:  & Hal; end', '2030-02-03 09:00Z') $$,
  'three step-1 messages sent in one update schedule three step-2 messages, each rendered for its contact');

/** Section - a step that ends badly stops its enrollment */
select id as fay_2 from messages where contact_id = :'fay' and status = 'scheduled' \gset
select id as gil_2 from messages where contact_id = :'gil' and status = 'scheduled' \gset
select id as hal_2 from messages where contact_id = :'hal' and status = 'scheduled' \gset
select id as ian_1 from messages where contact_id = :'ian' \gset
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id in (:'fay_2', :'gil_2');
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute', attempts = 1 where id in (:'fay_2', :'gil_2');
update messages set status = 'failed', lease_expires_at = null, failed_at = now(), last_error_code = 21211 where id = :'fay_2';
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where id = :'gil_2';
update messages set status = 'undelivered', failed_at = now(), last_error_code = 30003 where id = :'gil_2';
select tests.authenticate_as('sol');
select cancel_message(:'hal_2');
select tests.clear_authentication();
select results_eq(
  format($$ select c.first_name, e.status::text, e.stopped_reason, e.current_position from sequence_enrollments e
            join contacts c on c.id = e.contact_id where e.contact_id in (%L, %L, %L, %L) order by c.first_name $$,
         :'fay', :'gil', :'hal', :'ian'),
  $$ values ('Fay'::text, 'failed'::text, 'step_failed_21211'::text, 2), ('Gil', 'failed', 'step_undelivered_30003', 3),
            ('Hal', 'cancelled', 'user_cancelled', 2), ('Ian', 'active', null, 1) $$,
  'failed and undelivered steps fail their enrollments with the error, a cancelled one cancels it with its reason; the untouched one stays');
-- Gil's step 2 was sent (which scheduled step 3) before it turned out undelivered: the
-- statement that stopped the enrollment cancelled step 3 too, with the reason and in the ledger.
select results_eq(format($$ select s.position, m.status::text, m.cancel_reason::text from messages m join sequence_steps s on s.id = m.step_id
                            where m.contact_id = %L and s.position = 3 $$, :'gil'),
  $$ values (3, 'cancelled'::text, 'sequence_stopped'::text) $$,
  'the step a sent-then-undelivered step had scheduled is cancelled at once (sequence_stopped), not left scheduled');
select results_eq(format($$ select e.from_status::text, e.to_status::text, e.reason, e.actor from message_events e
                            join messages m on m.id = e.message_id join sequence_steps s on s.id = m.step_id
                            where m.contact_id = %L and s.position = 3 order by e.id $$, :'gil'),
  $$ values (null::text, 'scheduled'::text, 'created'::text, 'service_role'::text),
            ('scheduled', 'cancelled', 'sequence_stopped', 'service_role') $$,
  'its ledger: scheduled when step 2 went out, cancelled by the same hand that reported step 2 undelivered');
select is_empty($$ select m.id from messages m join sequence_enrollments e on e.workspace_id = m.workspace_id and e.id = m.enrollment_id
                   where m.status in ('scheduled', 'queued') and e.status <> 'active' $$,
  'no stopped enrollment keeps a pending message');

/** Section - a retry of a step does not move its enrollment */
select tests.authenticate_as('sol');
select retry_message(:'fay_2') as fay_retry \gset
select tests.authenticate_as_service_role();
select tests.mark_sent(array[:'fay_retry']::uuid[]);
select tests.clear_authentication();
select results_eq(format($$ select status::text, current_position from sequence_enrollments where contact_id = %L $$, :'fay'),
  $$ values ('failed'::text, 2) $$, 'the retried step went out, and the stopped enrollment stays where it stopped');
select is((select count(*)::int from messages where contact_id = :'fay'), 3, 'and no step 3 was scheduled for it');

select * from finish();
rollback;
