-- Per-contact daily caps (…_contact_caps.sql): herald.contact_cap_next_time counts a contact's
-- marketing messages on its local day across channels, sequences and campaigns (queued, sending,
-- sent today; transactional ones never), and once the cap is reached answers the start of the
-- next day's allowed window. herald.deferral_reasons is the list queue_metrics reports, with
-- frequency_cap. Fixed clocks throughout.
begin;
select plan(13);

select tests.workspace_of('cap', 'Cap Co') as ws \gset
update workspaces set timezone = 'America/New_York' where id = :'ws';
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws', 'sms', '+15005550006', 'connected', true),
  (:'ws', 'whatsapp', '+15005550007', 'connected', true);
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+12125550201', 'Ann') returning id as ann \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+17755550202', 'Nev') returning id as nev \gset
insert into sequences (workspace_id, name, status) values (:'ws', 'One', 'active'), (:'ws', 'Two', 'active');
insert into sequence_steps (workspace_id, sequence_id, position, delay, body)
select :'ws', s.id, 1, '0', 'Step of ' || s.name from sequences s where s.workspace_id = :'ws';
select enroll_contact(s.id, :'ann') from sequences s where s.workspace_id = :'ws';
insert into campaigns (workspace_id, name) values (:'ws', 'Sale') returning id as camp \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'ann', 'Visit', '2026-07-02 10:00 America/New_York')
returning id as appt \gset
select schedule_message(:'ann', 'See you tomorrow', appointment_id => :'appt') as reminder \gset
select tests.clear_authentication();
insert into messages (workspace_id, contact_id, channel, body, campaign_id) values (:'ws', :'ann', 'whatsapp', 'Sale!', :'camp') returning id as camp_msg \gset
select m.id as one_msg from messages m join sequence_steps s on s.id = m.step_id where m.contact_id = :'ann' and s.body = 'Step of One' \gset
select m.id as two_msg from messages m join sequence_steps s on s.id = m.step_id where m.contact_id = :'ann' and s.body = 'Step of Two' \gset
create function pg_temp.cap_next(p_contact uuid, p_at timestamptz, p_pending integer default 0) returns timestamptz
language sql as $$ select herald.contact_cap_next_time(c, p_at, p_pending) from public.contacts c where c.id = p_contact $$;

select is(pg_temp.cap_next(:'ann', '2026-07-01 15:00 America/New_York'), null, 'without a cap there is always room');

update workspaces set contact_daily_cap = 3 where id = :'ws';
select tests.authenticate_as_service_role();
select tests.mark_sent(array[:'one_msg']::uuid[], '2026-07-01 09:00 America/New_York');
select tests.mark_sent(array[:'camp_msg']::uuid[], '2026-07-01 10:00 America/New_York');
select tests.mark_sent(array[:'reminder']::uuid[], '2026-07-01 11:00 America/New_York');
select tests.clear_authentication();
select is(pg_temp.cap_next(:'ann', '2026-07-01 15:00 America/New_York'), null,
  'a sequence step and a campaign message sent today (SMS and WhatsApp) leave room for a third; the reminder is not counted');
select is(pg_temp.cap_next(:'ann', '2026-07-01 15:00 America/New_York', 1), '2026-07-02 08:00 America/New_York'::timestamptz,
  'with one more of the same batch before it, the next waits for the next day''s window');
update messages set status = 'queued' where id = :'two_msg';
select is(pg_temp.cap_next(:'ann', '2026-07-01 15:00 America/New_York'), '2026-07-02 08:00 America/New_York'::timestamptz,
  'a step of the second sequence already queued counts too: the cap is reached across two sequences and a campaign');
select is(pg_temp.cap_next(:'ann', '2026-07-02 07:00 America/New_York'), null,
  'the next local day starts afresh (the queued one still counts: one of three)');
select is(pg_temp.cap_next(:'ann', '2026-07-01 23:59 America/New_York', 1), '2026-07-02 08:00 America/New_York'::timestamptz,
  'a minute before local midnight is still the same day');

update workspaces set contact_daily_cap = 1 where id = :'ws';
select tests.authenticate_as_service_role();
insert into messages (workspace_id, contact_id, body, send_at) values (:'ws', :'nev', 'Hi', '2026-07-01 09:00 America/Los_Angeles') returning id as nev_msg \gset
select tests.mark_sent(array[:'nev_msg']::uuid[], '2026-07-01 09:00 America/Los_Angeles');
select tests.clear_authentication();
select is(pg_temp.cap_next(:'nev', '2026-07-01 12:00 America/Los_Angeles'), '2026-07-02 08:00 America/Los_Angeles'::timestamptz,
  'a number spanning two zones waits for the next day''s window in both (08:00 Los Angeles, 09:00 Boise)');

/** Section - cheap enough to ask per message */
select has_index('public', 'messages', 'messages_contact_marketing_idx', 'an index keeps the count to the contact''s marketing messages');
select tests.authenticate_as('cap');
select throws_ok(format($$ select herald.contact_cap_next_time(c, now()) from contacts c where id = %L $$, :'ann'), '42501', null,
  'members cannot call it: it is the queue''s');

/** Section - the ledger reason */
select tests.clear_authentication();
select ok('frequency_cap' = any (herald.deferral_reasons()), 'herald.deferral_reasons: frequency_cap is a deferral reason');
select set_config('herald.reason', 'frequency_cap', true);
update messages set send_at = '2026-07-02 08:00 America/New_York' where id = :'nev_msg';
update messages set status = 'scheduled', send_at = '2026-07-02 08:00 America/New_York' where id = :'two_msg';
select set_config('herald.reason', '', true);
select is((select count(*)::int from message_events where message_id = :'two_msg' and reason = 'frequency_cap'), 1,
  'a deferral written with that reason is in the ledger');
select tests.authenticate_as('cap');
select ok((select bool_or(deferred_by_reason ? 'frequency_cap') from queue_metrics where workspace_id = :'ws'),
  'and queue_metrics reports it among the deferrals');
select col_is_null('public', 'workspaces', 'contact_daily_cap', 'no cap unless a workspace sets one');

select * from finish();
rollback;
