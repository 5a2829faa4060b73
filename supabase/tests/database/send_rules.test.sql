-- The law and the recipient on the send path: herald.send_rule decides for one message and
-- herald.apply_send_rules for a batch, at queueing (herald.queue_due_messages), at the claim
-- (herald.claim_messages) and right before the provider call (herald.confirm_send).
begin;
select plan(16);
update workspaces set automation_enabled = false;

-- No quiet hours of its own: only the legal hours apply. One marketing message per contact a day.
insert into workspaces (name, timezone, quiet_hours_start, quiet_hours_end, contact_daily_cap)
values ('Law', 'America/New_York', '00:00', '00:00', 1) returning id as w1 \gset
insert into workspaces (name, timezone, quiet_hours_start, quiet_hours_end, consent_required)
values ('Consent', 'America/New_York', '00:00', '00:00', true) returning id as w2 \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values
  (:'w1', 'sms', '+15557778001', 'connected', 100, true), (:'w2', 'sms', '+15557778002', 'connected', 100, true);
insert into contacts (workspace_id, phone) values (:'w1', '+13055550100') returning id as fl \gset
insert into contacts (workspace_id, phone) values (:'w1', '+12125550101') returning id as ny \gset
insert into contacts (workspace_id, phone) values (:'w2', '+12125550102') returning id as unconsented \gset
insert into contacts (workspace_id, phone) values (:'w2', '+12125550103') returning id as consented \gset

-- 20:30 in New York and Miami on 1 December.
\set now '''2026-12-02 01:30:00+00'''
insert into messages (workspace_id, contact_id, body, send_at, status, category) values
  (:'w1', :'fl', 'fl marketing', :now, 'scheduled', 'marketing'),
  (:'w1', :'fl', 'fl code', :now, 'scheduled', 'transactional'),
  (:'w1', :'ny', 'ny first', :now::timestamptz - interval '2 minutes', 'scheduled', 'marketing'),
  (:'w1', :'ny', 'ny second', :now::timestamptz - interval '1 minute', 'scheduled', 'marketing'),
  (:'w2', :'unconsented', 'no consent', :now, 'scheduled', 'marketing'),
  (:'w2', :'unconsented', 'their receipt', :now, 'scheduled', 'transactional'),
  (:'w2', :'consented', 'with consent', :now, 'scheduled', 'marketing');
-- Made the day before the fixed clock (a deadline must come after the message was made).
insert into messages (workspace_id, contact_id, body, send_at, status, category, expires_at, created_at) values
  (:'w1', :'ny', 'too late', :now::timestamptz - interval '1 hour', 'scheduled', 'transactional', :now::timestamptz - interval '1 minute', :now::timestamptz - interval '1 day'),
  (:'w1', :'fl', 'would wait past its deadline', :now, 'scheduled', 'marketing', :now::timestamptz + interval '1 hour', :now::timestamptz - interval '1 day');

-- The app records the opt-in it collected, as a member of the workspace.
insert into workspace_members (workspace_id, user_id, role) values (:'w2', tests.create_user('consent_admin'), 'admin');
select tests.authenticate_as('consent_admin');
select record_consent(:'consented', 'sms', 'opted_in', 'form', 'Signed up on the web form: "Text me offers"');
select tests.authenticate_as_service_role();
select herald.queue_due_messages(100, :now) as queued \gset
select tests.clear_authentication();

select results_eq($$ select body, status::text, coalesce(cancel_reason::text, '-') from messages
                     where workspace_id in (select id from workspaces where name in ('Law', 'Consent')) order by body $$,
  $$ values ('fl code', 'queued', '-'), ('fl marketing', 'scheduled', '-'), ('no consent', 'cancelled', 'no_consent'),
            ('ny first', 'queued', '-'), ('ny second', 'scheduled', '-'), ('their receipt', 'queued', '-'),
            ('too late', 'cancelled', 'expired'), ('with consent', 'queued', '-'),
            ('would wait past its deadline', 'cancelled', 'expired') $$,
  'queueing applies legal hours, the contact cap, consent and deadlines; transactional is exempt from all but deadlines');
select ok((select send_at between '2026-12-02 13:00+00' and '2026-12-02 13:30+00' from messages where body = 'fl marketing'),
  'marketing to a Florida number at 20:30 waits for 08:00 there (Florida allows 08:00-20:00)');
select is((select reason from message_events e join messages m on m.id = e.message_id where m.body = 'fl marketing' order by e.id desc limit 1),
  'quiet_hours', 'with reason quiet_hours');
select ok((select send_at between '2026-12-02 13:00+00' and '2026-12-02 13:30+00' from messages where body = 'ny second'),
  'the second marketing message of the day waits for the next day''s window');
select is((select reason from message_events e join messages m on m.id = e.message_id where m.body = 'ny second' order by e.id desc limit 1),
  'frequency_cap', 'with reason frequency_cap');
select is((:'queued'::jsonb ->> 'cancelled')::int, 3, 'queueing counts the cancellations');

