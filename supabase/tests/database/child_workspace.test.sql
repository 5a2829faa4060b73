-- Child rows take their workspace from their parent: sequence_steps, contact_tags,
-- contact_variables and campaign_groups may be inserted without workspace_id; a given one must
-- agree with the parent's, and a parent in another workspace is not found.
begin;
select plan(12);

select tests.create_user('cw_admin'), tests.create_user('cw_other');
select tests.authenticate_as('cw_other');
select create_workspace('Elsewhere') as wb \gset
insert into sequences (workspace_id, name) values (:'wb', 'Theirs') returning id as seq_b \gset
insert into contacts (workspace_id, phone) values (:'wb', '+14155553301') returning id as contact_b \gset
select tests.authenticate_as('cw_admin');
select create_workspace('Children') as wa \gset
insert into sequences (workspace_id, name) values (:'wa', 'Ours') returning id as seq_a \gset
insert into contacts (workspace_id, phone) values (:'wa', '+14155553302') returning id as contact_a \gset
insert into senders (workspace_id, channel, status) values (:'wa', 'whatsapp', 'connected') returning id as sender_a \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id) values (:'wa', :'sender_a', 'g@g.us') returning id as group_a \gset
insert into campaigns (workspace_id, name) values (:'wa', 'Launch') returning id as campaign_a \gset

-- 1. omitted: taken from the parent (herald.child_take_workspace, a before-insert trigger on each child)
select lives_ok(format($$ insert into sequence_steps (sequence_id, position, body) values (%L, 1, 'Hi') $$, :'seq_a'),
  'a step without workspace_id');
select lives_ok(format($$ insert into contact_tags (contact_id, tag) values (%L, 'vip') $$, :'contact_a'),
  'a tag without workspace_id');
select lives_ok(format($$ insert into contact_variables (contact_id, key, value) values (%L, 'city', 'Lyon') $$, :'contact_a'),
  'a variable without workspace_id');
select lives_ok(format($$ insert into campaign_groups (campaign_id, group_id) values (%L, %L) $$, :'campaign_a', :'group_a'),
  'a campaign link without workspace_id');
select results_eq($$
  select (select workspace_id from sequence_steps) union all select (select workspace_id from contact_tags)
  union all select (select workspace_id from contact_variables) union all select (select workspace_id from campaign_groups) $$,
  format($$ values (%1$L::uuid), (%1$L), (%1$L), (%1$L) $$, :'wa'),
  'each took its parent''s workspace');

-- 2. given: must agree
select throws_ok(format($$ insert into sequence_steps (workspace_id, sequence_id, position, body) values (%L, %L, 2, 'Hi') $$, :'wb', :'seq_a'),
  'P0002', null, 'a step naming another workspace than its sequence''s is refused');
select lives_ok(format($$ insert into contact_tags (workspace_id, contact_id, tag) values (%L, %L, 'lead') $$, :'wa', :'contact_a'),
  'a matching workspace_id is fine');

-- 3. a parent in another workspace is not found
select throws_ok(format($$ insert into sequence_steps (sequence_id, position, body) values (%L, 1, 'Hi') $$, :'seq_b'),
  'P0002', format('sequence %s not found', :'seq_b'), 'another workspace''s sequence: not found');
select throws_ok(format($$ insert into contact_tags (contact_id, tag) values (%L, 'x') $$, :'contact_b'),
  'P0002', format('contact %s not found', :'contact_b'), 'another workspace''s contact: not found');
select throws_ok(format($$ insert into contact_variables (contact_id, key, value) values (%L, 'k', 'v') $$, :'contact_b'),
  'P0002', format('contact %s not found', :'contact_b'), 'another workspace''s contact (variables): not found');
select throws_ok(format($$ insert into campaign_groups (campaign_id, group_id) values (%L, %L) $$, gen_random_uuid(), :'group_a'),
  'P0002', null, 'an unknown campaign: not found');
select tests.clear_authentication();
select is((select count(*)::int from sequence_steps where sequence_id = :'seq_b'), 0, 'nothing was written to the other workspace');

select * from finish();
rollback;
