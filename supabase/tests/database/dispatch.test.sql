-- Dispatching (…_dispatch.sql): herald.claim_messages re-checking the contact in the claim and
-- reserving each sender's rate slots (herald.sender_slots, filled by herald.senders_after_insert),
-- herald.record_send_result with herald.retry_delay's backoff, herald.reap_expired_leases, and the
-- ranks the callbacks move by (herald.message_rank, herald.from_provider_status). A worker need
-- re-check nothing by hand: the claim will not hand out a message that breaks a rule. Inside
-- this one transaction now() does not move, so claim slots and backoffs are exact.
-- Scenario rows are written directly as postgres (tests.workspace, tests.message…), as a bulk
-- import or a stale writer would: the claiming functions are what must catch them.
begin;
select plan(68);
-- Claims re-check the send window against the real clock; these tests are about claiming, so
-- their workspaces have no quiet hours (send_window_at_claim.test.sql proves the window at claim).
-- Rolled back with the rest of the file.
alter table public.workspaces alter column quiet_hours_start set default '00:00', alter column quiet_hours_end set default '00:00';

-- The workspaces already there (the demo data) are paused, so the claims below see only the
-- workspaces this file makes.
update workspaces set automation_enabled = false;

/** Section - claim_messages: eligibility re-checked in the claim */

select tests.workspace('Claims') as ws_k \gset
select tests.sender(:'ws_k', '+15550002001') as s_k \gset
select tests.contact(:'ws_k', '+14155550061') as k_ok \gset
select tests.contact(:'ws_k', '+14155550062') as k_human \gset
select tests.contact(:'ws_k', '+14155550063') as k_deleted \gset
select tests.contact(:'ws_k', '+14155550064') as k_opted \gset
select tests.contact(:'ws_k', '+14155550065') as k_stale \gset
select tests.contact(:'ws_k', '+14155550066') as k_other \gset
select tests.message(:'k_ok', now() - interval '1 minute') as mk_ok \gset
select tests.message(:'k_human', now() - interval '1 minute') as mk_human \gset
select tests.message(:'k_deleted', now() - interval '1 minute') as mk_deleted \gset
select tests.message(:'k_opted', now() - interval '1 minute') as mk_opted \gset
select tests.message(:'k_stale', now() - interval '1 minute') as mk_stale \gset
select is((herald.queue_due_messages(1000, now()) ->> 'queued')::int, 5, 'claims: 5 messages queued');
select tests.message(:'k_other', now() + interval '1 hour', 'queued') as mk_future \gset
select tests.message(:'k_other', now() - interval '1 minute', 'scheduled') as mk_scheduled \gset

-- Between queueing and claiming: taken over, soft-deleted, opted out (the triggers cancel at once)...
update contacts set controlled_by = 'human' where id = :'k_human';
update contacts set deleted_at = now() where id = :'k_deleted';
update contacts set opted_out_at = now() where id = :'k_opted';
-- ...and a stale case the triggers did not see: only the claim's own re-check stands in the way.
alter table public.contacts disable trigger contacts_after_update;
update contacts set deleted_at = now() where id = :'k_stale';
alter table public.contacts enable trigger contacts_after_update;

select throws_ok($$ select * from herald.claim_messages(0) $$, '22023', 'limit must be between 1 and 5000',
  'a claim of 0 is refused');
select throws_ok($$ select * from herald.claim_messages(10, interval '5 seconds') $$, '22023', 'lease must be at least 10 seconds',
  'a lease shorter than 10 seconds is refused');

create temp table claim1 as select * from herald.claim_messages(100);
select results_eq($$ select message_id, attempt_no, to_phone, from_phone, provider_check_required, previous_attempt_requested_at
                     from claim1 $$,
  format($$ values (%L::uuid, 1, '+14155550061'::text, '+15550002001'::text, false, null::timestamptz) $$, :'mk_ok'),
  'the claim takes only the queued, due message of an eligible contact, with its numbers');
select results_eq(
  format($$ select id, status::text, coalesce(cancel_reason::text, '-') from messages where id in (%L, %L, %L, %L, %L, %L) order by id $$,
    :'mk_human', :'mk_deleted', :'mk_opted', :'mk_stale', :'mk_future', :'mk_scheduled'),
  format($$ select * from (values (%L::uuid, 'cancelled', 'human_takeover'), (%L::uuid, 'cancelled', 'contact_deleted'),
                                  (%L::uuid, 'cancelled', 'contact_opted_out'), (%L::uuid, 'cancelled', 'contact_deleted'),
                                  (%L::uuid, 'queued', '-'), (%L::uuid, 'scheduled', '-')) v order by 1 $$,
    :'mk_human', :'mk_deleted', :'mk_opted', :'mk_stale', :'mk_future', :'mk_scheduled'),
  'taken over, deleted and opted out were cancelled by the triggers; the stale one by the claim''s re-check; the future one and the scheduled one stay unclaimed');
