-- Deleting what is not a contact: senders (seed 001), sequences, appointments, campaigns and
-- whole workspaces, and the two housekeeping jobs. Each builds its situation as real members
-- (erin owns the workspace, finn administers it, gus is an agent) and proves the outcome row by row.
begin;
select plan(59);

select tests.create_user('erin');
select tests.create_user('finn');
select tests.create_user('gus');
select tests.create_user('hal');
select tests.get_user_id('erin') as erin, tests.get_user_id('finn') as finn, tests.get_user_id('gus') as gus,
       tests.get_user_id('hal') as hal \gset

select tests.authenticate_as('erin');
select create_workspace('Entities Co') as ws \gset
insert into workspace_members (workspace_id, user_id, role) values (:'ws', :'finn', 'admin'), (:'ws', :'gus', 'agent');
insert into contacts (workspace_id, phone, first_name) values
  (:'ws', '+14155550201', 'Ann'), (:'ws', '+14155550202', 'Ben'), (:'ws', '+14155550203', 'Cat'),
  (:'ws', '+14155550204', 'Dan'), (:'ws', '+14155550205', 'Eve'), (:'ws', '+14155550206', 'Fay');
select id as c1 from contacts where phone = '+14155550201' \gset
select id as c2 from contacts where phone = '+14155550202' \gset
select id as c3 from contacts where phone = '+14155550203' \gset
select id as c4 from contacts where phone = '+14155550204' \gset
select id as c5 from contacts where phone = '+14155550205' \gset
select id as c6 from contacts where phone = '+14155550206' \gset

/** Section - senders: cascade to groups and campaign links, re-bind or cancel pending messages */
select tests.authenticate_as('finn');
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'ws', 'sms', '+15005550006', 'connected', true) returning id as s_default \gset
insert into senders (workspace_id, channel, status) values (:'ws', 'sms', 'disconnected') returning id as s_sms \gset
insert into senders (workspace_id, channel, status) values (:'ws', 'whatsapp', 'qr_pending') returning id as s_wa \gset
insert into senders (workspace_id, channel, phone_number, status)
values (:'ws', 'whatsapp', '+15005550007', 'connected') returning id as s_wa2 \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id, name) values
  (:'ws', :'s_wa', '120363000000000001@g.us', 'Group one'), (:'ws', :'s_wa', '120363000000000002@g.us', 'Group two'),
  (:'ws', :'s_wa', '120363000000000003@g.us', 'Group three'), (:'ws', :'s_wa2', '120363000000000004@g.us', 'Other');
insert into campaigns (workspace_id, name, status) values (:'ws', 'Launch', 'active') returning id as k1 \gset
insert into campaign_groups (workspace_id, campaign_id, group_id)
select :'ws', :'k1', id from whatsapp_groups where external_id in ('120363000000000001@g.us', '120363000000000002@g.us', '120363000000000004@g.us');

select schedule_message(:'c1', 'sms one', now() + interval '1 hour') as m_sms1 \gset
select schedule_message(:'c1', 'sms two', now() + interval '2 hours') as m_sms2 \gset
select schedule_message(:'c1', 'sms queued') as m_smsq \gset
select schedule_message(:'c1', 'sms sent') as m_smssent \gset
select schedule_message(:'c1', 'wa one', now() + interval '1 hour', 'whatsapp') as m_wa1 \gset
select schedule_message(:'c1', 'wa sent', now(), 'whatsapp') as m_wasent \gset
select tests.authenticate_as_service_role();
update messages set sender_id = :'s_sms' where id in (:'m_sms1', :'m_sms2', :'m_smsq', :'m_smssent');
update messages set sender_id = :'s_wa' where id in (:'m_wa1', :'m_wasent');
update messages set status = 'queued' where id in (:'m_smsq', :'m_smssent', :'m_wasent');
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id in (:'m_smssent', :'m_wasent');
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where id in (:'m_smssent', :'m_wasent');

select tests.authenticate_as('finn');
select lives_ok(format($$ delete from senders where id = %L $$, :'s_wa'),
  'a WhatsApp sender with groups linked to a campaign is deleted without error (seed 001)');
