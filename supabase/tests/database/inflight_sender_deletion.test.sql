-- A sender deleted while one of its messages is being sent: the message still finishes (or is
-- cancelled with sender_deleted when it provably never reached the provider), and no single row
-- can stop the reaper or record_send_result for every other message.
begin;
select plan(8);
-- The messages below are about claiming, not the law: transactional, so the legal hours for
-- marketing (tested with fixed clocks in send_rules) do not make this file depend on the hour.
-- Rolled back with the rest of the file.
alter table public.messages alter column category set default 'transactional';
update workspaces set automation_enabled = false;

select tests.create_user('isd_owner');
select tests.authenticate_as('isd_owner');
select create_workspace('Loses its sender') as wa \gset
select tests.clear_authentication();
insert into workspaces (name, quiet_hours_start, quiet_hours_end) values ('Bystander', '00:00', '00:00') returning id as wb \gset
update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00' where id = :'wa';
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'wa', 'sms', '+15557774001', 'connected', 100, true) returning id as sa \gset
insert into senders (workspace_id, channel, phone_number, status, mps, is_default) values (:'wb', 'sms', '+15557774002', 'connected', 100, true);
insert into contacts (workspace_id, phone) values (:'wa', '+14157774001') returning id as ca \gset
insert into contacts (workspace_id, phone) values (:'wb', '+14157774002') returning id as cb \gset
insert into messages (workspace_id, contact_id, body, send_at, status) values (:'wa', :'ca', 'reaped', now() - interval '1 minute', 'queued') returning id as m_reaped \gset
insert into messages (workspace_id, contact_id, body, send_at, status) values (:'wa', :'ca', 'not sent', now() - interval '1 minute', 'queued') returning id as m_unsent \gset
insert into messages (workspace_id, contact_id, body, send_at, status) values (:'wa', :'ca', 'sent', now() - interval '1 minute', 'queued') returning id as m_sent \gset
insert into messages (workspace_id, contact_id, body, send_at, status) values (:'wb', :'cb', 'elsewhere', now() - interval '1 minute', 'queued') returning id as m_other \gset
select is((select count(*)::int from herald.claim_messages(100)), 4, 'all four are claimed');

-- The sender goes while its messages are in flight (herald.senders_rebind_inflight: no default sender
-- to re-bind them to); two leases expire (their dispatcher died).
select tests.authenticate_as('isd_owner');
delete from senders where id = :'sa';
select tests.clear_authentication();
update messages set lease_expires_at = now() - interval '1 second' where id in (:'m_reaped', :'m_other');

select lives_ok('select herald.reap_expired_leases()', 'the next reaper run raises nothing');
select is((select status::text from messages where id = :'m_other'), 'queued', 'and reaps the other workspace''s expired lease in the same run');
select results_eq(format($$ select status::text, cancel_reason::text from messages where id = %L $$, :'m_reaped'),
  $$ values ('cancelled', 'sender_deleted') $$, 'the orphaned one, never confirmed for sending, is cancelled with sender_deleted');

-- herald.messages_bind_sender cancels a message back from the provider with no sender to keep.
select lives_ok(format($$ select herald.record_send_result(%L, 1, 'not_sent', null, null, 20003, 'credentials') $$, :'m_unsent'),
  'a not-sent answer for a message whose sender is gone is recorded');
select results_eq(format($$ select status::text, cancel_reason::text from messages where id = %L $$, :'m_unsent'),
  $$ values ('cancelled', 'sender_deleted') $$, 'and cancels it: nothing could send it');
select lives_ok(format($$ select herald.record_send_result(%L, 1, 'sent', %L, 'queued') $$, :'m_sent', 'SM' || repeat('c', 32)),
  'a sent answer for it is recorded');
select is((select status::text from messages where id = :'m_sent'), 'sent', 'as sent');

select * from finish();
rollback;
