-- Appointment reminders as a policy (…_appointment_reminders.sql): appointment_reminders under
-- RLS (members read, admins write) and its rules; inserting an appointment schedules one message
-- per policy row (herald.appointments_schedule_reminders → herald.schedule_appointment_reminders,
-- herald.reminder_content) at the right local times, expiring at the start; moving it re-times
-- and re-renders them (herald.appointments_rerender_reminders); cancelling cancels them.
begin;
select plan(30);

select tests.workspace_of('olga', 'Clinic', array['andy'], array['ada']) as ws \gset
select tests.workspace_of('otto', 'Elsewhere') as ws_other \gset
select tests.clear_authentication();
update workspaces set timezone = 'America/New_York' where id = :'ws';
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'ws', 'sms', '+15550009001', 'connected', true), (:'ws', 'whatsapp', '+15550009002', 'connected', true);
insert into contacts (workspace_id, phone, first_name, timezone) values (:'ws', '+14155551001', 'Ada', 'Europe/London') returning id as ada \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155551002', 'Bo') returning id as bo \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155551003', 'Cy') returning id as cy \gset
update contacts set opted_out_at = now() where id = :'cy';
insert into message_templates (workspace_id, name, channel, content_sid, body, variables)
values (:'ws', 'reminder', 'whatsapp', 'HX0123456789abcdef0123456789abcdef', 'Hi {{1}}, see you {{2}}.',
        array['{{first_name}}', '{{appointment.starts_at}}']) returning id as tpl \gset
insert into message_templates (workspace_id, name, channel, content_sid, body)
values (:'ws', 'sms notice', 'sms', 'HX0123456789abcdef0123456789abcde0', 'A notice.') returning id as tpl_sms \gset

/** Section - who may set the policy, and what it may be */
select tests.authenticate_as('ada');
insert into appointment_reminders (workspace_id, "offset", channel, body)
values (:'ws', '24 hours', 'sms', 'Hi {{first_name}}, {{appointment.title}} is {{appointment.starts_at}}.') returning id as day_before \gset
insert into appointment_reminders (workspace_id, "offset", channel, template_id) values (:'ws', '1 hour', 'whatsapp', :'tpl')
  returning id as hour_before \gset
select results_eq('select count(*)::int from appointment_reminders', array[2], 'an admin sets the policy: 24 hours by SMS, 1 hour by WhatsApp template');
select throws_ok(format($$ insert into appointment_reminders (workspace_id, "offset", body, template_id) values (%L, '2 hours', 'x', %L) $$, :'ws', :'tpl_sms'),
  '23514', null, 'a body and a template at once is refused');
select throws_ok(format($$ insert into appointment_reminders (workspace_id, "offset") values (%L, '2 hours') $$, :'ws'),
  '23514', null, 'neither is refused too');
select throws_ok(format($$ insert into appointment_reminders (workspace_id, "offset", body) values (%L, '0', 'x') $$, :'ws'),
  '23514', null, 'an offset under a minute is refused');
select throws_ok(format($$ insert into appointment_reminders (workspace_id, "offset", body) values (%L, '2 hours', 'At {{appointment.time}}') $$, :'ws'),
  '23514', null, 'an unknown placeholder is refused');
select throws_ok(format($$ insert into appointment_reminders (workspace_id, "offset", channel, template_id) values (%L, '2 hours', 'sms', %L) $$, :'ws', :'tpl'),
  '23503', null, 'an SMS reminder cannot use a WhatsApp template');
select throws_ok(format($$ insert into appointment_reminders (workspace_id, "offset", channel, body) values (%L, '1 day', 'sms', 'x') $$, :'ws'),
  '23505', null, 'one reminder per channel and offset (1 day is 24 hours)');
select throws_ok(format('delete from message_templates where id = %L', :'tpl'), '23503', null,
  'a template the policy uses cannot be deleted');