select tests.clear_authentication();
select is((select count(*)::int from whatsapp_groups where sender_id = :'s_wa'), 0, 'its groups are gone');
select results_eq(format($$ select g.external_id from campaign_groups cg join whatsapp_groups g on g.id = cg.group_id
                            where cg.campaign_id = %L $$, :'k1'),
  $$ values ('120363000000000004@g.us'::text) $$,
  'its campaign links are gone, the other sender''s link stays');
select results_eq(format($$ select status::text, cancel_reason::text, sender_id from messages where id = %L $$, :'m_wa1'),
  $$ values ('cancelled', 'sender_deleted', null::uuid) $$,
  'with no default WhatsApp sender its pending message is cancelled (sender_deleted)');
select results_eq(format($$ select status::text, sender_id from messages where id = %L $$, :'m_wasent'),
  $$ values ('sent', null::uuid) $$, 'its sent message stays, unbound');
select results_eq(
  format($$ select entity, mode, actor, counts -> 'cancelled' ->> 'messages', counts -> 'deleted' ->> 'public.whatsapp_groups',
                   counts -> 'deleted' ->> 'public.campaign_groups', counts -> 'rebound' ->> 'messages'
            from deletion_log where entity_id = %L $$, :'s_wa'),
  format($$ values ('sender'::text, 'hard'::text, %L::text, '1'::text, '3'::text, '2'::text, '0'::text) $$, :'finn'),
  'one deletion_log row for the sender (its groups are not logged separately)');

select tests.authenticate_as('finn');
select lives_ok(format($$ delete from senders where id = %L $$, :'s_sms'), 'an SMS sender is deleted');
select tests.clear_authentication();
select results_eq(
  format($$ select id, status::text, sender_id from messages where id in (%L, %L, %L) order by id $$, :'m_sms1', :'m_sms2', :'m_smsq'),
  format($$ select * from (values (%L::uuid, 'scheduled', %L::uuid), (%L, 'scheduled', %L), (%L, 'queued', %L)) v order by 1 $$,
         :'m_sms1', :'s_default', :'m_sms2', :'s_default', :'m_smsq', :'s_default'),
  'its pending messages are re-bound to the default SMS sender, status unchanged');
select results_eq(format($$ select status::text, sender_id from messages where id = %L $$, :'m_smssent'),
  $$ values ('sent', null::uuid) $$, 'its sent message stays, unbound');
select is((select counts -> 'rebound' from deletion_log where entity_id = :'s_sms'), '{"messages": 3}'::jsonb,
  'the deletion_log row counts the re-bound messages');

select tests.authenticate_as('finn');
select lives_ok(format($$ delete from senders where id = %L $$, :'s_default'), 'the default sender itself is deleted');
select tests.clear_authentication();
select results_eq(
  format($$ select status::text, cancel_reason::text, count(*)::int from messages where id in (%L, %L, %L) group by 1, 2 $$,
         :'m_sms1', :'m_sms2', :'m_smsq'),
  $$ values ('cancelled', 'sender_deleted', 3) $$,
  'with no other default its pending messages are cancelled (sender_deleted)');

/** Section - sequences: archive and delete stop enrollments; sent history stays */
select tests.authenticate_as('finn');
-- a default sender again, for the messages queued below (a queued message has a sender)
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws', 'sms', '+15005550016', 'connected', true);
insert into sequences (workspace_id, name, status) values (:'ws', 'Archive me', 'active') returning id as seq_a \gset
insert into sequences (workspace_id, name, status) values (:'ws', 'Delete me', 'active') returning id as seq_d \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
  (:'ws', :'seq_a', 1, '0', 'A1'), (:'ws', :'seq_a', 2, '1 day', 'A2'),
  (:'ws', :'seq_d', 1, '0', 'D1'), (:'ws', :'seq_d', 2, '1 day', 'D2');
