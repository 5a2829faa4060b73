-- Inbound keywords (…_inbound_keywords.sql): herald.apply_inbound reads a body with
-- herald.classify_keyword (the standard sets and the workspace's own words), writes one keyword
-- consent per opt-out and opt-in (proof: the MessageSid; channel: the message's), records HELP
-- and INFO as an activity and returns the workspace's help_reply for the webhook to answer with.
-- A MessageSid applied once writes nothing again. Called as the service role, as the
-- twilio-inbound function calls it; members and anon are refused.
begin;
select plan(34);

select tests.workspace_of('ike', 'Inbound keywords', array['ina']) as ws \gset
update workspaces set opt_out_keywords = array['parar'], opt_in_keywords = array['volver'],
                      help_reply = 'Acme Dental: call 555-0100 for help & <info>. Reply STOP to opt out.'
where id = :'ws';
select tests.workspace_of('ivo', 'Plain inbound') as ws_plain \gset
select tests.clear_authentication();

select tests.sender(:'ws', '+15558880001');
insert into senders (workspace_id, channel, phone_number, status) values (:'ws', 'whatsapp', '+15558880001', 'connected');
select tests.sender(:'ws_plain', '+15558880002');
select tests.contact(:'ws', '+14155556001') as ana \gset
select tests.contact(:'ws', '+14155556002') as wes \gset
select tests.contact(:'ws', '+14155556003') as hal \gset
select tests.contact(:'ws_plain', '+14155556101') as pia \gset
insert into sequences (workspace_id, name, status, stop_on_reply) values (:'ws', 'Stops on reply', 'active', true) returning id as seq \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values (:'ws', :'seq', 1, '1 day', 'Hello');
select herald.enroll(s, :'hal', now()) as hal_enrollment from sequences s where s.id = :'seq' \gset

/** Section - the workspace's own words opt out and in, each with its consent */
select tests.authenticate_as_service_role();
select results_eq($$ select outcome, reply from herald.apply_inbound('+14155556001', '+15558880001', '¡Parar!', 'SM' || md5('kw-1'),
                                                                    '{"From": "+14155556001", "To": "+15558880001"}') $$,
  $$ values ('opted_out'::text, null::text) $$, 'PARAR, one of the workspace''s words: opted out, nothing to answer');
select tests.clear_authentication();
select results_eq(format($$ select opted_out_at is not null, herald.is_suppressed(workspace_id, phone) from contacts where id = %L $$, :'ana'),
  $$ values (true, true) $$, 'the contact is opted out and the number suppressed');
select results_eq(format($$ select channel::text, status::text, source::text, proof, actor from consents where contact_id = %L $$, :'ana'),
  $$ values ('sms', 'opted_out', 'keyword', 'SM' || md5('kw-1'), 'provider') $$,
  'one keyword consent: opted out on SMS, the MessageSid as its proof, recorded by the provider path');
select results_eq(format($$ select detail ->> 'keyword', detail ->> 'word' from contact_activities where contact_id = %L and kind = 'replied' $$, :'ana'),
  $$ values ('stop', 'PARAR') $$, 'the reply''s activity names the keyword and the word');

select tests.authenticate_as_service_role();
select is((herald.apply_inbound('+14155556001', '+15558880001', 'Volver', 'SM' || md5('kw-2'), '{}')).outcome, 'opted_in',
  'VOLVER, the workspace''s opt-in word: opted in');
select tests.clear_authentication();
select results_eq(format($$ select opted_out_at is null, herald.is_suppressed(workspace_id, phone), herald.latest_consent(id, 'sms')::text
                            from contacts where id = %L $$, :'ana'),
  $$ values (true, false, 'opted_in') $$, 'the opt-out is lifted and the latest consent is the opt-in');

-- The standard sets as Twilio matches them, punctuation and all (the old matcher missed these).
select tests.authenticate_as_service_role();
select results_eq($$ select (herald.apply_inbound('+14155556001', '+15558880001', b, 'SM' || md5('kw-std-' || n), '{}')).outcome
                     from unnest(array['Stop.', 'optin', ' STOP ', 'start!']) with ordinality u(b, n) order by n $$,
  $$ values ('opted_out'), ('opted_in'), ('opted_out'), ('opted_in') $$,
  'Stop. opts out, OPTIN opts in, and so on');
select tests.clear_authentication();
select results_eq(format($$ select status::text, proof from consents where contact_id = %L order by at $$, :'ana'),
  $$ values ('opted_out', 'SM' || md5('kw-1')), ('opted_in', 'SM' || md5('kw-2')),
            ('opted_out', 'SM' || md5('kw-std-1')), ('opted_in', 'SM' || md5('kw-std-2')),
            ('opted_out', 'SM' || md5('kw-std-3')), ('opted_in', 'SM' || md5('kw-std-4')) $$,
  'every keyword opt-out and opt-in wrote exactly one consent, in order, each with its own sid');

select tests.authenticate_as_service_role();
select is((herald.apply_inbound('+14155556001', '+15558880001', 'STOP', 'SM' || md5('kw-again-1'), '{}')).outcome, 'opted_out', 'STOP');
select is((herald.apply_inbound('+14155556001', '+15558880001', 'stop', 'SM' || md5('kw-again-2'), '{}')).outcome, 'opted_out',
  'and STOP again while opted out');
select tests.clear_authentication();
select is((select count(*)::int from consents where contact_id = :'ana' and proof in ('SM' || md5('kw-again-1'), 'SM' || md5('kw-again-2'))), 2,
  'a repeated STOP is the contact''s word again: recorded again, with its own proof');

-- WhatsApp: the consent is for the channel the contact wrote on.
select tests.authenticate_as_service_role();
select is((herald.apply_inbound('+14155556002', '+15558880001', 'PARAR', 'SM' || md5('wa-1'),
                                '{"From": "whatsapp:+14155556002", "To": "whatsapp:+15558880001"}')).outcome, 'opted_out',
  'PARAR on WhatsApp: opted out');
select tests.clear_authentication();
select results_eq(format($$ select channel::text, status::text, source::text from consents where contact_id = %L $$, :'wes'),
  $$ values ('whatsapp', 'opted_out', 'keyword') $$, 'its consent is a WhatsApp one');

/** Section - HELP and INFO */
select tests.authenticate_as_service_role();
select results_eq($$ select outcome, reply from herald.apply_inbound('+14155556003', '+15558880001', ' help ', 'SM' || md5('help-1'), '{}') $$,
  $$ values ('help'::text, 'Acme Dental: call 555-0100 for help & <info>. Reply STOP to opt out.'::text) $$,
  'HELP: the workspace''s help_reply, for the webhook to answer with');
select tests.clear_authentication();
select results_eq(format($$ select kind, detail ->> 'word', detail ->> 'answered', detail ->> 'provider_sid' from contact_activities
                            where contact_id = %L order by id $$, :'hal'),
  $$ values ('replied', 'HELP', null, 'SM' || md5('help-1')), ('help_requested', 'HELP', 'true', 'SM' || md5('help-1')) $$,
  'recorded as a reply and as a help request that was answered');
select results_eq(format($$ select opted_out_at is null, last_inbound_at is not null, (select count(*)::int from consents where contact_id = c.id)
                            from contacts c where id = %L $$, :'hal'),
  $$ values (true, true, 0) $$, 'HELP is no opt-out and no consent');
select results_eq(format($$ select status::text, stopped_reason from sequence_enrollments where id = %L $$, :'hal_enrollment'),
  $$ values ('cancelled', 'replied') $$, 'but it is a reply: a stop_on_reply sequence stops');
select is((select outcome from provider_events where provider_sid = 'SM' || md5('help-1')), 'help', 'its provider event says help');

select tests.authenticate_as_service_role();
select results_eq($$ select outcome, reply is not null from herald.apply_inbound('+14155556003', '+15558880001', 'Info?', 'SM' || md5('help-2'), '{}') $$,
  $$ values ('help'::text, true) $$, 'INFO? is HELP too');
select results_eq($$ select outcome, reply from herald.apply_inbound('+14155556101', '+15558880002', 'HELP', 'SM' || md5('help-3'), '{}') $$,
  $$ values ('help'::text, null::text) $$, 'a workspace without a help_reply: nothing to answer (Twilio''s default stays)');
select tests.clear_authentication();
select is((select detail ->> 'answered' from contact_activities where contact_id = :'pia' and kind = 'help_requested'), 'false',
  'recorded as a help request left unanswered');
select tests.authenticate_as_service_role();
select results_eq($$ select outcome, reply is not null from herald.apply_inbound('+14155556999', '+15558880001', 'HELP', 'SM' || md5('help-4'), '{}') $$,
  $$ values ('help'::text, true) $$, 'a number with no contact still gets the workspace''s answer');
select results_eq($$ select outcome, reply from herald.apply_inbound('+14155556999', '+15559999999', 'HELP', 'SM' || md5('help-5'), '{}') $$,
  $$ values ('unrouted'::text, null::text) $$, 'a number no sender holds: unrouted, no answer');

/** Section - another workspace's words are plain replies */
select results_eq($$ select outcome, reply from herald.apply_inbound('+14155556101', '+15558880002', 'PARAR', 'SM' || md5('plain-1'), '{}') $$,
  $$ values ('replied'::text, null::text) $$, 'PARAR where it is not configured: a reply');
select tests.clear_authentication();
select results_eq(format($$ select opted_out_at is null, (select count(*)::int from consents where contact_id = c.id) from contacts c where id = %L $$, :'pia'),
  $$ values (true, 0) $$, 'no opt-out, no consent');

/** Section - a MessageSid is applied once */
select count(*) as consents_before from consents \gset
select count(*) as activities_before from contact_activities \gset
select tests.authenticate_as_service_role();
select results_eq($$ select outcome, reply from herald.apply_inbound('+14155556001', '+15558880001', '¡Parar!', 'SM' || md5('kw-1'), '{}') $$,
  $$ values ('duplicate'::text, null::text) $$, 'the PARAR delivered again: duplicate');
select results_eq($$ select outcome, reply from herald.apply_inbound('+14155556003', '+15558880001', ' help ', 'SM' || md5('help-1'), '{}') $$,
  $$ values ('duplicate'::text, 'Acme Dental: call 555-0100 for help & <info>. Reply STOP to opt out.'::text) $$,
  'the HELP delivered again: duplicate, answered as the first delivery was (Twilio retries only what got no answer)');
select results_eq($$ select outcome from herald.apply_inbound('+14155556001', '+15558880001', 'START', 'SM' || md5('kw-std-4'), '{}', 'fresh-token') $$,
  $$ values ('duplicate'::text) $$, 'a replayed START with a fresh idempotency header: duplicate');
select tests.clear_authentication();
select results_eq(format($$ select (select count(*) from consents), (select count(*) from contact_activities),
                                   (select opted_out_at is not null from contacts where id = %L) $$, :'ana'),
  format($$ values (%s::bigint, %s::bigint, true) $$, :consents_before, :activities_before),
  'replays wrote no consent and no activity, and the contact stays opted out');

/** Section - who may apply inbound messages, and who reads what they recorded */
select tests.authenticate_as('ike');
select throws_ok($$ select * from herald.apply_inbound('+14155556003', '+15558880001', 'START', 'SM' || md5('forged'), '{}') $$, '42501', null,
  'a workspace owner cannot apply an inbound message (and so cannot forge a keyword consent)');
select is((select count(*)::int from consents where contact_id = :'ana'), 8, 'the owner reads his contact''s keyword consents');
select tests.authenticate_as('ivo');
select is_empty(format($$ select 1 from consents where workspace_id = %L $$, :'ws'), 'another workspace''s owner reads none of them');
select tests.authenticate_as_anon();
select throws_ok($$ select * from herald.apply_inbound('+14155556003', '+15558880001', 'START', 'SM' || md5('forged'), '{}') $$, '42501', null,
  'anon cannot either');
select tests.clear_authentication();
select is((select count(*)::int from provider_events where provider_sid = 'SM' || md5('forged')), 0, 'and the refused calls left nothing');

select * from finish();
rollback;
