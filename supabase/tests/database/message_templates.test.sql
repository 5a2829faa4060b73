-- Content templates and WhatsApp's 24-hour window (…_message_templates.sql): message_templates
-- under RLS (members read, admins write) and its constraints (herald.content_body_valid),
-- templates named only within their own workspace and channel, a template pending messages need
-- cannot be deleted (herald.message_templates_before_delete), ContentVariables
-- (herald.content_variables_valid, herald.render_template_variables, herald.fill_content_variables),
-- the window (herald.provider_events_note_whatsapp, herald.whatsapp_window_open) and what goes to
-- Twilio (herald.outbound_content).
begin;
select plan(42);

select tests.workspace_of('olga', 'Clinic', array['andy'], array['ada']) as ws \gset
select tests.workspace_of('otto', 'Elsewhere') as ws_other \gset
select tests.clear_authentication();
update workspaces set timezone = 'Europe/Paris' where id = :'ws';
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'ws', 'whatsapp', '+15550007001', 'connected', true), (:'ws', 'sms', '+15550007002', 'connected', true);
insert into contacts (workspace_id, phone, first_name, last_name) values (:'ws', '+14155550801', 'Zoë', 'Quinn') returning id as zoe \gset
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws', :'zoe', 'clinic', E'Rue\n  de   la Paix');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'zoe', 'Check-up', '2026-03-03 13:30Z')
  returning id as appt \gset
insert into contacts (workspace_id, phone) values (:'ws_other', '+14155550802') returning id as stranger \gset

/** Section - who may read and write templates */
select tests.authenticate_as('ada');
insert into message_templates (workspace_id, name, content_sid, body, variables)
values (:'ws', 'reminder', 'HX0123456789abcdef0123456789abcdef', 'Hi {{1}}, see you {{2}} at {{3}}.',
        array['{{first_name}}', '{{appointment.starts_at}}', '{{var.clinic}}'])
returning id as tpl \gset
select isnt(:'tpl'::uuid, null, 'an admin adds a template');
insert into message_templates (workspace_id, name, channel, content_sid, body)
values (:'ws', 'sms notice', 'sms', 'HX0123456789abcdef0123456789abcde0', 'Your order shipped.') returning id as tpl_sms \gset
select tests.authenticate_as('andy');
select results_eq('select count(*)::int from message_templates', array[2], 'an agent reads the workspace''s templates');
select throws_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body) values (%L, 'x', 'HX0123456789abcdef0123456789abcde1', 'x') $$, :'ws'),
  '42501', null, 'an agent cannot add one');
update message_templates set name = 'renamed' where id = :'tpl';
select results_eq(format('select name from message_templates where id = %L', :'tpl'), array['reminder'], 'nor rename one');
select tests.authenticate_as('otto');
select is_empty('select * from message_templates', 'another workspace''s owner sees none of them');
select throws_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body) values (%L, 'x', 'HX0123456789abcdef0123456789abcde1', 'x') $$, :'ws'),
  '42501', null, 'nor adds one to it');
select tests.authenticate_as_anon();
select throws_ok('select * from message_templates', '42501', null, 'anon reads nothing');

/** Section - what a template may be */
select tests.authenticate_as('ada');
select throws_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body) values (%L, 'x', 'HX123', 'x') $$, :'ws'),
  '23514', null, 'a content_sid that is not HX + 32 hex digits is refused');
select throws_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body, variables)
                         values (%L, 'x', 'HX0123456789abcdef0123456789abcde1', 'Hi {{1}} {{3}}', array['{{first_name}}', '']) $$, :'ws'),
  '23514', null, 'a body naming a variable it does not declare ({{3}} of 2) is refused');
select throws_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body) values (%L, 'x', 'HX0123456789abcdef0123456789abcde1', 'Hi {{first_name}}') $$, :'ws'),
  '23514', null, 'a body with a Herald placeholder instead of a numbered variable is refused');
select throws_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body, variables)
                         values (%L, 'x', 'HX0123456789abcdef0123456789abcde1', 'Hi {{1}}', array['{{frist_name}}']) $$, :'ws'),
  '23514', null, 'a variable with an unknown placeholder is refused');
select throws_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body, variables)
                         values (%L, 'x', 'HX0123456789abcdef0123456789abcde1', 'Hi {{1}} {{2}}', array['{{', 'first_name}}']) $$, :'ws'),
  '23514', null, 'nor can a placeholder be spread over two variables');
select throws_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body, language) values (%L, 'reminder', 'HX0123456789abcdef0123456789abcde1', 'x', 'en') $$, :'ws'),
  '23505', null, 'one template per name and language in a workspace');