insert into queue_settings (workspace_id, default_sequence_id) values (:'ws', :'seq_d');
select enroll_contact(:'seq_a', :'c2') as ea2 \gset
select enroll_contact(:'seq_a', :'c3') as ea3 \gset
select enroll_contact(:'seq_d', :'c2') as ed2 \gset
select enroll_contact(:'seq_d', :'c3') as ed3 \gset
-- c2's first step of each sequence goes out, which schedules the second
select tests.authenticate_as_service_role();
update messages set status = 'queued' where contact_id = :'c2' and enrollment_id is not null;
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where contact_id = :'c2' and enrollment_id is not null;
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where contact_id = :'c2' and enrollment_id is not null;
select tests.clear_authentication();
select id as sent_a from messages where enrollment_id = :'ea2' and status = 'sent' \gset
select id as sent_d from messages where enrollment_id = :'ed2' and status = 'sent' \gset
create temp table pending_a as select id from messages where enrollment_id in (:'ea2', :'ea3') and status = 'scheduled';
create temp table pending_d as select id from messages where enrollment_id in (:'ed2', :'ed3') and status = 'scheduled';
select is((select count(*)::int from pending_a) + (select count(*)::int from pending_d), 4,
  'each sequence has two pending steps (c2''s second, c3''s first)');

select tests.authenticate_as('finn');
update sequences set status = 'archived' where id = :'seq_a';
select tests.clear_authentication();
select results_eq(
  format($$ select status::text, stopped_reason from sequence_enrollments where sequence_id = %L group by 1, 2 $$, :'seq_a'),
  $$ values ('cancelled', 'sequence_stopped') $$,
  'archiving a sequence stops its active enrollments (sequence_stopped)');
select results_eq(
  $$ select status::text, cancel_reason::text, count(*)::int from messages where id in (select id from pending_a) group by 1, 2 $$,
  $$ values ('cancelled', 'sequence_stopped', 2) $$,
  'and cancels their pending messages');
select results_eq(format($$ select status::text, enrollment_id from messages where id = %L $$, :'sent_a'),
  format($$ values ('sent'::text, %L::uuid) $$, :'ea2'), 'the sent step stays as it was');

create temp table seq_d_messages as
  select id from messages where enrollment_id in (:'ed2', :'ed3');
select tests.authenticate_as('finn');
select lives_ok(format($$ delete from sequences where id = %L $$, :'seq_d'), 'an admin deletes a sequence');
select tests.clear_authentication();
select is((select count(*)::int from sequence_enrollments where sequence_id = :'seq_d')
          + (select count(*)::int from sequence_steps where sequence_id = :'seq_d'), 0,
  'its steps and enrollments are gone');
select results_eq(
  $$ select status::text, cancel_reason::text, step_id, enrollment_id, count(*)::int from messages
     where id in (select id from pending_d) group by 1, 2, 3, 4 $$,
  $$ values ('cancelled', 'sequence_stopped', null::uuid, null::uuid, 2) $$,
  'its pending messages are cancelled (sequence_stopped) and unlinked');
select results_eq(format($$ select status::text, step_id, enrollment_id from messages where id = %L $$, :'sent_d'),
  $$ values ('sent', null::uuid, null::uuid) $$,
  'its sent history stays, with step_id and enrollment_id set null');
select is((select count(*)::int from messages where id in (select id from seq_d_messages)), 3,
  'no message of the sequence was deleted');
select results_eq(
  format($$ select counts -> 'cancelled', (counts -> 'deleted' ->> 'public.sequence_enrollments')::int,
                   (counts -> 'set_null' ->> 'public.queue_settings.default_sequence_id')::int
            from deletion_log where entity_id = %L $$, :'seq_d'),
  $$ values ('{"messages": 2, "sequence_enrollments": 2}'::jsonb, 2, 1) $$,
  'the deletion_log row counts the stopped enrollments, cancelled messages and the cleared queue setting');
select is((select default_sequence_id from queue_settings where workspace_id = :'ws'), null,
  'the queue''s default sequence is cleared');

