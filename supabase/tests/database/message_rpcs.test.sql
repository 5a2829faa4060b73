-- The message RPCs (…_message_rpcs.sql): schedule_message, cancel_message and enroll_contact
-- as real users, with every refusal; and the checks they share: herald.member_contact,
-- herald.member_message, herald.member_sequence and herald.member_workspace (no user: 42501
-- before anything is read; an unknown id and another workspace's give the same P0002, through
-- herald.require_member),
-- herald.sendable_contact and herald.contact_block_reason (why Herald may not message a contact,
-- the one definition queueing and claiming use too).
begin;
select plan(50);

select tests.create_user('ivy');
select tests.create_user('jay');
select tests.create_user('kim');
select tests.get_user_id('ivy') as ivy, tests.get_user_id('jay') as jay \gset

/** Section - schedule_message */
select tests.authenticate_as('ivy');
select create_workspace('RPC Co') as ws2 \gset
insert into workspace_members (workspace_id, user_id, role) values (:'ws2', :'jay', 'agent');
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws2', 'sms', '+15005550006', 'connected', true);
insert into contacts (workspace_id, phone, first_name, last_name) values (:'ws2', '+14155550601', 'Ada', 'Byron') returning id as a \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550602') returning id as b \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550603') returning id as human \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550604') returning id as opted \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550605') returning id as gone \gset
insert into contacts (workspace_id, phone) values (:'ws2', '+14155550606') returning id as supp \gset
update contacts set controlled_by = 'human' where id = :'human';
update contacts set opted_out_at = now() where id = :'opted';
update contacts set deleted_at = now() where id = :'gone';
select tests.clear_authentication();
insert into suppressions (workspace_id, phone_hash, reason)
values (:'ws2', herald.phone_hash(:'ws2', '+14155550606'), 'provider_unsubscribed');
select count(*) as msgs_before from messages where workspace_id = :'ws2' \gset

select tests.authenticate_as('jay');
select schedule_message(:'a', 'Hello', idempotency_key => 'order-42') as m1 \gset
select is(schedule_message(:'a', 'Hello', idempotency_key => 'order-42'), :'m1'::uuid,
  'the same idempotency key returns the same message');
select throws_ok(format($$ select schedule_message(%L, 'Hello again', idempotency_key => 'order-42') $$, :'a'), '23505', null,
  'the same key with another body is refused');
select throws_ok(format($$ select schedule_message(%L, 'Hello', idempotency_key => 'order-42') $$, :'b'), '23505', null,
  'the same key for another contact is refused');
select throws_ok(format($$ select schedule_message(%L, '') $$, :'a'), '22023', 'message body must not be empty', 'an empty body is refused');
select throws_ok(format($$ select schedule_message(%L, '   ') $$, :'a'), '22023', 'message body must not be empty', 'a blank body is refused');
select throws_ok(format($$ select schedule_message(%L, null) $$, :'a'), '22023', 'message body must not be empty', 'a null body is refused');
select throws_ok(format($$ select schedule_message(%L, repeat('x', 1601)) $$, :'a'), '22023', null, 'a body over 1600 characters is refused');
select lives_ok(format($$ select schedule_message(%L, repeat('x', 1600)) $$, :'a'), 'a body of 1600 characters is fine');
select throws_ok(format($$ select schedule_message(%L, 'later', now() + interval '1 year 1 day') $$, :'a'), '22023', null,
  'send_at more than a year ahead is refused');
select throws_ok(format($$ select schedule_message(%L, 'fax me', channel => 'fax') $$, :'a'), '22023', 'unknown channel "fax"',
  'an unknown channel is refused');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'human'), '55000', null, 'a human-controlled contact is refused');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'opted'), '55000', null, 'an opted-out contact is refused');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'gone'), '55000', null, 'a deleted contact is refused');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'supp'), '55000', format('contact %s''s number is suppressed', :'supp'),
  'a contact whose number is suppressed is refused');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws2', :'b', 'B''s', now() + interval '1 day') returning id as ap_b \gset
