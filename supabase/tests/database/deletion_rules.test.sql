-- The deletion and cancellation rules (…_deletion_rules.sql), enforced by triggers so that no
-- code path can skip them: a contact deleted, opted out or taken over has every future execution
-- cancelled in the same statement; a sender's delete re-binds or cancels its messages and its
-- groups go without error; sequences, appointments, campaigns and whole workspaces likewise.
-- Each situation is built as real members (erin owns the workspace, finn administers it, gus is
-- an agent) and the outcome is proved row by row. (The RPCs over these rules and preview_delete:
-- deletion_rpcs.test.sql; the housekeeping jobs: housekeeping.test.sql.)
begin;
select plan(77);

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
-- herald.senders_before_delete re-binds to herald.replacement_sender, else cancels; groups and
-- links go by cascade (both keys of campaign_groups are not null, so nothing is set null).
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
select tests.authenticate_as_service_role();
-- Bound to the WhatsApp sender below, as a bulk import would write them (schedule_message
-- refuses a channel with no default sender).
insert into messages (workspace_id, contact_id, channel, body, send_at)
values (:'ws', :'c1', 'whatsapp', 'wa one', now() + interval '1 hour') returning id as m_wa1 \gset
insert into messages (workspace_id, contact_id, channel, body, send_at)
values (:'ws', :'c1', 'whatsapp', 'wa sent', now()) returning id as m_wasent \gset
update messages set sender_id = :'s_sms' where id in (:'m_sms1', :'m_sms2', :'m_smsq', :'m_smssent');
update messages set sender_id = :'s_wa' where id in (:'m_wa1', :'m_wasent');
update messages set status = 'queued' where id in (:'m_smsq', :'m_smssent', :'m_wasent');
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id in (:'m_smssent', :'m_wasent');
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where id in (:'m_smssent', :'m_wasent');

select tests.authenticate_as('finn');
select lives_ok(format($$ delete from senders where id = %L $$, :'s_wa'),
  'a WhatsApp sender with groups linked to a campaign is deleted without error (no key sets a not-null column null)');
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
-- herald.sequences_after_update (archive) and herald.sequences_before_delete both run herald.stop_sequence.
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
-- herald.appointments_after_update moves or cancels reminders; herald.appointments_before_delete cancels them.
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
-- herald.campaigns_before_delete cancels the campaign's pending messages and logs the delete.
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

/** Section - contacts: the number's opt-out outlives a hard delete */
-- herald.contacts_before_delete keeps an opt-out as a suppression; herald.contacts_before_write
-- makes a number on the suppression list come back opted out.
select tests.authenticate_as('finn');
insert into sequences (workspace_id, name, status) values (:'ws', 'Welcome', 'active'), (:'ws', 'Nurture', 'active');
select id as seq1 from sequences where workspace_id = :'ws' and name = 'Welcome' \gset
select id as seq2 from sequences where workspace_id = :'ws' and name = 'Nurture' \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body)
select :'ws', s.id, p, make_interval(hours => p), 'Step ' || p || ' for {{first_name}}'
from sequences s cross join generate_series(1, 2) p where s.id in (:'seq1', :'seq2');
select tests.authenticate_as('gus');
-- imported already opted out: no suppression row exists until the hard delete writes one
insert into contacts (workspace_id, phone, first_name, opted_out_at)
values (:'ws', '+14155550102', 'Otto', now() - interval '1 day') returning id as c_out \gset
select is((select count(*)::int from suppressions where workspace_id = :'ws'), 0, 'no suppression before the hard delete');
select tests.authenticate_as('erin');
select lives_ok(format($$ select delete_contact(%L, true) $$, :'c_out'), 'the owner hard-deletes the opted-out contact');
select tests.clear_authentication();
select results_eq(
  format($$ select reason, phone_hash = herald.phone_hash(%L, '+14155550102') from suppressions where workspace_id = %L $$, :'ws', :'ws'),
  $$ values ('opted_out'::text, true) $$,
  'a suppressions row keeps the number, as a keyed hash');
select is_empty(
  $$ select t.table_name from tests.table_counts() t
     where (xpath('/row/n/text()', query_to_xml(
              format('select count(*) as n from %s r where r::text like ''%%4155550102%%''', t.table_name), false, true, '')))[1]::text::int > 0 $$,
  'the phone number appears in no table of public or herald (suppressions, deletion_log, ledger…)');

