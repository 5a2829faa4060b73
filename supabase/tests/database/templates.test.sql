-- Templates (…_templates.sql): herald.render_bodies fills {{first_name}}, {{last_name}} and
-- {{var.KEY}} for many contacts in one statement, herald.render_template for one; a value is
-- data, never a template, and never a regular-expression replacement. Step bodies with any
-- other placeholder are refused when saved (sequence_steps_template_tokens).
begin;
select plan(9);

select tests.workspace_of('tia', 'Templates Co') as ws \gset
insert into contacts (workspace_id, phone, first_name, last_name) values (:'ws', '+14155550901', 'Ada', 'Byron') returning id as a \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550902', 'Bo') returning id as b \gset
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws', :'a', 'code', 'a\1b&c$1'), (:'ws', :'a', 'city', 'Lyon'),
  (:'ws', :'b', 'city', 'Oslo');
insert into sequences (workspace_id, name, status) values (:'ws', 'Drip', 'active') returning id as q \gset
select tests.workspace_of('ugo', 'Elsewhere') as ws_other \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws_other', '+14155550903', 'Cy') returning id as c_other \gset
select tests.clear_authentication();

/** Section - render_bodies: one template, many contacts */
select results_eq(
  format($$ select contact_id, body from herald.render_bodies(%L, 'Hi {{first_name}} {{ last_name }} from {{var.city}}: {{var.code}}.',
                                                              array[%L, %L, %L]::uuid[]) order by body $$, :'ws', :'a', :'b', :'a'),
  format($$ values (%L::uuid, 'Hi Ada Byron from Lyon: a\1b&c$1.'::text), (%L::uuid, 'Hi Bo  from Oslo: .') $$, :'a', :'b'),
  'each contact once, its own values filled in, spaced placeholders too; a missing value renders empty; \1, & and $1 come out as written');
select is_empty(format($$ select * from herald.render_bodies(%L, 'Hi {{first_name}}', array[%L]::uuid[]) $$, :'ws', :'c_other'),
  'a contact of another workspace is left out');
select results_eq(
  format($$ select body from herald.render_bodies(%L, 'No placeholder, {{ frist_name }} and {{var.Code}} stay', array[%L]::uuid[]) $$, :'ws', :'a'),
  $$ values ('No placeholder, {{ frist_name }} and {{var.Code}} stay'::text) $$,
  'text that is no placeholder is left as written');

/** Section - render_template: one contact; values are data, never templates */
select is(herald.render_template('Hello {{first_name}} ({{var.city}})', :'ws', :'b'), 'Hello Bo (Oslo)',
  'render_template fills one contact''s template');
select is(herald.render_template('Hello {{first_name}}', :'ws', :'c_other'), null,
  'and renders nothing for a contact outside the workspace');
update contacts set first_name = '{{last_name}}', last_name = '{{first_name}}' where id = :'b';
select is(herald.render_template('Hi {{first_name}} {{last_name}}', :'ws', :'b'), 'Hi {{last_name}} {{first_name}}',
  'a value that looks like a placeholder renders literally');

/** Section - only known placeholders are saved */
select tests.authenticate_as('tia');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 4, 'Hi {{frist_name}}') $$,
  :'ws', :'q'), '23514', null, 'a template with an unknown placeholder is refused');
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 4, 'Hi {{var.Code}}') $$,
  :'ws', :'q'), '23514', null, 'a variable key that cannot exist is refused');
select lives_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 4, 'Bye {{ first_name }} {{var.code_2}}') $$,
  :'ws', :'q'), 'known placeholders, spaced or not, are accepted');
select tests.clear_authentication();

select * from finish();
rollback;