/** Section - appointments: moved, cancelled, completed, deleted */
select tests.authenticate_as('gus');
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'ws', :'c4', 'Moved', now() + interval '3 days') returning id as ap_move \gset
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'ws', :'c4', 'Cancelled', now() + interval '3 days') returning id as ap_cancel \gset
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'ws', :'c4', 'Completed', now() + interval '3 days') returning id as ap_done \gset
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'ws', :'c4', 'Deleted', now() + interval '3 days') returning id as ap_del \gset
select schedule_message(:'c4', 'in two days', now() + interval '1 day', appointment_id => :'ap_move') as rm1 \gset
select schedule_message(:'c4', 'due now', now() - interval '5 minutes', appointment_id => :'ap_move') as rm2 \gset
select schedule_message(:'c4', 'already sent', now() - interval '1 hour', appointment_id => :'ap_move') as rm3 \gset
select schedule_message(:'c4', 'cancel me', now() + interval '1 day', appointment_id => :'ap_cancel') as rc1 \gset
select schedule_message(:'c4', 'cancel me too', now() - interval '1 minute', appointment_id => :'ap_cancel') as rc2 \gset
select schedule_message(:'c4', 'done', now() + interval '1 day', appointment_id => :'ap_done') as rd1 \gset
select schedule_message(:'c4', 'gone', now() + interval '1 day', appointment_id => :'ap_del') as rx1 \gset
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id in (:'rm2', :'rm3', :'rc2');
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'rm3';
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where id = :'rm3';
select tests.clear_authentication();
create temp table before_move as select id, send_at, status from messages where appointment_id = :'ap_move';

select tests.authenticate_as('gus');
update appointments set starts_at = starts_at + interval '2 days 3 hours' where id = :'ap_move';
select tests.clear_authentication();
select results_eq(
  format($$ select m.id, m.send_at - b.send_at, m.status::text from messages m join before_move b on b.id = m.id
            where m.id in (%L, %L) order by m.id $$, :'rm1', :'rm2'),
  format($$ select * from (values (%L::uuid, interval '2 days 3 hours', 'scheduled'), (%L::uuid, interval '2 days 3 hours', 'scheduled')) v order by 1 $$,
         :'rm1', :'rm2'),
  'moving an appointment moves its pending reminders by the same amount; the queued one, now in the future, is scheduled again');
select results_eq(format($$ select m.send_at = b.send_at, m.status::text from messages m join before_move b on b.id = m.id where m.id = %L $$, :'rm3'),
  $$ values (true, 'sent') $$, 'a sent reminder does not move');
select results_eq(
  format($$ select message_id, from_status::text, to_status::text, reason, actor,
                   (detail ->> 'send_at_to')::timestamptz - (detail ->> 'send_at_from')::timestamptz
            from message_events where message_id in (%L, %L) and reason = 'appointment_moved' order by message_id $$, :'rm1', :'rm2'),
  format($$ select * from (values (%L::uuid, 'scheduled', 'scheduled', 'appointment_moved', %L, interval '2 days 3 hours'),
                                  (%L::uuid, 'queued', 'scheduled', 'appointment_moved', %L, interval '2 days 3 hours')) v order by 1 $$,
         :'rm1', :'gus', :'rm2', :'gus'),
  'the ledger records each move with its reason, actor and both times');

select tests.authenticate_as('gus');
update appointments set status = 'cancelled' where id = :'ap_cancel';
update appointments set status = 'completed' where id = :'ap_done';
select tests.clear_authentication();
select results_eq(
  format($$ select status::text, cancel_reason::text, count(*)::int from messages where appointment_id = %L group by 1, 2 $$, :'ap_cancel'),
  $$ values ('cancelled', 'appointment_cancelled', 2) $$,
  'cancelling an appointment cancels its scheduled and queued reminders (appointment_cancelled)');
select results_eq(format($$ select status::text, cancel_reason::text from messages where id = %L $$, :'rd1'),
  $$ values ('cancelled', 'appointment_completed') $$,
  'completing an appointment cancels its reminders (appointment_completed)');

select tests.authenticate_as('gus');
select lives_ok(format($$ delete from appointments where id = %L $$, :'ap_del'), 'an agent deletes an appointment');
select tests.clear_authentication();
select results_eq(format($$ select status::text, cancel_reason::text, appointment_id from messages where id = %L $$, :'rx1'),
  $$ values ('cancelled', 'appointment_cancelled', null::uuid) $$,
  'deleting an appointment cancels its reminders (appointment_cancelled) and unlinks them');
select results_eq(format($$ select entity, actor, counts -> 'cancelled' ->> 'messages' from deletion_log where entity_id = %L $$, :'ap_del'),
  format($$ values ('appointment'::text, %L::text, '1'::text) $$, :'gus'), 'and is logged');