select lives_ok(format($$ insert into message_templates (workspace_id, name, content_sid, body, language) values (%L, 'reminder', 'HX0123456789ABCDEF0123456789abcde1', 'Bonjour', 'fr') $$, :'ws'),
  'the same name in another language is another template');
select ok(herald.content_body_valid('{{1}} and {{2}}', 2) and not herald.content_body_valid('{{ 1 }}', 1) and not herald.content_body_valid('{{0}}', 1),
  'content_body_valid: {{N}} exactly, from 1');

/** Section - steps and messages name a template of their own workspace and channel */
insert into sequences (workspace_id, name, status) values (:'ws', 'Drip', 'active') returning id as seq \gset
select lives_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, channel, body, template_id)
                          values (%L, %L, 1, 'whatsapp', 'Hi {{first_name}}', %L) $$, :'ws', :'seq', :'tpl'),
  'a WhatsApp step names a WhatsApp template of its workspace');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, channel, body, template_id)
                           values (%L, %L, 2, 'sms', 'Hi', %L) $$, :'ws', :'seq', :'tpl'),
  '23503', null, 'an SMS step cannot name a WhatsApp template');
select throws_ok(format('delete from message_templates where id = %L', :'tpl'), '23503', null,
  'a template a step uses cannot be deleted');
select tests.clear_authentication();
select throws_ok(format($$ insert into messages (workspace_id, contact_id, channel, body, template_id) values (%L, %L, 'whatsapp', 'x', %L) $$,
                        :'ws_other', :'stranger', :'tpl'),
  '23503', null, 'a message cannot name another workspace''s template');
select throws_ok(format($$ insert into messages (workspace_id, contact_id, channel, body, template_id) values (%L, %L, 'sms', 'x', %L) $$,
                        :'ws', :'zoe', :'tpl'),
  '23503', null, 'nor a template of another channel');
select throws_ok(format($$ insert into messages (workspace_id, contact_id, channel, body, template_id, template_variables)
                           values (%L, %L, 'whatsapp', 'x', %L, '{"1": "a\nb"}') $$, :'ws', :'zoe', :'tpl'),
  '23514', null, 'template_variables Twilio would refuse (a newline) are refused');
select ok(herald.content_variables_valid('{"1": "Ada", "12": "x y"}')
          and not herald.content_variables_valid('{"1": ""}') and not herald.content_variables_valid('{"a": "x"}')
          and not herald.content_variables_valid('{"1": 2}') and not herald.content_variables_valid('["x"]')
          and not herald.content_variables_valid('{"1": "a     b"}'),
  'content_variables_valid: numbered keys, non-empty strings, no runs of five spaces');
insert into messages (workspace_id, contact_id, channel, body, template_id, template_variables)
values (:'ws', :'zoe', 'whatsapp', 'Hi Zoë', :'tpl', '{"1": "Zoë"}') returning id as m \gset
delete from sequence_steps where sequence_id = :'seq';
select throws_ok(format('delete from message_templates where id = %L', :'tpl'), '55000', null,
  'a template a message not sent yet needs cannot be deleted');
select tests.mark_sent(array[:'m']::uuid[]);
select lives_ok(format('delete from message_templates where id = %L', :'tpl'), 'once the message is sent, it can');
select results_eq(format('select template_id, body from messages where id = %L', :'m'), $$ values (null::uuid, 'Hi Zoë') $$,
  'the sent message keeps its text and lets go of the template');

/** Section - rendering ContentVariables */
insert into message_templates (workspace_id, name, content_sid, body, variables)
values (:'ws', 'reminder', 'HX0123456789abcdef0123456789abcdef', 'Hi {{1}}, see you {{2}} at {{3}}. {{4}}',
        array['{{first_name}} {{last_name}}', '{{appointment.starts_at}}', '{{var.clinic}}', '{{var.missing}}'])
returning id as tpl \gset
select is(herald.render_template_variables(:'tpl', :'zoe', null, :'appt'),
  '{"1": "Zoë Quinn", "2": "Tuesday 3 March, 14:30 CET", "3": "Rue de la Paix"}'::jsonb,
  'variables are rendered from the contact and the appointment, whitespace folded, empty ones left out');
select is(herald.render_template_variables(:'tpl', :'zoe', '{"3": "  the  annex ", "4": 7}'),
  '{"1": "Zoë Quinn", "3": "the annex", "4": "7"}'::jsonb,
  'a caller''s value wins over the template''s placeholder; without an appointment its placeholders render empty');
select throws_ok(format($$ select herald.render_template_variables(%L, %L, '{"5": "x"}') $$, :'tpl', :'zoe'), '22023', null,
  'a variable the template does not have is refused');
select throws_ok(format($$ select herald.render_template_variables(%L, %L, '{"1": {"x": 1}}') $$, :'tpl', :'zoe'), '22023', null,
  'a value that is not text is refused');