select tests.authenticate_as('andy');
select results_eq('select count(*)::int from appointment_reminders', array[2], 'an agent reads the policy');
select throws_ok(format($$ insert into appointment_reminders (workspace_id, "offset", body) values (%L, '2 hours', 'x') $$, :'ws'),
  '42501', null, 'but cannot change it');
select tests.authenticate_as('otto');
select is_empty('select * from appointment_reminders', 'another workspace sees nothing of it');

/** Section - an appointment brings its reminders, at the contact's local times */
select tests.authenticate_as('andy');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'ada', 'Check-up', '2030-03-05 14:00Z')
  returning id as appt \gset
select tests.clear_authentication();
select results_eq(format($$ select channel::text, to_char(send_at at time zone 'Europe/London', 'YYYY-MM-DD HH24:MI'), expires_at, status::text
                            from messages where appointment_id = %L order by send_at $$, :'appt'),
  $$ values ('sms', '2030-03-04 14:00', '2030-03-05 14:00Z'::timestamptz, 'scheduled'),
            ('whatsapp', '2030-03-05 13:00', '2030-03-05 14:00Z'::timestamptz, 'scheduled') $$,
  'an agent''s new appointment gets both reminders, 24 hours and 1 hour before in the contact''s time, expiring at the start');
select results_eq(format($$ select body from messages where appointment_id = %L and channel = 'sms' $$, :'appt'),
  array['Hi Ada, Check-up is Tuesday 5 March, 14:00 GMT.'], 'the SMS body names the appointment and its time in London');
select results_eq(format($$ select template_id, template_variables, body from messages where appointment_id = %L and channel = 'whatsapp' $$, :'appt'),
  format($$ values (%L::uuid, '{"1": "Ada", "2": "Tuesday 5 March, 14:00 GMT"}'::jsonb, 'Hi Ada, see you Tuesday 5 March, 14:00 GMT.') $$, :'tpl'),
  'the WhatsApp reminder carries its template, the variables rendered, and the text they make');
select results_eq(format($$ select distinct e.reason from message_events e join messages m on m.id = e.message_id where m.appointment_id = %L $$, :'appt'),
  array['appointment_reminder'], 'the ledger says why they were scheduled');
select is(herald.schedule_appointment_reminders(array[:'appt'::uuid]), 0, 'scheduling again adds nothing: one reminder per policy row');

insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'bo', 'Cleaning', '2030-07-02 14:00Z'),
  (:'ws', :'bo', 'Whitening', '2030-07-09 14:00Z');
select results_eq(format($$ select a.title, to_char(m.send_at at time zone 'America/New_York', 'MM-DD HH24:MI'), m.body
                            from messages m join appointments a on a.id = m.appointment_id
                            where m.contact_id = %L and m.channel = 'sms' order by m.send_at $$, :'bo'),
  $$ values ('Cleaning', '07-01 10:00', 'Hi Bo, Cleaning is Tuesday 2 July, 10:00 EDT.'),
            ('Whitening', '07-08 10:00', 'Hi Bo, Whitening is Tuesday 9 July, 10:00 EDT.') $$,
  'several appointments in one statement each get theirs; a contact without a zone reads the workspace''s (New York, summer time)');

insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'cy', 'Consult', '2030-03-05 14:00Z');
select is_empty(format('select 1 from messages where contact_id = %L', :'cy'), 'a contact who opted out gets no reminders');
insert into appointments (workspace_id, contact_id, title, starts_at, status) values (:'ws', :'bo', 'Old visit', '2030-03-05 14:00Z', 'completed')
  returning id as done \gset
select is_empty(format('select 1 from messages where appointment_id = %L', :'done'), 'nor does an appointment that is not scheduled');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'bo', 'Soon', now() + interval '3 hours')
  returning id as soon \gset
select results_eq(format('select channel::text from messages where appointment_id = %L', :'soon'), array['whatsapp'],
  'an appointment 3 hours away gets the 1-hour reminder only: the 24-hour one''s time has passed');