/** Section - campaigns */
select tests.authenticate_as('gus');
select schedule_message(:'c5', 'promo one', now() + interval '1 day') as mk1 \gset
select schedule_message(:'c5', 'promo two', now()) as mk2 \gset
select schedule_message(:'c5', 'promo sent', now()) as mk3 \gset
select tests.authenticate_as_service_role();
update messages set campaign_id = :'k1' where id in (:'mk1', :'mk2', :'mk3');
update messages set status = 'queued' where id in (:'mk2', :'mk3');
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'mk3';
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where id = :'mk3';
select tests.authenticate_as('gus');
select is_empty(format($$ delete from campaigns where id = %L returning id $$, :'k1'), 'an agent cannot delete a campaign');
select tests.authenticate_as('finn');
select lives_ok(format($$ delete from campaigns where id = %L $$, :'k1'), 'an admin deletes the campaign');
select tests.clear_authentication();
select results_eq(
  format($$ select id, status::text, cancel_reason::text, campaign_id from messages where id in (%L, %L, %L) order by id $$,
         :'mk1', :'mk2', :'mk3'),
  format($$ select * from (values (%L::uuid, 'cancelled', 'campaign_deleted', null::uuid), (%L::uuid, 'cancelled', 'campaign_deleted', null::uuid),
                                  (%L::uuid, 'sent', null, null::uuid)) v order by 1 $$, :'mk1', :'mk2', :'mk3'),
  'its pending messages are cancelled (campaign_deleted), the sent one stays; all are unlinked');
select is((select count(*)::int from campaign_groups where campaign_id = :'k1'), 0, 'its group links are gone');
select results_eq(format($$ select entity, counts -> 'cancelled' ->> 'messages', counts -> 'deleted' ->> 'public.campaign_groups'
                            from deletion_log where entity_id = %L $$, :'k1'),
  $$ values ('campaign'::text, '2'::text, '1'::text) $$, 'and it is logged');

/** Section - cleanup_stale_senders */
select tests.authenticate_as('hal');
select create_workspace('Hal Co') as ws_hal \gset
insert into senders (workspace_id, channel, status, created_at)
values (:'ws_hal', 'whatsapp', 'disconnected', now() - interval '3 days') returning id as hal_stale \gset
select tests.clear_authentication();
insert into senders (workspace_id, channel, phone_number, status, created_at, last_seen_at) values
  (:'ws', 'whatsapp', null, 'qr_pending', now() - interval '2 days', null),
  (:'ws', 'whatsapp', null, 'connected', now() - interval '2 days', null),
  (:'ws', 'sms', '+15005550008', 'disconnected', now() - interval '2 days', null),
  (:'ws', 'whatsapp', null, 'connecting', now() - interval '1 hour', null),
  (:'ws', 'whatsapp', null, 'disconnected', now() - interval '5 days', now() - interval '1 hour');
select id as stale from senders where workspace_id = :'ws' and status = 'qr_pending' \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id) values (:'ws', :'stale', '120363000000000009@g.us');
insert into campaigns (workspace_id, name) values (:'ws', 'Stale campaign') returning id as k2 \gset
insert into campaign_groups (workspace_id, campaign_id, group_id)
select :'ws', :'k2', id from whatsapp_groups where sender_id = :'stale';
select tests.authenticate_as('gus');
select schedule_message(:'c6', 'via the stale sender', now() + interval '1 day', 'whatsapp') as m_stale \gset
select tests.authenticate_as_service_role();
update messages set sender_id = :'stale' where id = :'m_stale';

select tests.authenticate_as('gus');
select is(cleanup_stale_senders('1 day'), 0, 'an agent cleans up nothing');
select tests.authenticate_as('erin');
select throws_ok($$ select cleanup_stale_senders('-1 day') $$, '22023', null, 'a negative interval is refused');
select throws_ok($$ select cleanup_stale_senders(null) $$, '22023', null, 'a null interval is refused');
select is(cleanup_stale_senders('1 day'), 1, 'an owner removes the one stale sender of her workspace');
select tests.clear_authentication();
select results_eq(
  format($$ select status::text, phone_number, created_at < now() - interval '1 day', last_seen_at is not null
            from senders where workspace_id = %L and created_at < now() order by created_at, status $$, :'ws'),
  $$ values ('disconnected', null::text, true, true), ('connected', null, true, false), ('disconnected', '+15005550008', true, false),
            ('connecting', null, false, false) $$,
  'connected, numbered, recent and recently seen senders stay');