select results_eq(
  format($$ select from_status::text, to_status::text, reason, actor from message_events where message_id = %L order by id desc limit 1 $$,
    :'mk_stale'),
  $$ values ('queued'::text, 'cancelled'::text, 'contact_deleted'::text, 'dispatcher'::text) $$,
  'the claim''s cancellation is in the ledger with its reason, by the dispatcher');
select is((select count(*)::int from message_attempts where message_id in (:'mk_stale', :'mk_future', :'mk_scheduled')), 0,
  'unclaimed messages get no attempt row');
select results_eq(
  format($$ select m.status::text, m.attempts, m.lease_expires_at = now() + interval '2 minutes', m.sender_id,
                   a.attempt_no, a.provider_status, a.provider_sid
            from messages m join message_attempts a on a.message_id = m.id where m.id = %L $$, :'mk_ok'),
  format($$ values ('sending', 1, true, %L::uuid, 1, 'requested'::text, null::text) $$, :'s_k'),
  'the claimed message is sending under a lease, bound to the default sender, with one attempt row');
select is((select tests.secs(send_not_before) from claim1), 0::numeric, 'its send slot is now');

/** Section - record_send_result */
select tests.workspace('Records') as ws_r \gset
update workspaces set retry_base_seconds = 60, max_attempts = 3 where id = :'ws_r';
select tests.sender(:'ws_r', '+15550002002');
select tests.contact(:'ws_r', '+14155550071') as r_sent \gset
select tests.contact(:'ws_r', '+14155550072') as r_perm \gset
select tests.contact(:'ws_r', '+14155550073') as r_unsub \gset
select tests.contact(:'ws_r', '+14155550074') as r_trans \gset
select tests.contact(:'ws_r', '+14155550075') as r_notsent \gset
select tests.contact(:'ws_r', '+14155550076') as r_stale \gset
select tests.contact(:'ws_r', '+14155550077') as r_early \gset
select tests.message(:'r_sent', now() - interval '1 minute', 'queued') as mr_sent \gset
select tests.message(:'r_perm', now() - interval '1 minute', 'queued') as mr_perm \gset
select tests.message(:'r_unsub', now() - interval '1 minute', 'queued') as mr_unsub \gset
select tests.message(:'r_unsub', now() + interval '1 day') as mr_unsub_later \gset
select tests.message(:'r_trans', now() - interval '1 minute', 'queued') as mr_trans \gset
select tests.message(:'r_notsent', now() - interval '1 minute', 'queued') as mr_notsent \gset
select tests.message(:'r_stale', now() - interval '1 minute', 'queued') as mr_stale \gset
select tests.message(:'r_early', now() - interval '1 minute', 'queued') as mr_early \gset
create temp table claim2 as select * from herald.claim_messages(100);
select is((select count(*)::int from claim2 where workspace_id = :'ws_r'), 7, 'records: 7 messages claimed');

select is(herald.record_send_result(:'mr_sent', 1, 'sent', 'SM' || md5('sent'), 'queued'), 'sent'::message_status,
  'sent: the provider took it');
select results_eq(
  format($$ select m.status::text, m.provider_sid, m.sent_at is not null, m.lease_expires_at is null,
                   a.provider_sid, a.provider_status, a.responded_at is not null
            from messages m join message_attempts a on a.message_id = m.id where m.id = %L $$, :'mr_sent'),
  $$ values ('sent', 'SM' || md5('sent'), true, true, 'SM' || md5('sent'), 'queued'::text, true) $$,
  'sent: the message and its attempt carry the provider sid; the lease is released');

select is(herald.record_send_result(:'mr_perm', 1, 'permanent', null, null, 21211, 'invalid number'), 'failed'::message_status,
  'permanent (21211): failed at once');
select results_eq(
  format($$ select m.status::text, m.last_error_code, m.failed_at is not null, e.reason, c.opted_out_at is null
            from messages m join message_events e on e.message_id = m.id and e.to_status = 'failed'
            join contacts c on c.id = m.contact_id where m.id = %L $$, :'mr_perm'),
  $$ values ('failed', 21211, true, 'provider_error_21211', true) $$,
  'permanent: the error code is kept and logged; a bad number does not opt the contact out');