select throws_ok(format($$ select schedule_message(%L, 'hi', appointment_id => %L) $$, :'a', :'ap_b'), 'P0002', null,
  'a reminder for another contact''s appointment is refused');
select is((select count(*)::int from messages where workspace_id = :'ws2'), :msgs_before + 2,
  'the refused calls created nothing');

/** cancel_message */
select is(cancel_message(:'m1'), true, 'cancel_message cancels a scheduled message');
select is(cancel_message(:'m1'), false, 'and says false the second time');
select results_eq(format($$ select status::text, cancel_reason::text from messages where id = %L $$, :'m1'),
  $$ values ('cancelled', 'user_cancelled') $$, 'the message is cancelled by the user');
select throws_ok($$ select cancel_message(gen_random_uuid()) $$, 'P0002', null, 'an unknown message is refused');

/** enroll_contact */
select tests.authenticate_as('ivy');
insert into sequences (workspace_id, name) values (:'ws2', 'Draft') returning id as q_draft \gset
insert into sequences (workspace_id, name, status) values (:'ws2', 'Archived', 'archived') returning id as q_arch \gset
insert into sequences (workspace_id, name, status) values (:'ws2', 'Empty', 'active') returning id as q_empty \gset
insert into sequences (workspace_id, name, status) values (:'ws2', 'Drip', 'active') returning id as q_drip \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
  (:'ws2', :'q_draft', 1, '0', 'x'), (:'ws2', :'q_arch', 1, '0', 'x'),
  (:'ws2', :'q_drip', 1, '0', 'Hi {{first_name}} {{last_name}}'),
  (:'ws2', :'q_drip', 2, '2 days', 'Your code: {{ var.code }} & {{first_name}}; {{var.missing}}end'),
  (:'ws2', :'q_drip', 3, '1 hour', 'Last one, {{last_name}}');
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws2', :'a', 'code', 'a\1b&c$1');
select tests.authenticate_as('jay');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'q_draft', :'a'), '55000', null, 'a draft sequence takes no enrollment');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'q_arch', :'a'), '55000', null, 'an archived sequence takes no enrollment');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'q_empty', :'a'), '55000', null, 'a sequence without steps takes no enrollment');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, gen_random_uuid(), :'a'), 'P0002', null, 'an unknown sequence is refused');
select enroll_contact(:'q_drip', :'a') as ed \gset
select is(enroll_contact(:'q_drip', :'a'), :'ed'::uuid, 'enrolling twice returns the same enrollment');
select tests.clear_authentication();
select results_eq(format($$ select status::text, current_position from sequence_enrollments where contact_id = %L $$, :'a'),
  $$ values ('active', 1) $$, 'one active enrollment');
select results_eq(format($$ select body, send_at = now() from messages where enrollment_id = %L $$, :'ed'),
  $$ values ('Hi Ada Byron', true) $$, 'one step-1 message, rendered, due at enrollment + its delay');

/** Section - the shared checks, called the way the RPCs call them */
-- As the RPCs run them: as the functions' owner (the RPCs are security definer), with a
-- member's JWT claims.
select tests.authenticate_as('kim');
select create_workspace('Kim Co') as ws_k \gset
insert into contacts (workspace_id, phone) values (:'ws_k', '+14155550699') returning id as c_kim \gset
select tests.clear_authentication();
select results_eq(
  format($$ select c.id, herald.contact_block_reason(c)::text from contacts c where c.id in (%L, %L, %L, %L, %L) order by c.phone $$,
         :'b', :'human', :'opted', :'gone', :'supp'),
  format($$ values (%L::uuid, null::text), (%L::uuid, 'human_takeover'), (%L::uuid, 'contact_opted_out'), (%L::uuid, 'contact_deleted'),
                   (%L::uuid, 'contact_opted_out') $$, :'b', :'human', :'opted', :'gone', :'supp'),
  'contact_block_reason: none for a contact Herald may message; deleted, opted out, suppressed (as opted out) or human-controlled otherwise');