select throws_ok(format($$ select herald.render_template_variables(%L, %L, '[1]') $$, :'tpl', :'zoe'), '22023', null,
  'variables that are not an object are refused');
select throws_ok(format('select herald.render_template_variables(%L, %L)', :'tpl', :'stranger'), 'P0002', null,
  'a contact of another workspace is not found');
select throws_ok(format('select herald.render_template_variables(%L, %L)', gen_random_uuid(), :'zoe'), 'P0002', null,
  'an unknown template is not found');
select is(herald.fill_content_variables('Hi {{1}}, see you {{2}} at {{3}}.', '{"1": "{{2}}", "3": "$1 & \\1"}'),
  'Hi {{2}}, see you {{2}} at $1 & \1.',
  'fill_content_variables: one pass, values as written, a missing one left as {{N}}');

/** Section - the 24-hour window */
select tests.authenticate_as_service_role();
select herald.apply_inbound('+14155550801', '+15550007001', 'Thanks!', 'SM00000000000000000000000000000001',
                            '{"From": "whatsapp:+14155550801", "To": "whatsapp:+15550007001"}');
select tests.clear_authentication();
select isnt((select last_whatsapp_inbound_at from contacts where id = :'zoe'), null,
  'an inbound WhatsApp message opens the contact''s window');
update contacts set last_whatsapp_inbound_at = '2026-01-01 10:00Z' where id = :'zoe';
select tests.authenticate_as_service_role();
select herald.apply_inbound('+14155550801', '+15550007002', 'Thanks by SMS', 'SM00000000000000000000000000000002',
                            '{"From": "+14155550801", "To": "+15550007002"}');
select tests.clear_authentication();
select is((select last_whatsapp_inbound_at from contacts where id = :'zoe'), '2026-01-01 10:00Z'::timestamptz,
  'an SMS reply opens no WhatsApp window');
select ok(herald.whatsapp_window_open(c, '2026-01-02 09:59:59Z'), 'the window is open 23:59:59 after the last message')
from contacts c where c.id = :'zoe';
select ok(not herald.whatsapp_window_open(c, '2026-01-02 10:00Z'), 'and closed at 24 hours') from contacts c where c.id = :'zoe';
select ok(not herald.whatsapp_window_open(c, now()), 'a contact who never wrote on WhatsApp has no window') from contacts c where c.id = :'stranger';

/** Section - what goes to Twilio */
insert into messages (workspace_id, contact_id, channel, body, template_id, template_variables)
values (:'ws', :'zoe', 'whatsapp', 'Hi Zoë, see you soon', :'tpl', '{"1": "Zoë"}') returning id as m_tpl \gset
insert into messages (workspace_id, contact_id, channel, body) values (:'ws', :'zoe', 'whatsapp', 'Free text') returning id as m_free \gset
insert into messages (workspace_id, contact_id, channel, body) values (:'ws', :'zoe', 'sms', 'An SMS') returning id as m_sms \gset
select results_eq(format($$ select o.body, o.content_sid, o.content_variables, o.refusal from messages m join contacts c on c.id = m.contact_id,
                              herald.outbound_content(m, c, '2026-01-01 12:00Z') o where m.id = %L $$, :'m_tpl'),
  $$ values ('Hi Zoë, see you soon', null::text, null::jsonb, null::text) $$,
  'inside the window WhatsApp goes free-form, template or not');
select results_eq(format($$ select o.body, o.content_sid, o.content_variables, o.refusal from messages m join contacts c on c.id = m.contact_id,
                              herald.outbound_content(m, c, '2026-01-03 12:00Z') o where m.id = %L $$, :'m_tpl'),
  $$ values (null::text, 'HX0123456789abcdef0123456789abcdef', '{"1": "Zoë"}'::jsonb, null::text) $$,
  'outside it, as its template: ContentSid and ContentVariables, no body');
select results_eq(format($$ select o.body, o.content_sid, o.refusal, o.refusal_message ~ 'template required' from messages m join contacts c on c.id = m.contact_id,
                              herald.outbound_content(m, c, '2026-01-03 12:00Z') o where m.id = %L $$, :'m_free'),
  $$ values (null::text, null::text, 'template_required', true) $$,
  'outside it without a template: nothing to send, refused as template_required with a message that says so');
select results_eq(format($$ select o.body, o.content_sid, o.refusal from messages m join contacts c on c.id = m.contact_id,
                              herald.outbound_content(m, c, '2026-01-03 12:00Z') o where m.id = %L $$, :'m_sms'),
  $$ values ('An SMS', null::text, null::text) $$,
  'SMS has no window: always its body');

select * from finish();
rollback;