select tests.authenticate_as('gus');
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550102', 'Otto again') returning id as c_again \gset
select isnt((select opted_out_at from contacts where id = :'c_again'), null, 're-adding the number yields an opted-out contact');
select throws_ok(format($$ select schedule_message(%L, 'welcome!') $$, :'c_again'), '55000', null,
  'and schedule_message refuses it');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'seq2', :'c_again'), '55000', null,
  'and enroll_contact refuses it');

/** Section - contacts: opt-out and takeover cancel every future execution */
-- herald.contacts_after_update: in the same statement, with the reason, the ledger and the history.
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550103', 'Olga') returning id as c_opt \gset
select enroll_contact(:'seq1', :'c_opt') as e_opt \gset
select schedule_message(:'c_opt', 'one', now() + interval '1 day') as m_opt1 \gset
select schedule_message(:'c_opt', 'two', now() + interval '2 days') as m_opt2 \gset
update contacts set opted_out_at = now() where id = :'c_opt';

insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550104', 'Hugo') returning id as c_take \gset
select enroll_contact(:'seq2', :'c_take') as e_take \gset
select schedule_message(:'c_take', 'one', now() + interval '1 day') as m_take1 \gset
update contacts set controlled_by = 'human', assigned_to = auth.uid() where id = :'c_take';

select tests.clear_authentication();
select results_eq(
  format($$ select status::text, cancel_reason::text, count(*)::int from messages where contact_id = %L group by 1, 2 $$, :'c_opt'),
  $$ values ('cancelled', 'contact_opted_out', 3) $$,
  'an opt-out cancels every pending message (contact_opted_out)');
select results_eq(
  format($$ select status::text, stopped_reason from sequence_enrollments where contact_id = %L $$, :'c_opt'),
  $$ values ('cancelled', 'contact_opted_out') $$,
  'and its enrollment');
select results_eq(
  format($$ select distinct reason, actor from message_events where to_status = 'cancelled'
            and message_id in (select id from messages where contact_id = %L) $$, :'c_opt'),
  format($$ values ('contact_opted_out'::text, %L::text) $$, :'gus'),
  'the ledger says why and who');
select is((select count(*)::int from suppressions s where s.workspace_id = :'ws'
           and s.phone_hash = herald.phone_hash(:'ws', '+14155550103')), 1, 'the opt-out is on the suppression list');
select results_eq(format($$ select kind from contact_activities where contact_id = %L $$, :'c_opt'),
  $$ values ('opted_out'::text) $$, 'and in the activity history');
select is((select count(*)::int from deletion_log where entity_id = :'c_opt'), 0, 'an opt-out is not a deletion');
select results_eq(
  format($$ select status::text, cancel_reason::text, count(*)::int from messages where contact_id = %L group by 1, 2 $$, :'c_take'),
  $$ values ('cancelled', 'human_takeover', 2) $$,
  'a takeover cancels every pending message (human_takeover)');
select results_eq(
  format($$ select status::text, stopped_reason from sequence_enrollments where contact_id = %L $$, :'c_take'),
  $$ values ('cancelled', 'human_takeover') $$,
  'and its enrollment');
select results_eq(format($$ select kind, actor from contact_activities where contact_id = %L $$, :'c_take'),
  format($$ values ('taken_over'::text, %L::text) $$, :'gus'), 'the takeover is in the activity history');
select tests.authenticate_as('gus');
select throws_ok(format($$ select schedule_message(%L, 'hi') $$, :'c_take'), '55000', null,
  'schedule_message refuses a human-controlled contact');
select throws_ok(format($$ select enroll_contact(%L, %L) $$, :'seq1', :'c_take'), '55000', null,
  'enroll_contact refuses a human-controlled contact');
/** Section - an opt-out is the number's: a live twin of a soft-deleted contact opts out with it */
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550106', 'Old Tess') returning id as c_twin_old \gset
select delete_contact(:'c_twin_old') \gset
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550106', 'Tess') returning id as c_twin \gset
select schedule_message(:'c_twin', 'to the live twin', now() + interval '1 day') as m_twin \gset
-- e.g. a message to the old row was in flight when it was deleted, and Twilio answered 21610
select tests.authenticate_as_service_role();
update contacts set opted_out_at = now() where id = :'c_twin_old';
select tests.clear_authentication();
select results_eq(format($$ select c.opted_out_at is not null, m.status::text, m.cancel_reason::text
                            from contacts c join messages m on m.contact_id = c.id where m.id = %L $$, :'m_twin'),
  $$ values (true, 'cancelled', 'contact_opted_out') $$,
  'the live contact with the same number opts out too, and its pending message is cancelled');
