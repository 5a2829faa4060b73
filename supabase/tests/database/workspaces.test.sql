-- Tenancy (…_workspaces.sql): members see and change their workspace; nobody else sees or
-- changes anything. create_workspace makes its caller the owner; the membership helpers every
-- policy and RPC uses (herald.role_rank, herald.my_workspace_ids, herald.has_role,
-- herald.require_user, herald.require_role) answer for the caller's JWT; a workspace keeps an owner
-- (herald.keep_an_owner).
begin;
select plan(37);

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
select throws_ok($$ update workspace_members set role = 'admin' where user_id = auth.uid() $$, '23514',
  'a workspace must keep at least one owner', 'nor step down to admin');

/** Section - the membership helpers */
select tests.clear_authentication();
select results_eq($$ select r, herald.role_rank(r) from unnest(array['owner', 'admin', 'agent', 'guest', null]) r $$,
  $$ values ('owner'::text, 3), ('admin', 2), ('agent', 1), ('guest', 0), (null, 0) $$,
  'role_rank: owner > admin > agent; anything else ranks below every role');
select tests.authenticate_as('carol');
select create_workspace('Carol Co') as carol_ws \gset
select id as alice_ws from workspaces where name = 'Alice Co' \gset
select results_eq(
  $$ select (select array_agg(w order by w) from herald.my_workspace_ids() w), (select array_agg(w) from herald.my_workspace_ids('admin') w),
            (select array_agg(w) from herald.my_workspace_ids('owner') w) $$,
  format($$ values ((select array_agg(w order by w) from unnest(array[%1$L::uuid, %2$L::uuid]) w), array[%2$L::uuid], array[%2$L::uuid]) $$,
         :'alice_ws', :'carol_ws'),
  'my_workspace_ids: an agent of one workspace and owner of another gets both, and only hers at admin and owner');
select results_eq(
  format($$ values (herald.has_role(%1$L), herald.has_role(%1$L, 'admin'), herald.has_role(%2$L, 'owner'), herald.has_role(gen_random_uuid())) $$,
         :'alice_ws', :'carol_ws'),
  $$ values (true, false, true, false) $$,
  'has_role: true with the role or a higher one, false below it or outside');
-- The rest are called only by the RPCs, which are security definer: as their owner, with the
-- member's JWT claims (members themselves may not call them, see catalog.test.sql).
select set_config('role', 'postgres', true);
select lives_ok(format($$ select herald.require_role(%L) $$, :'alice_ws'), 'require_role lets a member through');
select throws_ok(format($$ select herald.require_role(%L, 'admin') $$, :'alice_ws'), '42501',
  'not a member of this workspace with role admin or higher', 'and stops her where the call needs an admin');
select is(herald.require_user(), tests.get_user_id('carol'), 'require_user: the caller''s own id');
select set_config('request.jwt.claims', '{"role": "authenticated"}', true);
select throws_ok($$ select herald.require_user() $$, '42501', 'not signed in', 'a token without a user is not signed in');
select throws_ok(format($$ select herald.require_role(%L) $$, :'alice_ws'), '42501', 'not signed in',
  'so require_role stops it before looking at the workspace');
select throws_ok($$ select create_workspace('Nobody Co') $$, '42501', 'not signed in', 'and nobody creates a workspace');
select tests.clear_authentication();
select throws_ok($$ select herald.require_user() $$, '42501', 'not signed in', 'nor is the database owner without a JWT');

/** Section - a workspace keeps an owner, until its owner's account goes */
select tests.authenticate_as('alice');
select lives_ok(format($$ update workspace_members set role = 'owner' where workspace_id = %L and user_id = %L $$,
  :'alice_ws', tests.get_user_id('carol')), 'an owner makes an agent owner too');
select lives_ok($$ update workspace_members set role = 'admin' where user_id = auth.uid() $$,
  'with another owner, the first may step down');
select tests.clear_authentication();
select lives_ok(format($$ delete from auth.users where id = %L $$, tests.get_user_id('carol')),
  'the last owner''s user account can still be deleted (its memberships go with it)');
select is_empty(format($$ select role from workspace_members where workspace_id = %L and role = 'owner' $$, :'alice_ws'),
  'the one way a workspace is left without an owner');

select * from finish();
rollback;