select is(herald.record_send_result(:'mr_unsub', 1, 'permanent', null, null, 21610, 'unsubscribed'), 'failed'::message_status,
  'permanent (21610): failed at once');
select ok((select opted_out_at is not null from contacts where id = :'r_unsub'), '21610 opts the contact out');
select results_eq(format($$ select status::text, cancel_reason::text from messages where id = %L $$, :'mr_unsub_later'),
  $$ values ('cancelled', 'contact_opted_out') $$, '21610 cancels the contact''s other pending messages');
select results_eq(
  format($$ select reason from suppressions where workspace_id = %L and phone_hash = herald.phone_hash(%L, '+14155550073') $$, :'ws_r', :'ws_r'),
  $$ values ('provider_unsubscribed') $$, '21610 suppresses the number, saying the provider reported it');

select is(herald.record_send_result(:'mr_trans', 1, 'transient', null, null, 20429, 'Too Many Requests'), 'scheduled'::message_status,
  'transient on attempt 1: back to scheduled');
select results_eq(
  format($$ select m.attempts, m.last_error_code, m.lease_expires_at is null,
                   tests.secs(m.send_at) between 30 and 90, e.reason
            from messages m join message_events e on e.message_id = m.id and e.from_status = 'sending'
            where m.id = %L $$, :'mr_trans'),
  $$ values (1, 20429, true, true, 'retry_backoff') $$,
  'transient: send_at = now + 60 s × [0.5, 1.5] (base × 2^0 with jitter), ledger reason retry_backoff');

select is(herald.record_send_result(:'mr_notsent', 1, 'not_sent', null, null, 20003, 'Authenticate'), 'queued'::message_status,
  'not_sent (Herald''s credentials): back to queued');
select results_eq(
  format($$ select m.status::text, m.attempts, m.lease_expires_at is null, m.last_error_code, e.reason
            from messages m join message_events e on e.message_id = m.id and e.from_status = 'sending'
            where m.id = %L $$, :'mr_notsent'),
  $$ values ('queued', 0, true, 20003, 'not_sent_20003') $$,
  'not_sent does not spend the attempt');

-- Twilio calls back before the dispatcher has recorded the sid: kept as unknown_sid (Twilio is
-- answered 200 and will not repeat them), then applied when the sid is recorded.
select results_eq(
  $$ select herald.apply_provider_status('SM' || md5('early'), s, e, '{}', 'early-' || s) from (values ('queued', null::integer), ('failed', 30008)) v(s, e) $$,
  $$ values ('unknown_sid'), ('unknown_sid') $$,
  'callbacks that beat the dispatcher''s answer: unknown_sid for now');
select is(herald.record_send_result(:'mr_early', 1, 'sent', 'SM' || md5('early'), 'queued'), 'failed'::message_status,
  'recording the sid applies them: the message ends failed, as Twilio said');
select results_eq(
  format($$ select m.status::text, m.last_error_code, a.provider_status, a.error_code from messages m
            join message_attempts a on a.message_id = m.id where m.id = %L $$, :'mr_early'),
  $$ values ('failed', 30008, 'failed'::text, 30008) $$,
  'the message and its attempt carry the provider''s failure');
select results_eq(
  format($$ select idempotency_token, outcome, message_id = %L from provider_events where idempotency_token like 'early-%%' order by id $$, :'mr_early'),
  $$ values ('early-queued', 'unchanged', true), ('early-failed', 'applied', true) $$,
  'the early callbacks now say what was done with them, attached to the message');
select results_eq(
  format($$ select coalesce(from_status::text, '-') || '>' || to_status::text, reason, actor from message_events
            where message_id = %L and from_status is not null order by id $$, :'mr_early'),
  $$ values ('queued>sending', null::text, 'dispatcher'::text), ('sending>sent', null, 'dispatcher'), ('sent>failed', 'provider_failed_30008', 'provider') $$,
  'the ledger: sent by the dispatcher, failed by the provider');

-- The lease of r_stale expires (its dispatcher died): the reaper puts it back, flagged.
update messages set lease_expires_at = now() - interval '1 second' where id = :'mr_stale';
select is(herald.reap_expired_leases(), 1, 'the reaper takes back exactly the one expired lease');
select results_eq(
  format($$ select m.status::text, m.lease_expires_at is null, m.provider_check_required, m.attempts, e.reason
            from messages m join message_events e on e.message_id = m.id and e.from_status = 'sending'
            where m.id = %L $$, :'mr_stale'),
  $$ values ('queued', true, true, 1, 'lease_expired') $$,
  'reaped: queued again, flagged provider_check_required, ledger reason lease_expired');