/** Section - moving re-times and re-renders; cancelling cancels */
update appointments set starts_at = '2030-03-05 16:30Z' where id = :'appt';
select results_eq(format($$ select channel::text, to_char(send_at at time zone 'Europe/London', 'YYYY-MM-DD HH24:MI'), expires_at
                            from messages where appointment_id = %L order by send_at $$, :'appt'),
  $$ values ('sms', '2030-03-04 16:30', '2030-03-05 16:30Z'::timestamptz), ('whatsapp', '2030-03-05 15:30', '2030-03-05 16:30Z'::timestamptz) $$,
  'moving the appointment moves its reminders and their deadlines');
select results_eq(format($$ select body, template_variables from messages where appointment_id = %L order by send_at $$, :'appt'),
  $$ values ('Hi Ada, Check-up is Tuesday 5 March, 16:30 GMT.', null::jsonb),
            ('Hi Ada, see you Tuesday 5 March, 16:30 GMT.', '{"1": "Ada", "2": "Tuesday 5 March, 16:30 GMT"}'::jsonb) $$,
  'and renders their text and variables again for the new time');
update appointments set starts_at = now() + interval '3 days' where id = :'soon';
select results_eq(format('select channel::text, expires_at from messages where appointment_id = %L order by send_at', :'soon'),
  $$ values ('sms', now() + interval '3 days'), ('whatsapp', now() + interval '3 days') $$,
  'moved to later, the reminder its old time had skipped is scheduled now');
update contacts set first_name = 'Ada B.' where id = :'ada';
update appointments set title = 'Renamed' where id = :'appt';
select results_eq(format($$ select count(*)::int from messages where appointment_id = %L and body like 'Hi Ada,%%' $$, :'appt'), array[2],
  'changing anything but the start leaves the text as rendered');

update appointments set status = 'cancelled' where id = :'appt';
select results_eq(format('select status::text, cancel_reason::text from messages where appointment_id = %L', :'appt'),
  $$ values ('cancelled', 'appointment_cancelled'), ('cancelled', 'appointment_cancelled') $$,
  'cancelling the appointment cancels its reminders');
update appointments set starts_at = starts_at + interval '1 day' where id = :'appt';
select results_eq(format($$ select count(*)::int from messages where appointment_id = %L and status = 'scheduled' $$, :'appt'), array[0],
  'a cancelled appointment moved later gets no new reminders');

/** Section - the policy changes future appointments only */
delete from appointment_reminders where id = :'day_before';
select results_eq(format($$ select status::text, reminder_id from messages where appointment_id = %L and channel = 'sms' $$, :'soon'),
  $$ values ('scheduled', null::uuid) $$, 'deleting a policy row leaves the reminders it scheduled');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'bo', 'Later', '2030-09-03 14:00Z')
  returning id as later \gset
select results_eq(format('select channel::text from messages where appointment_id = %L', :'later'), array['whatsapp'],
  'and the next appointment gets only what the policy still says');
select results_eq(format('select count(*)::int from messages where workspace_id = %L', :'ws_other'), array[0],
  'another workspace''s appointments are not touched by this policy');

/** Section - a retried reminder stays its policy's */
select tests.clear_authentication();
select id as r_fail from messages where appointment_id = :'later' \gset
update messages set status = 'failed', failed_at = now(), last_error_code = 21211 where id = :'r_fail';
select tests.authenticate_as('andy');
select retry_message(:'r_fail') as r_retry \gset
select tests.clear_authentication();
select results_eq(format('select reminder_id, retry_of from messages where id = %L', :'r_retry'),
  format('select reminder_id, id from messages where id = %L and reminder_id is not null', :'r_fail'),
  'a retried reminder stays its policy''s (reminder_id), so moving the appointment re-renders it too');

select * from finish();
rollback;
