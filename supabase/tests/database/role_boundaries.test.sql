-- Role boundaries hold at the table, not only in the RPCs: a member's plain UPDATE or DELETE
-- cannot do what the RPC would refuse them.
--   deleted_at is the server's clock (a backdated soft delete would be purged, i.e. hard-deleted,
--     by the nightly job: hard delete is an admin's call);
--   controlled_by / assigned_to move only as take_lead / release_lead would move them;
--   only owners remove owners, and never the last one.
begin;
select plan(15);

select tests.create_user('rb_owner'), tests.create_user('rb_owner2'), tests.create_user('rb_admin'), tests.create_user('rb_agent');
select tests.authenticate_as('rb_owner');
select create_workspace('Boundaries') as ws \gset
select tests.clear_authentication();
insert into workspace_members (workspace_id, user_id, role) values
  (:'ws', tests.get_user_id('rb_owner2'), 'owner'), (:'ws', tests.get_user_id('rb_admin'), 'admin'),
  (:'ws', tests.get_user_id('rb_agent'), 'agent');
insert into contacts (workspace_id, phone) values (:'ws', '+14155556601') returning id as c_lead \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155556602') returning id as c_plain \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155556603') returning id as c_take \gset

-- 1. deleted_at is set by the server
select tests.authenticate_as('rb_agent');
update contacts set deleted_at = '2000-01-01' where id = :'c_plain';
select tests.clear_authentication();
select is((select deleted_at from contacts where id = :'c_plain'), now(), 'an agent''s backdated soft delete takes the server''s time');
select is(herald.purge_deleted_contacts(), 0, 'so the purge does not hard-delete it early');
select tests.authenticate_as('rb_agent');
insert into contacts (workspace_id, phone, deleted_at) values (:'ws', '+14155556604', '2001-01-01') returning id as c_born \gset
select tests.clear_authentication();
select is((select deleted_at from contacts where id = :'c_born'), now(), 'nor can a contact be inserted already deleted in the past');

-- 1 and 2 are herald.contacts_guard_roles, before update and insert on contacts.
-- 2. takeover and release only as the RPCs allow
select tests.authenticate_as('rb_admin');
select lives_ok(format($$ select take_lead(%L) $$, :'c_lead'), 'the admin takes a lead');
select tests.authenticate_as('rb_agent');
select throws_ok(format($$ update contacts set controlled_by = 'automation', assigned_to = null where id = %L $$, :'c_lead'),
  '42501', null, 'an agent cannot hand the admin''s lead back to automation with an update');
select throws_ok(format($$ select release_lead(%L) $$, :'c_lead'), '42501', null, 'as release_lead refuses too');
select throws_ok(format($$ update contacts set assigned_to = %L where id = %L $$, tests.get_user_id('rb_agent'), :'c_lead'),
  '42501', null, 'nor take it over from the admin by rewriting assigned_to');
select throws_ok(format($$ update contacts set controlled_by = 'human', assigned_to = %L where id = %L $$,
                        tests.get_user_id('rb_owner'), :'c_take'),
  '42501', null, 'nor assign a lead to someone else');
update contacts set controlled_by = 'human' where id = :'c_take';
select tests.clear_authentication();
select is((select assigned_to from contacts where id = :'c_take'), tests.get_user_id('rb_agent'),
  'a lead an agent takes with an update is the agent''s, as take_lead would make it');
select tests.authenticate_as('rb_admin');
select lives_ok(format($$ select release_lead(%L) $$, :'c_take'), 'an admin still releases any lead through the RPC');
select tests.clear_authentication();
select is((select (controlled_by, assigned_to)::text from contacts where id = :'c_take'), '(automation,)', 'released');

-- 3. only owners remove owners, never the last one (herald.workspace_members_guard_owners, before delete)
select tests.authenticate_as('rb_admin');
select throws_ok(format($$ delete from workspace_members where workspace_id = %L and user_id = %L $$, :'ws', tests.get_user_id('rb_owner2')),
  '42501', null, 'an admin cannot remove an owner');
select tests.clear_authentication();
select is((select count(*)::int from workspace_members where workspace_id = :'ws' and role = 'owner'), 2, 'both owners stay');
select tests.authenticate_as('rb_owner');
select lives_ok(format($$ delete from workspace_members where workspace_id = %L and user_id = %L $$, :'ws', tests.get_user_id('rb_owner2')),
  'an owner removes another owner');
select throws_ok(format($$ delete from workspace_members where workspace_id = %L and user_id = %L $$, :'ws', tests.get_user_id('rb_owner')),
  '23514', null, 'but not the last one');
select tests.clear_authentication();

select * from finish();
rollback;