select is(herald.reap_expired_leases(), 0, 'a live lease is not reaped');

-- The retry comes due (the cron job would queue it): claim again.
update messages set status = 'queued', send_at = now() - interval '1 second' where id = :'mr_trans';
create temp table claim3 as select * from herald.claim_messages(100);
select results_eq(
  $$ select message_id, attempt_no, provider_check_required, previous_attempt_requested_at is not null from claim3 order by message_id $$,
  format($$ select * from (values (%L::uuid, 2, false, true), (%L::uuid, 1, false, false), (%L::uuid, 2, true, true)) v order by 1 $$,
    :'mr_trans', :'mr_notsent', :'mr_stale'),
  'the next claim: the retry as attempt 2, the not_sent one as attempt 1 again, the reaped one as attempt 2 flagged for a provider check');

select is(herald.record_send_result(:'mr_stale', 1, 'permanent', null, null, 21211, 'late answer'), 'sending'::message_status,
  'a stale answer for attempt 1 while attempt 2 holds the message');
select results_eq(format($$ select status::text, attempts, last_error_code from messages where id = %L $$, :'mr_stale'),
  $$ values ('sending', 2, null::integer) $$, 'the stale answer changed nothing');

select is(herald.record_send_result(:'mr_trans', 2, 'transient', null, null, 20500, 'Internal Server Error'), 'scheduled'::message_status,
  'transient on attempt 2: scheduled again');
select ok((select tests.secs(send_at) between 60 and 180 from messages where id = :'mr_trans'),
  'the backoff doubles: now + 120 s × [0.5, 1.5]');
update messages set status = 'queued', send_at = now() - interval '1 second' where id = :'mr_trans';
create temp table claim4 as select * from herald.claim_messages(100);
select results_eq($$ select message_id, attempt_no from claim4 $$, format($$ values (%L::uuid, 3) $$, :'mr_trans'),
  'attempt 3 claimed');
select is(herald.record_send_result(:'mr_trans', 3, 'transient', null, null, 20500, 'Internal Server Error'), 'failed'::message_status,
  'transient on the last attempt (max_attempts 3): failed');
select results_eq(
  format($$ select e.reason, (select count(*)::int from message_attempts a where a.message_id = %L)
            from message_events e where e.message_id = %L and e.to_status = 'failed' $$, :'mr_trans', :'mr_trans'),
  $$ values ('max_attempts', 3) $$,
  'failed with reason max_attempts, after 3 attempt rows');

select is(herald.record_send_result(:'mr_notsent', 1, 'sent', 'SM' || md5('notsent'), 'queued'), 'sent'::message_status,
  'the not_sent message goes out on its re-claim');
select results_eq(
  format($$ select m.attempts, count(a.*)::int from messages m join message_attempts a on a.message_id = m.id where m.id = %L group by m.attempts $$, :'mr_notsent'),
  $$ values (1, 1) $$, 'one attempt spent, one attempt row');
select is(herald.record_send_result(:'mr_stale', 2, 'sent', 'SM' || md5('stale'), 'queued'), 'sent'::message_status,
  'the reaped message''s second attempt is recorded as sent');

/** Section - claim_messages: per-sender rate slots */
select tests.workspace('Slots') as ws_s \gset
select tests.sender(:'ws_s', '+15550002003', 2) as s_s \gset
select tests.contact(:'ws_s', '+14155550081') as c_s \gset
create temp table slotted as
  select i, tests.message(:'c_s', now() - interval '1 minute' + make_interval(secs => i), 'queued') as id
  from generate_series(1, 10) i;
create temp table claim5 as select * from herald.claim_messages(4);
select results_eq(
  $$ select s.i, tests.secs(c.send_not_before) from claim5 c join slotted s on s.id = c.message_id order by s.i $$,
  $$ values (1, 0.0), (2, 0.5), (3, 1.0), (4, 1.5) $$,
  'mps 2: the first claim takes the 4 earliest, in slots 0.5 s apart starting now');
create temp table claim6 as select * from herald.claim_messages(100);
select results_eq(
  $$ select s.i, tests.secs(c.send_not_before) from claim6 c join slotted s on s.id = c.message_id order by s.i $$,
  $$ values (5, 2.0), (6, 2.5), (7, 3.0), (8, 3.5), (9, 4.0), (10, 4.5) $$,
  'a second claim continues after the first''s last slot, never reusing one');
