-- The send path carries what Twilio needs (…_send_content.sql): herald.claim_messages returns the
-- content of each call (body, or content_sid + content_variables, and validity_period) and fails
-- WhatsApp outside the 24-hour window without a template before any call; slots are paced in
-- segments; herald.confirm_send refuses the same right before the call; sequence steps carry
-- their template (herald.enroll for enroll_contact, herald.advance_enrollments, prepare_queue);
-- retry_message keeps template, variables, category and deadline. now() is fixed for the file (one
-- transaction), so every slot is exact; all messages are transactional and quiet hours are off,
-- so no hour of the day changes what is claimed.
begin;
select plan(32);
update workspaces set automation_enabled = false;

select tests.workspace_of('olga', 'Content', array['andy']) as ws \gset
select tests.clear_authentication();
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00' where id = :'ws';
insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
values (:'ws', 'sms', '+15550009101', 'connected', 2, true) returning id as sms_sender \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
values (:'ws', 'whatsapp', '+15550009102', 'connected', 1, true) returning id as wa_sender \gset
insert into contacts (workspace_id, phone, first_name, last_whatsapp_inbound_at)
values (:'ws', '+14155550901', 'Wren', now() - interval '1 hour') returning id as writer \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550902', 'Ada') returning id as silent \gset
insert into message_templates (workspace_id, name, content_sid, body, variables)
values (:'ws', 'order ready', 'HX0123456789abcdef0123456789abcdef', 'Hi {{1}}, your order is ready.', array['{{first_name}}'])
returning id as tpl \gset

-- Oldest first, so the slot order is this order. The WhatsApp body to the writer is three SMS
-- segments long: on WhatsApp it counts one.
insert into messages (workspace_id, contact_id, channel, body, send_at, status, category, template_id, template_variables, expires_at)
values
  (:'ws', :'writer', 'whatsapp', 'free form to a writer ' || repeat('x', 300), now() - interval '9 minutes', 'queued', 'transactional', null, null, null),
  (:'ws', :'silent', 'whatsapp', 'free form to someone who never wrote', now() - interval '8 minutes', 'queued', 'transactional', null, null, null),
  (:'ws', :'silent', 'whatsapp', 'Hi Ada, your order is ready.', now() - interval '7 minutes', 'queued', 'transactional', :'tpl', '{"1": "Ada"}', null),
  (:'ws', :'silent', 'sms', 'one segment', now() - interval '4 minutes', 'queued', 'transactional', null, null, null),
  (:'ws', :'silent', 'sms', repeat('a', 307), now() - interval '3 minutes', 'queued', 'transactional', null, null, null),
  (:'ws', :'silent', 'sms', repeat('b', 200), now() - interval '2 minutes', 'queued', 'transactional', null, null, null),
  (:'ws', :'silent', 'sms', 'with a deadline', now() - interval '1 minute', 'queued', 'transactional', null, null, now() + interval '1 hour');
select id as wa_free from messages where body like 'free form to a writer%' \gset
select id as wa_none from messages where body = 'free form to someone who never wrote' \gset
select id as wa_tpl from messages where template_id = :'tpl' \gset
select id as sms_deadline from messages where body = 'with a deadline' \gset
select results_eq(format('select segments from messages where workspace_id = %L and channel = ''sms'' order by send_at', :'ws'),
  array[1, 3, 2, 1], 'the SMS bodies are 1, 3, 2 and 1 segments');

/** Section - the claim: what each provider call carries */
select tests.authenticate_as_service_role();
create temp table claimed as select * from herald.claim_messages(100);
select tests.clear_authentication();
select is((select count(*)::int from claimed), 6, 'six of the seven are claimed');
select is_empty(format('select 1 from claimed where message_id = %L', :'wa_none'),
  'WhatsApp to a contact who never wrote, without a template, is not claimed');
select results_eq(format('select body, content_sid, content_variables, validity_period from claimed where message_id = %L', :'wa_free'),
  $$ values ('free form to a writer ' || repeat('x', 300), null::text, null::jsonb, null::integer) $$,
  'inside the window: free-form, the body alone');
select results_eq(format('select body, content_sid, content_variables from claimed where message_id = %L', :'wa_tpl'),
  $$ values ('Hi Ada, your order is ready.'::text, 'HX0123456789abcdef0123456789abcdef'::text, '{"1": "Ada"}'::jsonb) $$,
  'outside the window: the template and its variables (the body is the text it reads as)');
select results_eq(format('select validity_period from claimed where message_id = %L', :'sms_deadline'),
  array[3597], 'a deadline an hour ahead of now, for a slot 3 s ahead: ValidityPeriod 3597 s');
