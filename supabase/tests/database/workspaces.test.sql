-- Tenancy: members see and change their workspace; nobody else sees or changes anything.
begin;
select plan(22);

select tests.create_user('alice');
select tests.create_user('bob');
select tests.create_user('carol');

-- create_workspace: the caller becomes owner
select tests.authenticate_as('alice');
select lives_ok($$ select create_workspace('Alice Co', 'Europe/Paris') $$, 'a signed-in user can create a workspace');
select results_eq($$ select name, timezone from workspaces $$, $$ values ('Alice Co'::text, 'Europe/Paris'::text) $$,
  'the creator sees the new workspace');
select results_eq($$ select role from workspace_members where user_id = auth.uid() $$, $$ values ('owner'::text) $$,
  'the creator is its owner');

-- bad input: clear errors, nothing created
select throws_ok($$ select create_workspace('', 'UTC') $$, '22023', 'workspace name must not be empty',
  'an empty name is refused');
select throws_ok($$ select create_workspace('  ', 'UTC') $$, '22023', 'workspace name must not be empty',
  'a blank name is refused');
select throws_ok($$ select create_workspace('X', 'Mars/Olympus') $$, '22023', 'unknown time zone "Mars/Olympus"',
  'an unknown time zone is refused');
select throws_ok($$ select create_workspace('', 'Mars/Olympus') $$, '22023', null,
  'an empty name with an unknown time zone is refused');
select throws_ok($$ select create_workspace('X', 'UTC+5') $$, '22023', null, 'a POSIX offset is not an IANA name');
select is((select count(*) from workspaces)::int, 1, 'the refused calls created nothing');

-- bob is not a member: sees nothing, changes nothing
select tests.authenticate_as('bob');
select is_empty($$ select * from workspaces $$, 'a non-member sees no workspace');
select is_empty($$ select * from workspace_members $$, 'a non-member sees no memberships');
select throws_ok($$ insert into workspaces (name) values ('sneaky') $$, '42501', null,
  'nobody inserts a workspace directly');
select throws_ok(
  format($$ insert into workspace_members (workspace_id, user_id, role) values (%L, auth.uid(), 'agent') $$,
    (select id from public.workspaces limit 1)),
  '42501', null, 'a non-member cannot add themselves to a workspace');
select is_empty($$ update workspaces set name = 'pwned' returning id $$, 'a non-member updates nothing');
select is_empty($$ delete from workspaces returning id $$, 'a non-member deletes nothing');

-- anon sees nothing
select tests.authenticate_as_anon();
select throws_ok($$ select * from workspaces $$, '42501', null, 'anon cannot read workspaces');
select throws_ok($$ select create_workspace('anon co') $$, '42501', null, 'anon cannot create a workspace');

-- alice adds carol as agent: carol reads but cannot rename or delete
select tests.authenticate_as('alice');
select lives_ok(format($$ insert into workspace_members (workspace_id, user_id, role) values (%L, %L, 'agent') $$,
  (select id from workspaces limit 1), tests.get_user_id('carol')), 'an owner adds an agent');
select tests.authenticate_as('carol');
select results_eq($$ select name from workspaces $$, $$ values ('Alice Co'::text) $$, 'an agent sees the workspace');
select is_empty($$ update workspaces set name = 'carol co' returning id $$, 'an agent cannot rename it');
select is_empty($$ delete from workspaces returning id $$, 'an agent cannot delete it');

-- the last owner cannot leave
select tests.authenticate_as('alice');
select throws_ok($$ delete from workspace_members where user_id = auth.uid() $$, '23514',
  'a workspace must keep at least one owner', 'the last owner cannot leave');

select * from finish();
rollback;
