-- A Twilio number belongs to one workspace: a (channel, number) is held by one sender across
-- all workspaces, inbound messages to it reach that workspace alone, and a provider event never
-- moves from one workspace to another.
begin;
select plan(11);

select tests.create_user('num_owner_a'), tests.create_user('num_owner_b');
select tests.authenticate_as('num_owner_a');
select create_workspace('Number A') as wa \gset
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'wa', 'sms', '+15557770001', 'connected', true);
select tests.authenticate_as('num_owner_b');
select create_workspace('Number B') as wb \gset

-- 1. a second workspace cannot take the number, by insert or by update (herald.senders_number_free)
select throws_ok(format($$ insert into senders (workspace_id, channel, phone_number, status)
                            values (%L, 'sms', '+15557770001', 'connected') $$, :'wb'),
  '23505', 'the sms number +15557770001 is already held by a sender',
  'another workspace cannot add a sender with a number someone holds');
insert into senders (workspace_id, channel, phone_number, status) values (:'wb', 'sms', '+15557770002', 'connected')
returning id as sb \gset
select throws_ok(format($$ update senders set phone_number = '+15557770001' where id = %L $$, :'sb'),
  '23505', 'the sms number +15557770001 is already held by a sender',
  'nor move one of its senders onto it');
-- the same number on the other channel is another sender (a WhatsApp sender of the same line)
select lives_ok(format($$ insert into senders (workspace_id, channel, phone_number, status, is_default)
                          values (%L, 'whatsapp', '+15557770001', 'connected', true) $$, :'wb'),
  'the same number on the other channel is a different sender');
select tests.authenticate_as('num_owner_a');
select throws_ok(format($$ insert into senders (workspace_id, channel, phone_number, status)
                            values (%L, 'sms', '+15557770001', 'disconnected') $$, :'wa'),
  '23505', null, 'one workspace cannot hold the number twice either');
select tests.clear_authentication();

-- 2. inbound routing: the channel and the number name exactly one workspace
insert into contacts (workspace_id, phone) values (:'wa', '+14155558801') returning id as ca \gset
insert into contacts (workspace_id, phone) values (:'wb', '+14155558801') returning id as cb \gset
select is((herald.apply_inbound('+14155558801', '+15557770001', 'STOP', 'SM' || repeat('b', 32),
                               '{"From": "+14155558801", "To": "+15557770001"}')).outcome, 'opted_out',
  'an SMS STOP to the number is applied');
select results_eq(
  format($$ select id, opted_out_at is not null from contacts where id in (%L, %L) order by id = %L desc $$, :'ca', :'cb', :'ca'),
  format($$ values (%L::uuid, true), (%L::uuid, false) $$, :'ca', :'cb'),
  'in the workspace holding the SMS number only');
select is((select workspace_id from provider_events where provider_sid = 'SM' || repeat('b', 32)), :'wa'::uuid,
  'and its provider event is that workspace''s');

select is((herald.apply_inbound('+14155558801', '+15557770001', 'Hello', 'SM' || repeat('9', 32),
                               '{"From": "whatsapp:+14155558801", "To": "whatsapp:+15557770001"}')).outcome, 'replied',
  'a WhatsApp reply to the same number is applied');
select is((select workspace_id from provider_events where provider_sid = 'SM' || repeat('9', 32)), :'wb'::uuid,
  'in the workspace holding its WhatsApp sender');

-- 3. a provider event's workspace is never rewritten (herald.provider_events_keep_workspace)
select tests.authenticate_as_service_role();
select throws_ok(format($$ update provider_events set workspace_id = %L, contact_id = null where provider_sid = %L $$, :'wb', 'SM' || repeat('b', 32)),
  '42501', null, 'a provider event cannot be moved to another workspace');
select tests.clear_authentication();
select is((select workspace_id from provider_events where provider_sid = 'SM' || repeat('b', 32)), :'wa'::uuid,
  'it stays where it was');

select * from finish();
rollback;