select is((select count(*)::int from senders where id = :'hal_stale'), 1, 'another workspace''s stale sender is untouched');
select is((select count(*)::int from whatsapp_groups where sender_id = :'stale')
          + (select count(*)::int from campaign_groups where campaign_id = :'k2'), 0,
  'the stale sender''s groups and campaign links went with it');
select results_eq(format($$ select status::text, cancel_reason::text from messages where id = %L $$, :'m_stale'),
  $$ values ('cancelled', 'sender_deleted') $$, 'and its pending message was cancelled (sender_deleted)');
select tests.authenticate_as_service_role();
select is(cleanup_stale_senders(), 1, 'the service role (cron) cleans up every workspace');
select tests.clear_authentication();
select is((select count(*)::int from senders where id = :'hal_stale'), 0, 'including the other workspace''s stale sender');

/** Section - workspace delete removes everything */
select tests.authenticate_as('hal');
insert into workspace_members (workspace_id, user_id, role) values (:'ws_hal', :'gus', 'admin');
insert into contacts (workspace_id, phone, first_name, last_name) values (:'ws_hal', '+14155550301', 'Ivy', 'Ng') returning id as h1 \gset
insert into contacts (workspace_id, phone) values (:'ws_hal', '+14155550302') returning id as h2 \gset
update contacts set opted_out_at = now() where id = :'h2';
insert into contact_tags (workspace_id, contact_id, tag) values (:'ws_hal', :'h1', 'lead');
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws_hal', :'h1', 'city', 'Oslo');
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'ws_hal', 'whatsapp', '+15005550009', 'connected', true) returning id as hs \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id) values (:'ws_hal', :'hs', '120363000000000010@g.us') returning id as hg \gset
insert into campaigns (workspace_id, name) values (:'ws_hal', 'Hal campaign') returning id as hk \gset
insert into campaign_groups (workspace_id, campaign_id, group_id) values (:'ws_hal', :'hk', :'hg');
insert into sequences (workspace_id, name, status) values (:'ws_hal', 'Hal seq', 'active') returning id as hseq \gset
insert into sequence_steps (workspace_id, sequence_id, position, body) values (:'ws_hal', :'hseq', 1, 'Hello {{first_name}}');
insert into queue_settings (workspace_id, default_sequence_id) values (:'ws_hal', :'hseq');
select enroll_contact(:'hseq', :'h1');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws_hal', :'h1', 'Visit', now() + interval '1 day') returning id as hap \gset
select schedule_message(:'h1', 'see you', now() + interval '1 hour', appointment_id => :'hap') as hm \gset
select tests.authenticate_as_service_role();
update messages set status = 'failed', failed_at = now(), last_error_code = 21211 where id = :'hm';
insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid, error_code)
values (:'ws_hal', :'hm', 1, 'SM00000000000000000000000000000301', 21211);
select tests.authenticate_as('hal');
insert into contacts (workspace_id, phone) values (:'ws_hal', '+14155550303') returning id as h3 \gset
select delete_contact(:'h3');
select tests.clear_authentication();

create temp table hal_before as
  select table_name, row_count from tests.workspace_digest(:'ws_hal');
select cmp_ok((select count(*)::int from hal_before where row_count > 0), '>=', 21,
  'the workspace to delete has rows in at least 21 tables');

select tests.authenticate_as('gus');
select is_empty(format($$ delete from workspaces where id = %L returning id $$, :'ws_hal'), 'an admin cannot delete the workspace');
select tests.authenticate_as('hal');
select preview_delete('workspace', :'ws_hal') as hal_preview \gset
select results_eq(format($$ delete from workspaces where id = %L returning id $$, :'ws_hal'),
  format($$ values (%L::uuid) $$, :'ws_hal'), 'its owner deletes the workspace');
select tests.clear_authentication();
-- Every table with a workspace_id is empty for it, except the columns documented to outlive it.
select is_empty(
  format($$ select d.table_name, d.row_count from tests.workspace_digest(%L) d
            where d.row_count > 0 and not exists (
              select 1 from pg_attribute a
              where a.attrelid = d.table_name::regclass and a.attname = 'workspace_id'
                and col_description(a.attrelid, a.attnum) ~* 'no foreign key') $$, :'ws_hal'),
  'no row of the workspace is left in any table');