select set_config('request.jwt.claims', json_build_object('sub', :'jay', 'role', 'authenticated')::text, true);
select is((herald.member_contact(:'b')).id, :'b'::uuid, 'member_contact: an agent gets a contact of her workspace');
select throws_ok(format($$ select herald.member_contact(%L, 'admin') $$, :'b'), '42501', null,
  'but not where the call needs an admin');
select throws_ok(format($$ select herald.member_contact(%L) $$, :'c_kim'), 'P0002', format('contact %s not found', :'c_kim'),
  'another workspace''s contact is not found');
select throws_ok($$ select herald.member_contact(null) $$, '22023', 'contact_id is required', 'and no id is a bad parameter');
select is((herald.sendable_contact(:'b')).id, :'b'::uuid, 'sendable_contact: a contact Herald may message');
select throws_ok(format($$ select herald.sendable_contact(%L) $$, :'gone'), '55000', format('contact %s is deleted', :'gone'),
  'a deleted one is refused with why');
select is((herald.member_message(:'m1')).id, :'m1'::uuid, 'member_message: a message of her workspace');
select set_config('request.jwt.claims', json_build_object('sub', tests.get_user_id('kim'), 'role', 'authenticated')::text, true);
select throws_ok(format($$ select herald.member_message(%L) $$, :'m1'), 'P0002', format('message %s not found', :'m1'),
  'to another workspace''s member the message is not found');
select set_config('request.jwt.claims', json_build_object('sub', :'jay', 'role', 'authenticated')::text, true);
select is((herald.member_sequence(:'q_drip')).id, :'q_drip'::uuid, 'member_sequence: an agent gets a sequence of her workspace');
select throws_ok(format($$ select herald.member_sequence(%L, 'admin') $$, :'q_drip'), '42501', null,
  'but not where the call needs an admin');
select throws_ok($$ select herald.member_sequence(null) $$, '22023', 'sequence_id is required', 'and no id is a bad parameter');
select is((herald.member_workspace(:'ws2')).name, 'RPC Co', 'member_workspace: an agent gets her workspace');
select throws_ok(format($$ select herald.member_workspace(%L, 'admin') $$, :'ws2'), '42501',
  'not a member of this workspace with role admin or higher', 'but not where the call needs an admin');
select throws_ok(format($$ select herald.member_workspace(%L) $$, :'ws_k'), 'P0002', format('workspace %s not found', :'ws_k'),
  'another workspace is not found');
select throws_ok($$ select herald.member_workspace(null) $$, '22023', 'workspace_id is required', 'and no id is a bad parameter');
select throws_ok(format($$ select herald.require_member(%L, 'agent', 'campaign', %L) $$, :'ws_k', :'b'), 'P0002',
  format('campaign %s not found', :'b'), 'require_member: a workspace not hers is "not found", naming what was looked for');
select throws_ok(format($$ select herald.require_member(null, 'agent', 'campaign', %L) $$, :'b'), 'P0002', null,
  'as is no workspace at all (the row was not there)');
select set_config('request.jwt.claims', json_build_object('sub', tests.get_user_id('kim'), 'role', 'authenticated')::text, true);
select throws_ok(format($$ select herald.member_sequence(%L) $$, :'q_drip'), 'P0002', format('sequence %s not found', :'q_drip'),
  'to another workspace''s member the sequence is not found');
select set_config('request.jwt.claims', '', true);
select throws_ok(format($$ select herald.member_contact(%L) $$, :'b'), '42501', 'not signed in',
  'without a user, every lookup stops before reading anything: member_contact');
select throws_ok(format($$ select herald.member_message(%L) $$, :'m1'), '42501', 'not signed in', '… member_message');
select throws_ok(format($$ select herald.member_sequence(%L) $$, :'q_drip'), '42501', 'not signed in', '… member_sequence');
select throws_ok($$ select herald.member_workspace(null) $$, '42501', 'not signed in', '… member_workspace, even without an id');

select * from finish();
rollback;