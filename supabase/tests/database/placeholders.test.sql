-- Placeholders for appointments (…_placeholders.sql): herald.placeholder_pattern and
-- herald.placeholders_valid (what may be saved), herald.appointment_time_text (the contact's
-- own clock, daylight saving included), herald.placeholder_values, herald.fill_placeholders and
-- herald.render_text (one pass: values are data, never templates).
begin;
select plan(24);

/** Section - what may be saved */
select ok(herald.placeholders_valid('Hi {{first_name}} {{ last_name }}, {{var.code_2}}: {{appointment.title}} at {{appointment.starts_at}}'),
  'contact, variable and appointment placeholders, spaced or not, are valid');
select ok(herald.placeholders_valid('no placeholders at all, single { braces } too'), 'plain text is valid');
select ok(not herald.placeholders_valid('Hi {{frist_name}}'), 'a misspelt placeholder is not');
select ok(not herald.placeholders_valid('See you {{appointment.start}}'), 'nor an appointment field that does not exist');
select ok(not herald.placeholders_valid('{{var.Code}}'), 'nor a variable key that cannot exist');
select ok(not herald.placeholders_valid('{{1}}'), 'nor a content template''s numbered variable');
select is((regexp_match('x {{ appointment.title }} y', herald.placeholder_pattern()))[1], 'appointment.title',
  'the pattern''s first group is the placeholder''s name');

/** Section - the contact's clock */
select is(herald.appointment_time_text('2026-03-03 13:30Z', 'Europe/Paris'), 'Tuesday 3 March, 14:30 CET',
  'a winter afternoon in Paris');
select is(herald.appointment_time_text('2026-07-07 12:30Z', 'Europe/London'), 'Tuesday 7 July, 13:30 BST',
  'a summer afternoon in London, in summer time');
select is(herald.appointment_time_text('2026-11-01 05:30Z', 'America/New_York'), 'Sunday 1 November, 01:30 EDT',
  'New York, the first 01:30 of the autumn change (still daylight time)');
select is(herald.appointment_time_text('2026-11-01 06:30Z', 'America/New_York'), 'Sunday 1 November, 01:30 EST',
  'and the second 01:30, an hour later, in standard time');
select is(herald.appointment_time_text('2026-03-03 23:30Z', 'Asia/Tokyo'), 'Wednesday 4 March, 08:30 JST',
  'across midnight: the next morning in Tokyo');
select is(current_setting('timezone'), 'UTC', 'the session''s own zone is left as it was');
select throws_ok($$ select herald.appointment_time_text(now(), 'Mars/Olympus') $$, '22023', null,
  'an unknown zone is refused with 22023');

/** Section - values and rendering */
select tests.workspace('Clinic', 'America/New_York') as ws \gset
select tests.contact(:'ws', '+14155550701', 'Europe/London') as ada \gset
select tests.contact(:'ws', '+14155550702') as bo \gset
update contacts set first_name = 'Ada', last_name = '{{first_name}}' where id = :'ada';
update contacts set first_name = 'Bo' where id = :'bo';
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws', :'ada', 'code', 'a\1b&c$1');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'ada', 'Check-up {{var.code}}', '2026-07-07 12:30Z')
  returning id as appt \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'bo', 'Cleaning', '2026-07-07 12:30Z')
  returning id as appt_bo \gset
select tests.workspace('Other') as ws_other \gset

select is(herald.placeholder_values(:'ws', :'ada', :'appt'),
  jsonb_build_object('first_name', 'Ada', 'last_name', '{{first_name}}', 'var.code', 'a\1b&c$1',
                     'appointment.title', 'Check-up {{var.code}}', 'appointment.starts_at', 'Tuesday 7 July, 13:30 BST'),
  'placeholder_values: the contact''s fields and variables, the appointment''s title and start in the contact''s zone');
select is(herald.placeholder_values(:'ws', :'ada', :'appt_bo') ? 'appointment.title', false,
  'another contact''s appointment gives no appointment values');
select is(herald.placeholder_values(:'ws_other', :'ada'), null, 'a contact outside the workspace gives nothing');

select is(herald.render_text('{{appointment.title}} for {{first_name}} {{last_name}} ({{var.code}}) on {{ appointment.starts_at }}.',
                             :'ws', :'ada', :'appt'),
  'Check-up {{var.code}} for Ada {{first_name}} (a\1b&c$1) on Tuesday 7 July, 13:30 BST.',
  'render_text fills every placeholder once: values that look like placeholders or replacements come out as written');
select is(herald.render_text('{{appointment.starts_at}}', :'ws', :'bo', :'appt_bo'), 'Tuesday 7 July, 08:30 EDT',
  'a contact without a zone reads the time in the workspace''s zone');
select is(herald.render_text('Hi {{first_name}}{{var.missing}}, {{appointment.title}}!', :'ws', :'bo'), 'Hi Bo, !',
  'missing values render empty; without an appointment its placeholders render empty');
select is(herald.render_text('Keep {{frist_name}} and {{1}}', :'ws', :'bo'), 'Keep {{frist_name}} and {{1}}',
  'what is not a placeholder stays as written');
select is(herald.render_text('Hi {{first_name}}', :'ws_other', :'ada'), null, 'a contact outside the workspace renders nothing');
select is(herald.fill_placeholders('{{first_name}}/{{var.k}}/{{appointment.title}}', '{"first_name": "A", "var.k": "&"}'), 'A/&/',
  'fill_placeholders takes the values as given');
select is(herald.fill_placeholders('', '{}'), '', 'an empty text renders empty');

select * from finish();
rollback;