select results_eq(
  $$ select format('%s.%s', n.nspname, c.relname) collate "default" from pg_class c join pg_namespace n on n.oid = c.relnamespace
     join pg_attribute a on a.attrelid = c.oid and a.attname = 'workspace_id'
     where n.nspname in ('public', 'herald') and c.relkind = 'r' and col_description(c.oid, a.attnum) ~* 'no foreign key'
     order by 1 $$,
  $$ values ('herald.provider_erasures'), ('public.deletion_log') $$,
  'only the deletion log and the provider erasure outbox outlive a workspace');
select results_eq(
  format($$ select entity, mode, actor, counts from deletion_log where workspace_id = %L and entity = 'workspace' $$, :'ws_hal'),
  format($$ values ('workspace'::text, 'hard'::text, %L::text,
            jsonb_build_object('cancelled', %L::jsonb -> 'cancel', 'deleted', %L::jsonb -> 'cascade', 'set_null', %L::jsonb -> 'set_null')) $$,
         :'hal', :'hal_preview', :'hal_preview', :'hal_preview'),
  'one deletion_log row for the workspace, with the counts preview_delete announced');
select results_eq(
  format($$ select (counts -> 'deleted' ->> 'public.contacts')::int, (counts -> 'deleted' ->> 'public.messages')::int,
                   (counts -> 'deleted' ->> 'public.workspace_members')::int, (counts -> 'deleted' ->> 'public.campaign_groups')::int
            from deletion_log where entity_id = %L $$, :'ws_hal'),
  format($$ select (select row_count::int from hal_before where table_name = 'public.contacts'),
                   (select row_count::int from hal_before where table_name = 'public.messages'), 2, 1 $$),
  'whose counts match the rows that were there');
select results_eq(format($$ select provider_sid, workspace_id from herald.provider_erasures where workspace_id = %L $$, :'ws_hal'),
  format($$ values ('SM00000000000000000000000000000301'::text, %L::uuid) $$, :'ws_hal'),
  'the provider''s copies are queued for erasure');

/** Section - purge of soft-deleted contacts past retention, and the cron jobs */
select tests.authenticate_as('erin');
insert into contacts (workspace_id, phone) values (:'ws', '+14155550401') returning id as p_old \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155550402') returning id as p_recent \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155550403') returning id as p_live \gset
select schedule_message(:'p_old', 'never sent', now() + interval '40 days') as p_msg \gset
update contacts set deleted_at = now() - interval '31 days' where id = :'p_old';
update contacts set deleted_at = now() - interval '5 days' where id = :'p_recent';
select tests.clear_authentication();
-- A member's soft delete takes the server's time; the retention period then passes.
update contacts set deleted_at = deleted_at - interval '31 days' where id = :'p_old';
update contacts set deleted_at = deleted_at - interval '5 days' where id = :'p_recent';
select is(herald.purge_deleted_contacts(), 1, 'the purge hard-deletes one contact');
select results_eq(format($$ select id from contacts where id in (%L, %L, %L) order by id $$, :'p_old', :'p_recent', :'p_live'),
  format($$ select unnest(array[%L::uuid, %L::uuid]) order by 1 $$, :'p_recent', :'p_live'),
  'only the one soft-deleted longer than the 30-day retention');
select results_eq(format($$ select mode, actor from deletion_log where entity_id = %L order by id $$, :'p_old'),
  format($$ values ('soft'::text, %L::text), ('hard', 'cron') $$, :'erin'), 'the purge is logged as cron''s hard delete');
select is((select count(*)::int from messages where id = :'p_msg'), 0, 'with its messages');
select results_eq(
  $$ select jobname::text collate "default", command from cron.job where jobname in ('herald-purge-deleted-contacts', 'herald-cleanup-stale-senders') order by jobname $$,
  $$ values ('herald-cleanup-stale-senders'::text, 'select public.cleanup_stale_senders()'::text),
            ('herald-purge-deleted-contacts', 'select herald.purge_deleted_contacts()') $$,
  'both housekeeping jobs are scheduled in pg_cron');

select * from finish();
rollback;