-- It opts back in as a number too: START from it (apply_inbound sets herald.opt_in for its update
-- of the live contact) clears the old row's opt-out as well, or erasing the old row later would
-- put the number back on the suppression list under the contact that said START.
select tests.authenticate_as_service_role();
select set_config('herald.opt_in', 'on', true);
update contacts set opted_out_at = null where id = :'c_twin';
select set_config('herald.opt_in', '', true);
select tests.clear_authentication();
select results_eq(format($$ select id, opted_out_at is null from contacts where id in (%L, %L) order by first_name $$, :'c_twin_old', :'c_twin'),
  format($$ values (%L::uuid, true), (%L::uuid, true) $$, :'c_twin_old', :'c_twin'),
  'START from the number opts every row with it back in, the soft-deleted one included');
select tests.authenticate_as('gus');
select schedule_message(:'c_twin', 'welcome back', now() + interval '1 day') as m_back \gset
select tests.authenticate_as('erin');
select delete_contact(:'c_twin_old', true) \gset
select tests.clear_authentication();
select results_eq(format($$ select herald.is_suppressed(%L, '+14155550106'), (select status::text from messages where id = %L) $$, :'ws', :'m_back'),
  $$ values (false, 'scheduled') $$,
  'so erasing the old row does not suppress the number again: the message to the contact who said START stays scheduled');
select tests.authenticate_as('gus');

/** Section - a direct delete (not through the RPC) obeys the same rules (herald.contacts_before_delete) */
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550105', 'Dirk') returning id as c_direct \gset
select enroll_contact(:'seq1', :'c_direct') as e_direct \gset
select schedule_message(:'c_direct', 'direct one', now() + interval '1 day') as m_direct \gset
insert into appointments (workspace_id, contact_id, title, starts_at)
values (:'ws', :'c_direct', 'Call', now() + interval '2 days') returning id as appt_direct \gset
select schedule_message(:'c_direct', 'see you', now() + interval '1 day', appointment_id => :'appt_direct') as r_direct \gset
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id = :'m_direct';
update messages set status = 'sending', lease_expires_at = now() + interval '1 minute' where id = :'m_direct';
insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid)
values (:'ws', :'m_direct', 1, 'SM00000000000000000000000000000105');
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where id = :'m_direct';
select tests.clear_authentication();
create temp table direct_messages as select id from messages where contact_id = :'c_direct';

select tests.authenticate_as('erin');
select results_eq(format($$ delete from contacts where id = %L returning id $$, :'c_direct'),
  format($$ values (%L::uuid) $$, :'c_direct'), 'an owner deletes a contact directly');
select tests.clear_authentication();
select is((select count(*)::int from messages where id in (select id from direct_messages))
          + (select count(*)::int from message_events where message_id in (select id from direct_messages))
          + (select count(*)::int from message_attempts where message_id in (select id from direct_messages))
          + (select count(*)::int from appointments where contact_id = :'c_direct')
          + (select count(*)::int from sequence_enrollments where contact_id = :'c_direct'), 0,
  'its messages, ledger, attempts, appointment and enrollment are gone');
select results_eq(
  format($$ select mode, actor, counts -> 'cancelled', (counts -> 'deleted' ->> 'public.messages')::int
            from deletion_log where entity_id = %L $$, :'c_direct'),
  format($$ values ('hard'::text, %L::text, '{"messages": 2, "sequence_enrollments": 1}'::jsonb, 3) $$, :'erin'),
  'the direct delete is logged like the RPC''s: cancelled first, then erased');
select is((select count(*)::int from herald.provider_erasures where provider_sid = 'SM00000000000000000000000000000105'
           and deletion_id = (select id from deletion_log where entity_id = :'c_direct')), 1,
  'and queues the provider erasure');

select is_empty(
  $$ select m.id from messages m join contacts c on c.id = m.contact_id
     where m.status in ('scheduled', 'queued')
       and (c.deleted_at is not null or c.opted_out_at is not null or c.controlled_by = 'human') $$,
  'no pending message belongs to a deleted, opted-out or human-controlled contact');