select is((select tests.secs(next_slot_at) from herald.sender_slots where sender_id = :'s_s'), 5.0,
  'the sender''s next free slot is after the last one taken');
select is((select count(*)::int from message_attempts a join slotted s on s.id = a.message_id), 10,
  'one attempt row per claimed message');

select tests.workspace('Lease') as ws_e \gset
select tests.sender(:'ws_e', '+15550002004', 1) as s_e \gset
select tests.contact(:'ws_e', '+14155550091') as c_e \gset
select tests.message(:'c_e', now() - interval '1 minute' + make_interval(secs => i), 'queued') from generate_series(1, 30) i;
create temp table claim7 as select * from herald.claim_messages(100, interval '10 seconds');
select results_eq($$ select count(*)::int, max(tests.secs(send_not_before)) from claim7 $$, $$ values (6, 5.0) $$,
  'mps 1 and a 10 s lease: only the 6 messages whose slot falls within half the lease (0..5 s) are claimed');
select results_eq(
  format($$ select status::text, count(*)::int, sum(attempts)::int from messages where workspace_id = %L group by status order by status $$, :'ws_e'),
  $$ values ('queued', 24, 0), ('sending', 6, 6) $$,
  'the other 24 stay queued, no attempt spent');
-- (and longer where the slot plus the provider call reaches further: see lease_coverage.test.sql)
select ok((select bool_and(lease_expires_at >= now() + interval '10 seconds') from messages where workspace_id = :'ws_e' and status = 'sending'),
  'the claimed ones hold the 10 s lease');


/** Section - ranks: callbacks and answers move a message forward only */
select results_eq(
  $$ select s::text from unnest(enum_range(null::public.message_status)) s order by herald.message_rank(s), s::text $$,
  $$ values ('scheduled'), ('queued'), ('sending'), ('sent'), ('delivered'), ('read'), ('failed'), ('undelivered'), ('cancelled') $$,
  'herald.message_rank orders the statuses along the way a message goes; failed and undelivered rank alike');
select results_eq(
  $$ select p, herald.from_provider_status(p)::text
     from unnest(array['accepted', 'queued', 'sending', 'sent', 'DELIVERED', 'read', 'undelivered', 'failed', 'canceled', 'scheduled']) p $$,
  $$ values ('accepted', null::text), ('queued', null), ('sending', null), ('sent', 'sent'), ('DELIVERED', 'delivered'),
            ('read', 'read'), ('undelivered', 'undelivered'), ('failed', 'failed'), ('canceled', 'failed'), ('scheduled', null) $$,
  'herald.from_provider_status maps Twilio''s final and forward statuses, in any case, and nothing else');

/** Section - retry_delay: exponential backoff with jitter, capped at a day */
select is_empty($$ select a, d from generate_series(1, 5) a, generate_series(1, 40) i,
                   lateral (select herald.retry_delay(a, 60) as d) x
                   where d < make_interval(secs => 60 * 2 ^ (a - 1) * 0.5) or d > make_interval(secs => 60 * 2 ^ (a - 1) * 1.5) $$,
  'attempt n waits base × 2^(n-1) × [0.5, 1.5]');
select cmp_ok((select count(distinct herald.retry_delay(1, 60))::int from generate_series(1, 40)), '>', 30,
  'with jitter: forty retries of one attempt do not wait alike');
-- (20 is the most attempts a message may have: messages_attempts_range)
select is((select max(herald.retry_delay(20, 86400)) from generate_series(1, 10)), interval '1 day',
  'never more than a day, even at the largest base and attempt count the schema allows');
select cmp_ok(herald.retry_delay(0, 60), '<=', interval '90 seconds', 'an attempt count of 0 waits like the first');

/** Section - every new sender gets its rate-slot row */
select tests.sender(tests.workspace('Slot row'), '+15550009501', 10) as u_s \gset
select is((select count(*)::int from herald.sender_slots where sender_id = :'u_s'), 1, 'a new sender has its rate-slot row');
select tests.create_user('sam');
select tests.authenticate_as('sam');
select create_workspace('Slot rows') as ws_rows \gset
select results_eq(
  format($$ with s as (insert into senders (workspace_id, channel, phone_number, status)
                       values (%1$L, 'sms', '+15550009601', 'connected'), (%1$L, 'whatsapp', '+15550009602', 'connected')
                       returning id)
            select count(*)::int from s $$, :'ws_rows'),
  $$ values (2) $$, 'an owner adds two senders in one statement');
