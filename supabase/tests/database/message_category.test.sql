-- Message category (…_message_category.sql): every message is transactional or marketing, decided
-- where the row is made. A message that names none is transactional when it reminds of an
-- appointment and marketing otherwise (herald.messages_default_category); one that names its
-- category keeps it. The producers are real: schedule_message as a member, enroll_contact for a
-- sequence step.
begin;
select plan(7);

select tests.workspace_of('mae', 'Category Co') as ws \gset
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws', 'sms', '+15005550006', 'connected', true);
insert into contacts (workspace_id, phone) values (:'ws', '+14155552001') returning id as c \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'c', 'Cleaning', now() + interval '2 days')
returning id as appt \gset
insert into sequences (workspace_id, name, status) values (:'ws', 'Drip', 'active') returning id as seq \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values (:'ws', :'seq', 1, '1 hour', 'Hi');
insert into campaigns (workspace_id, name) values (:'ws', 'Spring') returning id as camp \gset

select has_type('public', 'message_category', 'the category is one enum, shared by the column and the generated types');

/** Section - what producers get when they name none */
select schedule_message(:'c', 'Your order shipped') as plain \gset
select schedule_message(:'c', 'See you tomorrow', appointment_id => :'appt') as reminder \gset
select enroll_contact(:'seq', :'c') as enrollment \gset
select is((select category::text from messages where id = :'plain'), 'marketing',
  'a message with nothing to say otherwise is marketing: the stricter rules apply');
select is((select category::text from messages where id = :'reminder'), 'transactional',
  'an appointment reminder is transactional');
select is((select category::text from messages where enrollment_id = :'enrollment'), 'marketing',
  'a sequence step is marketing');

/** Section - a category named by the producer is kept */
select tests.clear_authentication();
insert into messages (workspace_id, contact_id, body, campaign_id) values (:'ws', :'c', 'Spring sale', :'camp') returning id as campaign_msg \gset
insert into messages (workspace_id, contact_id, body, category) values (:'ws', :'c', 'Your code is 123456', 'transactional')
returning id as code_msg \gset
insert into messages (workspace_id, contact_id, body, appointment_id, category) values (:'ws', :'c', 'Add a whitening?', :'appt', 'marketing')
returning id as upsell \gset
select results_eq(format($$ select category::text from messages where id in (%L, %L, %L) order by body $$, :'campaign_msg', :'code_msg', :'upsell'),
  $$ values ('marketing'), ('marketing'), ('transactional') $$,
  'a campaign message is marketing; a one-time code named transactional and an upsell named marketing keep what they say');
select throws_ok(format($$ insert into messages (workspace_id, contact_id, body, category) values (%L, %L, 'x', 'promotional') $$, :'ws', :'c'),
  '22P02', null, 'a category outside the two is refused');
select col_not_null('public', 'messages', 'category', 'no message is without one');

select * from finish();
rollback;
