-- Senders, WhatsApp groups and campaigns (…_senders_campaigns.sql): what a sender may hold, one
-- default per channel, admins manage them and agents read them, and a campaign's links to groups
-- go with either side (both keys are not null, so both cascade; nothing is ever set null under a
-- not-null column). What deleting each one does to messages: deletion_rules.test.sql.
begin;
select plan(15);

select tests.workspace_of('sara', 'Senders Co', array['seb']) as ws \gset

/** Section - what a sender may hold */
select lives_ok(format($$ insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
                          values (%L, 'sms', '+15550001201', 'connected', 10, true) $$, :'ws'),
  'an owner adds a default SMS sender');
select throws_ok(format($$ insert into senders (workspace_id, channel, phone_number, is_default) values (%L, 'sms', '+15550001202', true) $$, :'ws'),
  '23505', null, 'a second default for the same channel is refused');
select lives_ok(format($$ insert into senders (workspace_id, channel, phone_number, is_default) values (%L, 'whatsapp', '+15550001202', true) $$, :'ws'),
  'a default for the other channel is fine');
select throws_ok(format($$ insert into senders (workspace_id, channel, is_default) values (%L, 'sms', true) $$, :'ws'), '23514', null,
  'a default sender must have a number to send from');
select throws_ok(format($$ insert into senders (workspace_id, channel, phone_number) values (%L, 'sms', '15550001203') $$, :'ws'), '23514', null,
  'a number that is not E.164 is refused');
select throws_ok(format($$ insert into senders (workspace_id, channel, mps) values (%L, 'sms', 0) $$, :'ws'), '23514', null,
  'a rate of 0 messages per second is refused');
select throws_ok(format($$ insert into senders (workspace_id, channel, mps) values (%L, 'sms', 1001) $$, :'ws'), '23514', null,
  'so is one above 1000');

/** Section - admins manage, agents read */
select tests.authenticate_as('seb');
select is((select count(*)::int from senders where workspace_id = :'ws'), 2, 'an agent sees the workspace''s senders');
select throws_ok(format($$ insert into senders (workspace_id, channel) values (%L, 'sms') $$, :'ws'), '42501', null,
  'but cannot add one');
select is_empty(format($$ update senders set mps = 500 where workspace_id = %L returning id $$, :'ws'), 'nor change one');
select throws_ok(format($$ insert into campaigns (workspace_id, name) values (%L, 'Agent''s own') $$, :'ws'), '42501', null,
  'nor start a campaign');

/** Section - groups and campaign links */
select tests.authenticate_as('sara');
select id as s_wa from senders where workspace_id = :'ws' and channel = 'whatsapp' \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id, name) values (:'ws', :'s_wa', '120363000000000101@g.us', 'One')
returning id as g1 \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id, name) values (:'ws', :'s_wa', '120363000000000102@g.us', 'Two')
returning id as g2 \gset
select throws_ok(format($$ insert into whatsapp_groups (workspace_id, sender_id, external_id) values (%L, %L, '120363000000000101@g.us') $$,
  :'ws', :'s_wa'), '23505', null, 'a sender sees each WhatsApp group once');
insert into campaigns (workspace_id, name) values (:'ws', 'Launch') returning id as k \gset
insert into campaigns (workspace_id, name) values (:'ws', 'Follow-up') returning id as k2 \gset
insert into campaign_groups (workspace_id, campaign_id, group_id) values (:'ws', :'k', :'g1'), (:'ws', :'k', :'g2'), (:'ws', :'k2', :'g1');
select throws_ok(format($$ insert into campaigns (workspace_id, name) values (%L, '  ') $$, :'ws'), '23514', null,
  'a campaign needs a name');
delete from whatsapp_groups where id = :'g2';
delete from campaigns where id = :'k2';
select results_eq(format($$ select campaign_id, group_id from campaign_groups where workspace_id = %L $$, :'ws'),
  format($$ values (%L::uuid, %L::uuid) $$, :'k', :'g1'),
  'deleting a group or a campaign takes its links with it, and only those');
select results_eq(
  $$ select c.confrelid::regclass::text, c.confdeltype::text from pg_constraint c
     where c.conrelid = 'public.campaign_groups'::regclass and c.contype = 'f' order by 1 $$,
  $$ values ('campaigns'::text, 'c'::text), ('whatsapp_groups', 'c') $$,
  'both of campaign_groups'' keys cascade');

select * from finish();
rollback;
