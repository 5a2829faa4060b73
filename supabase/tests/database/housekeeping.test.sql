-- Housekeeping (…_housekeeping.sql): cleanup_stale_senders (and herald.delete_stale_senders,
-- which does the delete) removes senders that never got a number or connection, with their
-- groups and campaign links, re-binding or cancelling their messages; herald.purge_deleted_contacts hard-deletes contacts soft-deleted past retention; both
-- run from pg_cron. Acted as real members: erin owns the workspace, gus is an agent, hal owns
-- another.
begin;
select plan(22);

select tests.create_user(u) from unnest(array['erin', 'gus', 'hal']) u;
select tests.get_user_id('erin') as erin, tests.get_user_id('gus') as gus \gset
select tests.authenticate_as('erin');
select create_workspace('Housekeeping Co') as ws \gset
insert into workspace_members (workspace_id, user_id, role) values (:'ws', :'gus', 'agent');
insert into contacts (workspace_id, phone, first_name) values (:'ws', '+14155550206', 'Fay') returning id as c6 \gset

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
-- Written as a stale writer would (schedule_message refuses a channel with no sender to send from).
insert into messages (workspace_id, contact_id, channel, body, send_at, sender_id)
values (:'ws', :'c6', 'whatsapp', 'via the stale sender', now() + interval '1 day', :'stale') returning id as m_stale \gset
select tests.authenticate_as_service_role();

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
select throws_ok($$ select cleanup_stale_senders() $$, '42501', 'not signed in',
  'without a JWT the RPC cleans up nothing: it is not signed in');
select is((select count(*)::int from senders where id = :'hal_stale'), 1, 'the other workspace''s stale sender is still there');
select tests.authenticate_as_service_role();
select is(cleanup_stale_senders(), 1, 'the service role cleans up every workspace');
select tests.clear_authentication();
select is((select count(*)::int from senders where id = :'hal_stale'), 0, 'including the other workspace''s stale sender');
insert into senders (workspace_id, channel, status, created_at)
values (:'ws_hal', 'whatsapp', 'disconnected', now() - interval '3 days') returning id as hal_stale2 \gset
select is(herald.delete_stale_senders('1 day'), 1, 'herald.delete_stale_senders (the cron job''s) cleans up every workspace');
select results_eq(format($$ select actor from deletion_log where entity_id = %L $$, :'hal_stale2'), $$ values ('cron'::text) $$,
  'as cron');
select throws_ok($$ select herald.delete_stale_senders(null) $$, '22023', null, 'and wants an interval too');

/** Section - purge of soft-deleted contacts past retention, and the cron jobs */
select tests.authenticate_as('erin');
insert into contacts (workspace_id, phone) values (:'ws', '+14155550401') returning id as p_old \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155550402') returning id as p_recent \gset
insert into contacts (workspace_id, phone) values (:'ws', '+14155550403') returning id as p_live \gset
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws', 'sms', '+15005550018', 'connected', true);
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
  $$ values ('herald-cleanup-stale-senders'::text, 'select herald.delete_stale_senders(''1 day'')'::text),
            ('herald-purge-deleted-contacts', 'select herald.purge_deleted_contacts()') $$,
  'both housekeeping jobs are scheduled in pg_cron');
select tests.authenticate_as('erin');
insert into contacts (workspace_id, phone) values (:'ws', '+14155550404') returning id as p_week \gset
update contacts set deleted_at = now() - interval '7 days' where id = :'p_week';
select tests.clear_authentication();
update contacts set deleted_at = deleted_at - interval '7 days' where id = :'p_week';
select is(herald.purge_deleted_contacts('4 days'), 2, 'a shorter retention purges what is older than it (the 7- and 5-day-old ones)');
select tests.authenticate_as_service_role();
select throws_ok($$ select herald.purge_deleted_contacts() $$, '42501', null,
  'only the cron job (the database owner) purges: not even the service role');
select tests.clear_authentication();

select * from finish();
rollback;