-- Contacts (…_contacts.sql): what a contact row may hold, one live contact per number, who may
-- write what (a hard delete is an admin's call; the history and the suppression list are
-- Herald's), and the keyed phone hash that lets an opt-out outlive the contact without keeping
-- the number (herald.phone_hash, herald.is_suppressed).
begin;
select plan(17);

select tests.workspace_of('cleo', 'Other Co') as ws_other \gset
select tests.workspace_of('cora', 'Contacts Co', array['cal']) as ws \gset

/** Section - what a contact may hold */
select tests.authenticate_as('cal');
select lives_ok(format($$ insert into contacts (workspace_id, phone, email, first_name, timezone) values (%L, '+14155551201', 'ana@example.com', 'Ana', 'Europe/Lisbon') $$, :'ws'),
  'an agent adds a contact');
select throws_ok(format($$ insert into contacts (workspace_id, phone) values (%L, '4155551202') $$, :'ws'), '23514', null,
  'a number that is not E.164 is refused');
select throws_ok(format($$ insert into contacts (workspace_id, phone, email) values (%L, '+14155551203', 'ana@') $$, :'ws'), '23514', null,
  'an e-mail address without a domain is refused');
select throws_ok(format($$ insert into contacts (workspace_id, phone, timezone) values (%L, '+14155551204', 'CEST') $$, :'ws'), '23514', null,
  'a time zone that is not an IANA name is refused');
select throws_ok(format($$ insert into contacts (workspace_id, phone) values (%L, '+14155551201') $$, :'ws'), '23505', null,
  'a second live contact with the same number is refused');
update contacts set deleted_at = now() where phone = '+14155551201';
select lives_ok(format($$ insert into contacts (workspace_id, phone, first_name) values (%L, '+14155551201', 'Ana again') $$, :'ws'),
  'once the first is soft-deleted, the number may be added again');

/** Section - who writes what */
select is_empty(format($$ delete from contacts where workspace_id = %L returning id $$, :'ws'), 'an agent cannot hard-delete a contact');
select throws_ok(format($$ insert into contact_activities (workspace_id, contact_id, kind, actor)
                          select workspace_id, id, 'forged', 'cal' from contacts where workspace_id = %L limit 1 $$, :'ws'),
  '42501', null, 'nor write the activity history');
select throws_ok(format($$ insert into suppressions (workspace_id, phone_hash, reason) values (%L, 'x', 'opted_out') $$, :'ws'),
  '42501', null, 'nor the suppression list');
select tests.authenticate_as('cora');
select results_eq(format($$ with d as (delete from contacts where workspace_id = %L and deleted_at is not null returning 1) select count(*)::int from d $$, :'ws'),
  $$ values (1) $$, 'an owner can');

/** Section - the keyed phone hash */
select tests.clear_authentication();
select is((select count(*)::int from herald.workspace_keys where workspace_id = :'ws_other'), 0, 'a workspace gets its hashing key when first needed');
select ok(herald.phone_hash(:'ws_other', '+14155551299') ~ '^[0-9a-f]{64}$', 'herald.phone_hash: 64 hex digits');
select is((select count(*)::int from herald.workspace_keys where workspace_id = :'ws_other'), 1, 'and keeps the key it made');
select results_eq(
  format($$ select herald.phone_hash(%1$L, '+14155551299') = herald.phone_hash(%1$L, '+14155551299'),
                   herald.phone_hash(%1$L, '+14155551299') = herald.phone_hash(%2$L, '+14155551299'),
                   herald.phone_hash(%1$L, '+14155551299') = encode(extensions.digest('+14155551299', 'sha256'), 'hex') $$, :'ws', :'ws_other'),
  $$ values (true, false, false) $$,
  'the same number hashes alike in one workspace, differently in another, and not as a bare SHA-256 anyone could reverse');
select is(herald.is_suppressed(:'ws', '+14155551299'), false, 'herald.is_suppressed: not before an opt-out');
insert into suppressions (workspace_id, phone_hash, reason) values (:'ws', herald.phone_hash(:'ws', '+14155551299'), 'opted_out');
select results_eq(format($$ values (herald.is_suppressed(%L, '+14155551299'), herald.is_suppressed(%L, '+14155551299'),
                                    herald.is_suppressed(%L, '+14155551298')) $$, :'ws', :'ws_other', :'ws'),
  $$ values (true, false, false) $$, 'then for that number in that workspace only');
select tests.authenticate_as('cora');
select results_eq($$ select count(*)::int from suppressions $$, $$ values (1) $$, 'members read their workspace''s suppression list (hashes only)');

select * from finish();
rollback;
