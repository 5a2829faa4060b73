-- Consents (…_consents.sql): an append-only record of every opt-in and opt-out, per contact and
-- channel. Members record what they collected through record_consent (validated; an opt-out is
-- applied as STOP is; an opt-in never lifts an opt-out), Herald's own paths write through
-- herald.record_consent_event, herald.latest_consent is the contact's standing, and
-- herald.consent_block_reason is the consent requirement a marketing message must meet. Rows
-- change for nobody (herald.consents_append_only) and go with the contact on a hard delete.
begin;
select plan(28);

select tests.workspace_of('oda', 'Other Co') as ws_other \gset
insert into contacts (workspace_id, phone) values (:'ws_other', '+14155553099') returning id as stranger \gset
select tests.workspace_of('cai', 'Consent Co', array['cam']) as ws \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155553001') returning id as ann \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155553002') returning id as ben \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155553003') returning id as cy \gset
select tests.clear_authentication();
select tests.message(:'ben', now() + interval '1 day') as ben_msg \gset

/** Section - record_consent as a member */
select tests.authenticate_as('cam');
select record_consent(:'ann', 'sms', 'opted_in', 'form', 'Checked "Text me offers" at https://example.com/signup') as k1 \gset
select results_eq(format($$ select workspace_id, contact_id, channel::text, status::text, source::text, proof, actor from consents where id = %L $$, :'k1'),
  format($$ values (%L::uuid, %L::uuid, 'sms', 'opted_in', 'form', 'Checked "Text me offers" at https://example.com/signup', %L) $$,
         :'ws', :'ann', tests.get_user_id('cam')),
  'an agent records an opt-in the app collected, with its proof and the agent as actor');
-- An internal: Herald's functions call it, members do not.
select tests.clear_authentication();
select is(herald.latest_consent(:'ann', 'sms'), 'opted_in', 'herald.latest_consent: the contact''s standing on that channel');
select is(herald.latest_consent(:'ann', 'whatsapp'), null, 'and none on a channel nothing was recorded for');
select tests.authenticate_as('cam');
select throws_ok(format($$ select record_consent(%L, 'sms', 'opted_in', 'form', '  ') $$, :'ann'), '22023', 'an opt-in needs its proof',
  'an opt-in without proof is refused');
select throws_ok(format($$ select record_consent(%L, 'sms', 'opted_in', 'keyword', 'START') $$, :'ann'), '22023', null,
  'a member cannot record a keyword consent: that is Herald''s, from the contact''s own reply');
select throws_ok(format($$ select record_consent(%L, 'sms', 'opted_in', 'provider', 'x') $$, :'ann'), '22023', null, 'nor a provider one');
select throws_ok(format($$ select record_consent(%L, 'fax', 'opted_in', 'form', 'x') $$, :'ann'), '22023', 'unknown channel "fax"', 'an unknown channel is refused');
select throws_ok(format($$ select record_consent(%L, 'sms', 'maybe', 'form', 'x') $$, :'ann'), '22023', 'unknown consent status "maybe"', 'so is an unknown status');
select throws_ok(format($$ select record_consent(%L, 'sms', 'opted_in', 'form', repeat('x', 4001)) $$, :'ann'), '22023', null, 'and an over-long proof');
select throws_ok(format($$ select record_consent(%L, 'sms', 'opted_in', 'form', 'x') $$, :'stranger'), 'P0002', null,
  'another workspace''s contact is not found');
select throws_ok(format($$ select record_consent(%L, 'sms', 'opted_in', 'form', 'x') $$, gen_random_uuid()), 'P0002', null,
  'nor is one that does not exist');

/** Section - an opt-out through record_consent is a STOP */
select record_consent(:'ben', 'whatsapp', 'opted_out', 'api', 'Asked by phone to stop') as k2 \gset
select results_eq(format($$ select c.opted_out_at is not null, m.status::text, m.cancel_reason::text,
                                   (select count(*)::int from suppressions s where s.phone_hash = c.phone_hash)
                            from contacts c join messages m on m.contact_id = c.id where c.id = %L $$, :'ben'),
  $$ values (true, 'cancelled', 'contact_opted_out', 1) $$,
  'an opt-out recorded by the app opts the contact out: pending messages cancelled, number suppressed');