select tests.clear_authentication();
select results_eq(
  format($$ select s.channel::text, sl.next_slot_at = now() from senders s join herald.sender_slots sl on sl.sender_id = s.id
            where s.workspace_id = %L order by s.channel $$, :'ws_rows'),
  $$ values ('sms', true), ('whatsapp', true) $$,
  'herald.senders_after_insert gave each its slot row, free from now (claimers lock rows that exist)');

/** Section - a paused workspace's queued messages are held from the claim */
-- Every workspace above is paused too, so the claims below see only the one made here.
update workspaces set automation_enabled = false;
select tests.create_user('dina');
select tests.authenticate_as('dina');
select create_workspace('Paused Co') as ws_pause \gset
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws_pause', 'sms', '+15550009701', 'connected', true);
insert into contacts (workspace_id, phone) values (:'ws_pause', '+14155550098') returning id as p_c \gset
select schedule_message(:'p_c', 'held one', category => 'transactional') as p_m1 \gset
select schedule_message(:'p_c', 'held two', category => 'transactional') as p_m2 \gset
-- the queueing's part, as the cron job would do it
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id in (:'p_m1', :'p_m2');
select tests.authenticate_as('dina');
select set_automation(:'ws_pause', false);
select tests.authenticate_as_service_role();
select is_empty(format('select * from herald.claim_messages(100) where workspace_id = %L', :'ws_pause'),
  'paused: the dispatcher claims nothing of the workspace');
select tests.authenticate_as('dina');
select set_automation(:'ws_pause', true);
select tests.authenticate_as_service_role();
select results_eq(
  format($$ select c.message_id from herald.claim_messages(100) c where c.workspace_id = %L order by 1 $$, :'ws_pause'),
  format($$ select unnest(array[%L::uuid, %L::uuid]) order by 1 $$, :'p_m1', :'p_m2'),
  'resumed: the held queued messages are claimed');

/** Section - a message back from a lost lease whose contact went meanwhile */
-- It is claimed for the provider check, then cancelled: never stranded, never sent.
select tests.authenticate_as('dina');
insert into contacts (workspace_id, phone) values (:'ws_pause', '+14155557002') returning id as ada \gset
select schedule_message(:'ada', 'one', category => 'transactional') as m1 \gset
select tests.authenticate_as_service_role();
update messages set status = 'queued' where id = :'m1';
select count(*) from herald.claim_messages(10, interval '30 seconds');
select tests.authenticate_as('dina');
select delete_contact(:'ada');
select tests.clear_authentication();
update messages set lease_expires_at = now() - interval '1 second' where id = :'m1';
select herald.reap_expired_leases();
select is((select status::text from messages where id = :'m1'), 'queued',
  'in flight when the contact went, so reaped back to queued (only the provider knows if it went out)');
select results_eq(
  format($$ select message_id, blocked_reason::text from herald.claim_messages(10, interval '30 seconds') where workspace_id = %L $$, :'ws_pause'),
  format($$ values (%L::uuid, 'contact_deleted') $$, :'m1'),
  'the claim still takes it, flagged with why its contact is off limits');
select is(herald.record_send_result(:'m1', 2, 'not_sent', null, null, null, 'not sent: contact_deleted')::text, 'cancelled',
  'not found at the provider and blocked: cancelled, not stranded');
select is((select cancel_reason::text from messages where id = :'m1'), 'contact_deleted', 'with the contact''s reason');

/** Section - the reaper's cron job, and who may dispatch */
select results_eq(
  $$ select schedule, command from cron.job where jobname = 'herald-reap-expired-leases' $$,
  $$ values ('* * * * *'::text, 'select herald.reap_expired_leases()'::text) $$,
  'pg_cron reaps expired leases every minute');
select tests.create_user('mallory');
select tests.authenticate_as('mallory');
select throws_ok($$ select * from herald.claim_messages(10) $$, '42501', null, 'authenticated cannot claim messages');
select throws_ok(format($$ select herald.record_send_result(%L, 1, 'sent', 'SMx') $$, :'mk_ok'), '42501', null,
  'authenticated cannot record send results');
select throws_ok($$ select herald.reap_expired_leases() $$, '42501', null, 'authenticated cannot reap leases');
select tests.authenticate_as_service_role();
select lives_ok($$ select herald.reap_expired_leases() $$, 'the service role can');
select tests.clear_authentication();

select * from finish();
rollback;