select is((select count(*)::int from claimed where validity_period is not null), 1, 'no deadline, no ValidityPeriod');

/** Section - refused before any provider call */
select results_eq(format('select status::text, attempts, last_error from messages where id = %L', :'wa_none'),
  $$ values ('failed'::text, 0, 'template required: WhatsApp delivers free-form text only within 24 hours of the contact''s last message; '
                                || 'give the message a template_id (a content template of this workspace) to reach them outside that window') $$,
  'it fails with a reason that says a template is required, no attempt spent');
select is_empty(format('select 1 from message_attempts where message_id = %L', :'wa_none'), 'no attempt row: nothing went to the provider');
select results_eq(format('select from_status::text, to_status::text, reason, actor from message_events where message_id = %L order by id desc limit 1', :'wa_none'),
  $$ values ('queued'::text, 'failed'::text, 'template_required'::text, 'dispatcher'::text) $$,
  'the ledger: queued → failed, template_required, by the dispatcher');
select tests.authenticate_as('andy');
select ok((select last_error like 'template required:%' from failed_messages where id = :'wa_none'),
  'a member reads the reason in failed_messages');
select tests.clear_authentication();

/** Section - pacing in segments */
select results_eq(format('select tests.secs(c.send_not_before) from claimed c join messages m on m.id = c.message_id where m.sender_id = %L order by m.send_at', :'sms_sender'),
  array[0, 0.5, 2.0, 3.0]::numeric[], 'at 2 mps, slots follow the segments ahead: 1, 3 and 2 segments take 0.5, 1.5 and 1 s');
select is((select tests.secs(next_slot_at) from herald.sender_slots where sender_id = :'sms_sender'), 3.5,
  'the sender''s next free slot is after the last message''s segment');
select results_eq(format('select tests.secs(c.send_not_before) from claimed c join messages m on m.id = c.message_id where m.sender_id = %L order by m.send_at', :'wa_sender'),
  array[0, 1]::numeric[], 'at 1 mps a WhatsApp message takes one second, however long its text');
select is((select tests.secs(next_slot_at) from herald.sender_slots where sender_id = :'wa_sender'), 2::numeric,
  'and the WhatsApp sender is free again 2 s ahead');

-- A claim takes only what starts within half its lease at the sender's rate, in segments:
-- 3-segment texts at 1 mps start 0, 3, 6 and 9 s ahead; a 10 s lease takes the first two.
select tests.workspace('Pace') as ws_pace \gset
select tests.sender(:'ws_pace', '+15550009103', 1) as pace_sender \gset
select tests.contact(:'ws_pace', '+14155550904') as pace_contact \gset
insert into messages (workspace_id, contact_id, body, send_at, status, category)
select :'ws_pace', :'pace_contact', repeat('c', 307), now() - make_interval(mins => 5 - i), 'queued', 'transactional'
from generate_series(1, 4) i;
select tests.authenticate_as_service_role();
create temp table paced as select * from herald.claim_messages(100, interval '10 seconds');
select tests.clear_authentication();
select results_eq('select tests.secs(send_not_before) from paced order by send_not_before', array[0, 3]::numeric[],
  'a 10 s lease takes the two 3-segment texts that start within 5 s, 3 s apart');
select is((select tests.secs(next_slot_at) from herald.sender_slots where sender_id = :'pace_sender'), 6::numeric,
  'and holds the sender until their six segments are sent');

/** Section - right before the call */
select tests.authenticate_as_service_role();
select results_eq(format($$ select verdict, reason from herald.confirm_send(array[%L::uuid], array[1]) $$, :'wa_tpl'),
  $$ values ('send'::text, null::text) $$, 'a template message is confirmed');
select tests.clear_authentication();

-- The free-form message's lease is lost, and the writer's window closes before it is claimed
-- again: the claim cannot fail it (Twilio may have it), the confirmation does if it was not sent.
update messages set lease_expires_at = now() - interval '1 second' where id = :'wa_free';
select is(herald.reap_expired_leases(), 1, 'its lease expired: back to queued for a look-up');
update contacts set last_whatsapp_inbound_at = now() - interval '25 hours' where id = :'writer';
select tests.authenticate_as_service_role();
create temp table lookup as select * from herald.claim_messages(100);
select tests.clear_authentication();
select results_eq(format('select attempt_no, provider_check_required, content_sid from lookup where message_id = %L', :'wa_free'),
  $$ values (2, true, null::text) $$, 'claimed again for its look-up, not refused');