-- One message at a time.
select w as law from workspaces w where id = :'w1' \gset
select c as fl_row from contacts c where id = :'fl' \gset
select results_eq(format($$ select cancel_reason::text, defer_reason, defer_until from herald.send_rule(
    (select m from messages m where body = 'fl code'), %L::contacts, %L::workspaces, '2026-12-02 01:30+00', 0) $$, :'fl_row', :'law'),
  $$ values (null::text, null::text, null::timestamptz) $$, 'a transactional code may go now');
select results_eq(format($$ select cancel_reason::text from herald.send_rule(
    (select m from messages m where body = 'fl code'), %L::contacts, (select w from workspaces w where id = %L), '2026-12-02 01:30+00', 0) $$,
    :'fl_row', :'w1'),
  $$ values (null::text) $$, 'the same from the stored rows');
-- A workspace whose only open hours are outside the legal ones can send no marketing at all.
update workspaces set quiet_hours_start = '07:00', quiet_hours_end = '22:00' where id = :'w1';
select results_eq(format($$ select cancel_reason::text from herald.send_rule(
    (select m from messages m where body = 'fl marketing'), %L::contacts, (select w from workspaces w where id = %L), '2026-12-02 01:30+00', 0) $$,
    :'fl_row', :'w1'),
  $$ values ('no_send_window'::text) $$, 'marketing no window allows is cancelled no_send_window');
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00' where id = :'w1';

-- At the claim and at the confirmation, with the real clock: a zone where it is night now.
select name as night_zone from pg_timezone_names
where extract(hour from now() at time zone name) between 1 and 5 and name ~ '^(America|Europe|Asia|Africa|Australia|Pacific)/[A-Za-z_]+$'
order by name limit 1 \gset
select name as day_zone from pg_timezone_names
where extract(hour from now() at time zone name) between 11 and 15 and name ~ '^(America|Europe|Asia|Africa|Australia|Pacific)/[A-Za-z_]+$'
order by name limit 1 \gset
update workspaces set automation_enabled = false where id in (:'w1', :'w2');
insert into workspaces (name, quiet_hours_start, quiet_hours_end) values ('Claims', '00:00', '00:00') returning id as w3 \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'w3', 'sms', '+15557778003', 'connected', 100, true);
insert into contacts (workspace_id, phone, timezone) values (:'w3', '+14155558001', :'night_zone') returning id as sleeper \gset
insert into contacts (workspace_id, phone, timezone) values (:'w3', '+14155558002', :'day_zone') returning id as waker \gset
insert into messages (workspace_id, contact_id, body, send_at, status, category) values
  (:'w3', :'sleeper', 'offer at night', now() - interval '1 minute', 'queued', 'marketing'),
  (:'w3', :'sleeper', 'code at night', now() - interval '1 minute', 'queued', 'transactional'),
  (:'w3', :'waker', 'offer by day', now() - interval '1 minute', 'queued', 'marketing');
select tests.authenticate_as_service_role();
create temp table claimed as select * from herald.claim_messages(100);
select tests.clear_authentication();
select results_eq('select m.body from claimed c join messages m on m.id = c.message_id order by m.body',
  $$ values ('code at night'), ('offer by day') $$, 'the claim takes the code and the daytime offer');
select results_eq($$ select status::text, send_at > now() from messages where body = 'offer at night' $$,
  $$ values ('scheduled', true) $$, 'and defers the offer to a contact for whom it is night');

-- Claimed by day; the contact moves to a zone where it is night before the slot comes.
update contacts set timezone = :'night_zone' where id = :'waker';
select id as offer from messages where body = 'offer by day' \gset
select tests.authenticate_as_service_role();
select results_eq(format($$ select verdict, reason from herald.confirm_send(array[%L::uuid], array[1]) $$, :'offer'),
  $$ values ('deferred'::text, 'quiet_hours'::text) $$, 'the confirmation defers it by the legal hours');
select tests.clear_authentication();
select is((select status::text from messages where id = :'offer'), 'scheduled', 'back to scheduled');

-- A STOP between the claim and the call cancels, as before; an expired deadline too.
select id as code from messages where body = 'code at night' \gset
update messages set created_at = now() - interval '1 hour', expires_at = now() - interval '1 second' where id = :'code';
select tests.authenticate_as_service_role();
select results_eq(format($$ select verdict, reason from herald.confirm_send(array[%L::uuid], array[1]) $$, :'code'),
  $$ values ('cancelled'::text, 'expired'::text) $$, 'a deadline reached while it waited for its slot cancels it');
select tests.clear_authentication();
select is((select count(*)::int from message_attempts where message_id = :'code'), 0, 'its attempt is not spent');

-- The batch function on its own, as the service.
select tests.authenticate_as_service_role();
select lives_ok(format($$ select * from herald.apply_send_rules(array[%L::uuid], now(), false) $$, :'offer'), 'the service may apply the rules');
select tests.clear_authentication();

select * from finish();
rollback;