select tests.clear_authentication();
select is(herald.latest_consent(:'ben', 'whatsapp'), 'opted_out', 'and is the contact''s standing');
select tests.authenticate_as('cam');
select throws_ok(format($$ select record_consent(%L, 'sms', 'opted_in', 'form', 'Signed again') $$, :'ben'), '55000',
  format('contact %s opted out; only the contact can opt back in', :'ben'),
  'an opt-in cannot lift an opt-out: only the contact can, by replying START');
select is((select count(*)::int from consents where contact_id = :'ben'), 1, 'and the refused opt-in wrote nothing');

/** Section - nobody rewrites the record */
select throws_ok(format($$ insert into consents (workspace_id, contact_id, channel, status, source) values (%L, %L, 'sms', 'opted_in', 'form') $$, :'ws', :'cy'),
  '42501', null, 'members cannot insert consents directly');
select throws_ok(format($$ update consents set status = 'opted_out' where id = %L $$, :'k1'), '42501', null, 'nor change one');
select tests.clear_authentication();
select throws_ok(format($$ update consents set proof = 'forged' where id = %L $$, :'k1'), '42501', 'consents are append-only',
  'not even the table owner can change one');
select throws_ok(format($$ delete from consents where id = %L $$, :'k1'), '42501', 'consents are append-only', 'or delete one');
select throws_ok($$ truncate consents $$, '42501', 'consents are append-only', 'or truncate them');

/** Section - herald.record_consent_event: Herald's keyword and provider paths */
select tests.authenticate_as_service_role();
select herald.record_consent_event(:'ws', :'cy', 'sms', 'opted_in', 'keyword', 'inbound SMcy1: START') as k3 \gset
select results_eq(format($$ select status::text, source::text, proof, actor from consents where id = %L $$, :'k3'),
  $$ values ('opted_in', 'keyword', 'inbound SMcy1: START', 'service_role') $$,
  'the service role writes a keyword consent with its proof');
select herald.record_consent_event(:'ws', :'cy', 'sms', 'opted_out', 'provider', 'error 21610') as k4 \gset
select is(herald.latest_consent(:'cy', 'sms'), 'opted_out', 'the later record is the standing, even within one transaction');
select throws_ok(format($$ select herald.record_consent_event(%L, %L, 'sms', null, 'keyword') $$, :'ws', :'cy'), '22023', null,
  'a record without a status is refused');
select tests.authenticate_as('cam');
select throws_ok(format($$ select herald.record_consent_event(%L, %L, 'sms', 'opted_in', 'keyword') $$, :'ws', :'cy'), '42501', null,
  'members cannot call it');

/** Section - herald.consent_block_reason */
select tests.clear_authentication();
select results_eq(format($$ select herald.consent_block_reason(c, 'sms', 'marketing')::text from contacts c where c.id = %L $$, :'cy'),
  $$ values (null::text) $$, 'without consent_required nothing is blocked for lack of consent');
update workspaces set consent_required = true where id = :'ws';
select results_eq(format($$ select c.id, herald.consent_block_reason(c, 'sms', 'marketing')::text, herald.consent_block_reason(c, 'sms', 'transactional')::text,
                                   herald.consent_block_reason(c, 'whatsapp', 'marketing')::text
                            from contacts c where c.id in (%L, %L) order by c.phone $$, :'ann', :'cy'),
  format($$ values (%L::uuid, null::text, null::text, 'no_consent'), (%L::uuid, 'no_consent', null, 'no_consent') $$, :'ann', :'cy'),
  'with consent_required, marketing needs an opt-in as the latest consent on its channel; transactional does not');

/** Section - consents go with the contact */
select tests.authenticate_as('cai');
select results_eq(format($$ select delete_contact(%L, hard => true) -> 'deleted' -> 'public.consents' $$, :'cy'),
  $$ values ('2'::jsonb) $$, 'a hard delete takes the contact''s consents with it, and says so');
select results_eq(format($$ select count(*)::int from consents where contact_id in (%L, %L) $$, :'ann', :'cy'), $$ values (1) $$,
  'the others stay');

select * from finish();
rollback;