select tests.authenticate_as_service_role();
select results_eq(format($$ select verdict, reason from herald.confirm_send(array[%L::uuid], array[2]) $$, :'wa_free'),
  $$ values ('failed'::text, 'template_required'::text) $$, 'not at Twilio and outside the window: the confirmation fails it');
select tests.clear_authentication();
select results_eq(format('select status::text, attempts, last_error like ''template required:%%'', lease_expires_at from messages where id = %L', :'wa_free'),
  $$ values ('failed'::text, 1, true, null::timestamptz) $$, 'failed with the reason; the refused attempt is not spent');
select is((select reason from message_events where message_id = :'wa_free' order by id desc limit 1), 'template_required',
  'the ledger says why');

/** Section - sequence steps carry their template */
insert into sequences (workspace_id, name, status) values (:'ws', 'Follow-up', 'active') returning id as seq \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, channel, body, template_id) values
  (:'ws', :'seq', 1, '0', 'whatsapp', 'Hi {{first_name}}', :'tpl'),
  (:'ws', :'seq', 2, '1 day', 'whatsapp', 'Still there, {{first_name}}?', :'tpl');
select tests.authenticate_as('andy');
select public.enroll_contact(:'seq', :'silent') as enrollment \gset
select tests.clear_authentication();
select results_eq(format('select body, template_id, template_variables from messages where enrollment_id = %L', :'enrollment'),
  format($$ values ('Hi Ada'::text, %L::uuid, '{"1": "Ada"}'::jsonb) $$, :'tpl'),
  'enroll_contact: step 1 goes with its template, the variables rendered for the contact');
select tests.mark_sent(array(select id from messages where enrollment_id = :'enrollment'));
select results_eq(format('select body, template_id, template_variables from messages where enrollment_id = %L and status = ''scheduled''', :'enrollment'),
  format($$ values ('Still there, Ada?'::text, %L::uuid, '{"1": "Ada"}'::jsonb) $$, :'tpl'),
  'a sent step schedules the next with its template (herald.advance_enrollments)');

insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550905', 'Lee') returning id as lead \gset
insert into queue_settings (workspace_id, daily_capacity, window_start, window_end, default_sequence_id)
values (:'ws', 10, '09:00', '17:00', :'seq');
select tests.authenticate_as('olga');
select ok(public.prepare_queue(:'ws') >= 1, 'prepare_queue enrolls the new leads');
select tests.clear_authentication();
select results_eq(format('select body, template_id, template_variables from messages where contact_id = %L', :'lead'),
  format($$ values ('Hi Lee'::text, %L::uuid, '{"1": "Lee"}'::jsonb) $$, :'tpl'),
  'prepare_queue: the first step with its template and the lead''s variables');

/** Section - retries go as the original would */
insert into messages (workspace_id, contact_id, channel, body, send_at, status, failed_at, category, template_id, template_variables, expires_at)
values (:'ws', :'silent', 'whatsapp', 'Hi Ada, your order is ready.', now() - interval '10 minutes', 'failed', now(), 'transactional',
        :'tpl', '{"1": "Ada"}', now() + interval '1 day')
returning id as failed_tpl \gset
insert into messages (workspace_id, contact_id, channel, body, send_at, status, failed_at, category, created_at, expires_at)
values (:'ws', :'silent', 'sms', 'too late to retry', now() - interval '3 hours', 'failed', now() - interval '2 hours', 'transactional',
        now() - interval '4 hours', now() - interval '1 hour')
returning id as failed_late \gset
select tests.authenticate_as('andy');
select public.retry_message(:'failed_tpl') as retry \gset
select results_eq(format('select retry_of, category::text, template_id, template_variables, expires_at from messages where id = %L', :'retry'),
  format($$ select id, category::text, template_id, template_variables, expires_at from messages where id = %L $$, :'failed_tpl'),
  'retry_message keeps the template, its variables, the category and the deadline');
select throws_ok(format('select public.retry_message(%L)', :'failed_late'), '55000',
  format('message %s had to be sent before %s (its expires_at): a retry now would be too late', :'failed_late',
         (select expires_at from messages where id = :'failed_late')),
  'a retry after the deadline is refused, with the reason');
select is((select count(*)::int from messages where retry_of = :'failed_late'), 0, 'and nothing is scheduled');

/** Section - who may claim */
select tests.authenticate_as('olga');
select throws_ok('select * from herald.claim_messages(10)', '42501', null, 'a user cannot claim messages');
select throws_ok(format($$ select * from herald.confirm_send(array[%L::uuid], array[1]) $$, :'wa_tpl'), '42501', null,
  'nor confirm a send');
select tests.clear_authentication();

select * from finish();
rollback;
