-- An inbound message is applied once per signed MessageSid. The I-Twilio-Idempotency-Token
-- header is not covered by Twilio's signature: a captured START replayed with a fresh token
-- after a later STOP must not opt the contact back in.
begin;
select plan(5);

select tests.create_user('idem_owner');
select tests.authenticate_as('idem_owner');
select create_workspace('Inbound once') as ws \gset
select tests.clear_authentication();
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'ws', 'sms', '+15557771001', 'connected', true);
insert into contacts (workspace_id, phone) values (:'ws', '+14155559901') returning id as c \gset

-- herald.provider_events_inbound_key keys an inbound event by its MessageSid, whatever the token.
select tests.authenticate_as_service_role();
select is((herald.apply_inbound('+14155559901', '+15557771001', 'STOP', 'SM' || repeat('1', 32), '{}', 'token-1')).outcome,
  'opted_out', 'STOP opts out');
select is((herald.apply_inbound('+14155559901', '+15557771001', 'START', 'SM' || repeat('2', 32), '{}', 'token-2')).outcome,
  'opted_in', 'START opts back in');
select is((herald.apply_inbound('+14155559901', '+15557771001', 'STOP', 'SM' || repeat('3', 32), '{}', 'token-3')).outcome,
  'opted_out', 'a later STOP opts out again');
select is((herald.apply_inbound('+14155559901', '+15557771001', 'START', 'SM' || repeat('2', 32), '{}', 'replayed-token')).outcome,
  'duplicate', 'the captured START, replayed with a new token, is a duplicate');
select tests.clear_authentication();
select isnt((select opted_out_at from contacts where id = :'c'), null, 'and the contact stays opted out');

select * from finish();
rollback;