/** Section - only the contact lifts an opt-out (herald.contacts_guard_opt_in) */
select tests.clear_authentication();
insert into contacts (workspace_id, phone, opted_out_at) values (:'ws', '+14155557001', now()) returning id as stopped \gset
select tests.authenticate_as('erin');
select throws_ok(format($$ update contacts set opted_out_at = null where id = %L $$, :'stopped'), '42501',
  format('contact %s opted out; only the contact can opt back in', :'stopped'), 'a member cannot clear an opt-out');
select tests.authenticate_as_service_role();
select throws_ok(format($$ update contacts set opted_out_at = null where id = %L $$, :'stopped'), '42501', null,
  'nor can the service role (a START reply is the way back: provider_webhooks.test.sql)');
select tests.clear_authentication();

/** Section - the phone hash is derived, never set (herald.contacts_before_write) */
select tests.authenticate_as('gus');
insert into contacts (workspace_id, phone) values (:'ws', '+14155557003') returning id as c_hash \gset
update contacts set phone = '+14155557004' where id = :'c_hash';
update contacts set phone_hash = 'forged' where id = :'c_hash';
select tests.clear_authentication();
select is((select phone_hash from contacts where id = :'c_hash'), herald.phone_hash(:'ws', '+14155557004'),
  'the hash follows a changed number, and a hand-set one is put back');

/** Section - workspace delete removes everything (herald.workspaces_before_delete logs it and queues erasures) */
select tests.authenticate_as('hal');
select create_workspace('Hal Co') as ws_hal \gset
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
select schedule_message(:'h1', 'see you', now() + interval '1 hour', 'whatsapp', appointment_id => :'hap') as hm \gset
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

/** Section - the pieces the triggers share */
select tests.authenticate_as('finn');
insert into campaigns (workspace_id, name) values (:'ws', 'Logged, not deleted') returning id as k_log \gset
insert into senders (workspace_id, channel, status) values (:'ws', 'sms', 'connecting') returning id as s_spare \gset
insert into senders (workspace_id, channel, status) values (:'ws', 'whatsapp', 'connecting') returning id as s_wa_spare \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id) values (:'ws', :'s_wa_spare', '120363000000000099@g.us') returning id as g_alone \gset
select id as s_sms_default from senders where workspace_id = :'ws' and channel = 'sms' and is_default \gset
select tests.clear_authentication();
select results_eq(
  format($$ select herald.replacement_sender(%1$L, id) from senders where id in (%2$L, %3$L, %4$L)
            order by id = %2$L desc, id = %3$L desc $$, :'ws', :'s_spare', :'s_sms_default', :'s_wa_spare'),
  format($$ values (%L::uuid), (null), (null) $$, :'s_sms_default'),
  'herald.replacement_sender: the default of the same channel; none for the default itself, nor where the channel has no default');
select herald.log_deletion('campaign', 'public.campaigns', :'ws', :'k_log', '{"note": "extra"}') as log_id \gset
select results_eq(
  format($$ select entity, mode, actor, counts from deletion_log where id = %L $$, :'log_id'),
  format($$ select 'campaign'::text, 'hard'::text, 'postgres'::text,
                   jsonb_build_object('cancelled', i -> 'cancel', 'deleted', i -> 'cascade', 'set_null', i -> 'set_null', 'note', 'extra')
            from herald.delete_impact('public.campaigns', %L) i $$, :'k_log'),
  'herald.log_deletion writes the impact delete_impact measures, the actor, and what the trigger adds');
select results_eq(
  $$ select herald.set_reason('first'), herald.set_reason('second'), herald.set_reason(null), current_setting('herald.reason') $$,
  $$ values (''::text, 'first'::text, 'second'::text, ''::text) $$,
  'herald.set_reason sets the ledger''s reason and hands back the one before, so a trigger can put it back');
select tests.authenticate_as('finn');
delete from whatsapp_groups where id = :'g_alone';
delete from senders where id = :'s_wa_spare';
select tests.clear_authentication();
select results_eq(
  format($$ select entity, entity_id from deletion_log where entity_id in (%L, %L) order by id $$, :'g_alone', :'s_wa_spare'),
  format($$ values ('whatsapp_group'::text, %L::uuid), ('sender', %L::uuid) $$, :'g_alone', :'s_wa_spare'),
  'herald.whatsapp_groups_before_delete logs a group deleted on its own; a sender''s delete logs only the sender');

select * from finish();
rollback;