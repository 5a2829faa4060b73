-- schedule_message's appended parameters (…_schedule_message_options.sql): public.schedule_message
-- with category, template_id, template_variables and expires_at, as a member, and its refusal of
-- a channel the workspace has no sender on. Every refusal changes nothing.
begin;
select plan(16);

select tests.workspace_of('opal', 'Options Co', array['otto']) as ws \gset
select tests.workspace_of('piet', 'Other Co') as ws_other \gset
select tests.clear_authentication();
insert into senders (workspace_id, channel, phone_number, status, is_default) values
  (:'ws', 'sms', '+15005550101', 'connected', true), (:'ws', 'whatsapp', '+15005550102', 'connected', true),
  (:'ws_other', 'sms', '+15005550103', 'connected', true);
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155553001', 'Ada') returning id as c \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws_other', '+14155553002', 'Bo') returning id as c_other \gset
insert into message_templates (workspace_id, name, content_sid, body, variables)
values (:'ws', 'reminder', 'HX' || repeat('a', 32), 'Hi {{1}}, see you {{2}}', array['{{first_name}}', '']) returning id as tpl \gset
insert into message_templates (workspace_id, name, channel, content_sid, body)
values (:'ws', 'sms text', 'sms', 'HX' || repeat('b', 32), 'Plain') returning id as tpl_sms \gset
insert into message_templates (workspace_id, name, content_sid, body)
values (:'ws_other', 'theirs', 'HX' || repeat('c', 32), 'Theirs') returning id as tpl_other \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'c', 'Visit', now() + interval '2 days')
returning id as appt \gset

select tests.authenticate_as('otto');
select string_agg(table_name || '=' || row_count, ',' order by table_name) as before from tests.table_counts() \gset

/** Section - refused, and nothing written */
select throws_ok(format($$ select schedule_message(%L, 'x', category => 'promo') $$, :'c'), '22023', 'unknown category "promo"',
  'an unknown category is refused');
select throws_ok(format($$ select schedule_message(%L) $$, :'c'), '22023', 'message body must not be empty',
  'neither a body nor a template: refused');
select throws_ok(format($$ select schedule_message(%L, 'x', template_variables => '{"1": "Ada"}') $$, :'c'), '22023',
  'template_variables given without a template_id', 'variables without a template: refused');
select throws_ok(format($$ select schedule_message(%L, channel => 'whatsapp', template_id => %L) $$, :'c', :'tpl_other'), 'P0002',
  format('template %s is not a template of this workspace', :'tpl_other'), 'another workspace''s template: not found');
select throws_ok(format($$ select schedule_message(%L, channel => 'whatsapp', template_id => %L) $$, :'c', :'tpl_sms'), '22023',
  'template "sms text" is for sms, not whatsapp', 'a template of another channel: refused');
select throws_ok(format($$ select schedule_message(%L, channel => 'whatsapp', template_id => %L, template_variables => '{"3": "x"}') $$, :'c', :'tpl'),
  '22023', null, 'a variable the template does not have: refused');
select throws_ok(format($$ select schedule_message(%L, 'x', now() + interval '1 hour', expires_at => now() + interval '30 minutes') $$, :'c'),
  '22023', null, 'a deadline before the send time: refused');
select throws_ok(format($$ select schedule_message(%L, 'x', template_id => %L) $$, :'c_other', :'tpl'), 'P0002', null,
  'another workspace''s contact: not found');
select is((select string_agg(table_name || '=' || row_count, ',' order by table_name) from tests.table_counts()), :'before',
  'the refusals wrote nothing');

/** Section - no sender on the channel */
select tests.clear_authentication();
delete from senders where workspace_id = :'ws' and channel = 'whatsapp';
select tests.authenticate_as('otto');
select throws_ok(format($$ select schedule_message(%L, 'x', channel => 'whatsapp') $$, :'c'), '55000',
  'this workspace has no whatsapp sender to send from',
  'a channel the workspace cannot send on is refused at once, not failed a minute later');
select tests.clear_authentication();
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws', 'whatsapp', '+15005550102', 'connected', true);
select tests.authenticate_as('otto');

/** Section - what the parameters write */
select schedule_message(:'c', channel => 'whatsapp', template_id => :'tpl', template_variables => '{"2": "Tuesday"}',
                        idempotency_key => 'tpl-1') as m_tpl \gset
select results_eq(format($$ select body, template_id, template_variables, category::text from messages where id = %L $$, :'m_tpl'),
  format($$ values ('Hi Ada, see you Tuesday'::text, %L::uuid, '{"1": "Ada", "2": "Tuesday"}'::jsonb, 'marketing'::text) $$, :'tpl'),
  'with a template and no body: the variables rendered from the contact and the caller, the body the template''s text');
select is(schedule_message(:'c', channel => 'whatsapp', template_id => :'tpl', template_variables => '{"2": "Tuesday"}',
                           idempotency_key => 'tpl-1'), :'m_tpl'::uuid, 'the same key returns the same message');
select throws_ok(format($$ select schedule_message(%L, 'Hello', channel => 'whatsapp', idempotency_key => 'tpl-1') $$, :'c'), '23505',
  null, 'the same key for a message without the template is a different message');

select schedule_message(:'c', 'Your code is 123456', category => 'transactional',
                        expires_at => now() + interval '10 minutes') as m_code \gset
select results_eq(format($$ select category::text, expires_at from messages where id = %L $$, :'m_code'),
  $$ values ('transactional'::text, now() + interval '10 minutes') $$, 'a one-time code: transactional, with its deadline');

select schedule_message(:'c', 'See you', now() + interval '1 day', appointment_id => :'appt') as m_reminder \gset
select results_eq(format($$ select category::text, expires_at from messages where id = %L $$, :'m_reminder'),
  $$ values ('transactional'::text, now() + interval '2 days') $$,
  'a reminder naming no category is transactional and expires at its appointment''s start');
select schedule_message(:'c', 'Add a whitening?', now() + interval '1 day', appointment_id => :'appt', category => 'marketing') as m_upsell \gset
select is((select category::text from messages where id = :'m_upsell'), 'marketing', 'a category named is kept');

select * from finish();
rollback;
