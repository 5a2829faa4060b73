-- Queueing, claiming, recording the provider's answers, reaping leases, status callbacks and
-- inbound messages (seed 004 re-checked all of this by hand in a worker). Clocks are fixed: the
-- queueing function and herald.quiet_until take the time as a parameter, and inside this one
-- transaction now() does not move, so claim slots and backoffs are exact.
begin;
select plan(147);

/** Section - helpers for this file */
-- Each scenario gets its own workspace. Rows are written directly as postgres, as a bulk import
-- or a stale writer would: the queueing and claiming functions are what must catch them.
create function pg_temp.workspace(p_name text, p_tz text default 'UTC', p_quiet_start time default '00:00',
                                  p_quiet_end time default '00:00', p_daily_limit integer default null) returns uuid
language sql as $$
  insert into public.workspaces (name, timezone, quiet_hours_start, quiet_hours_end, daily_limit)
  values (p_name, p_tz, p_quiet_start, p_quiet_end, p_daily_limit) returning id
$$;
create function pg_temp.sender(p_workspace uuid, p_phone text, p_mps numeric default 100) returns uuid
language sql as $$
  insert into public.senders (workspace_id, channel, phone_number, status, mps, is_default)
  values (p_workspace, 'sms', p_phone, 'connected', p_mps, true) returning id
$$;
create function pg_temp.contact(p_workspace uuid, p_phone text, p_tz text default null) returns uuid
language sql as $$
  insert into public.contacts (workspace_id, phone, timezone) values (p_workspace, p_phone, p_tz) returning id
$$;
create function pg_temp.message(p_contact uuid, p_send_at timestamptz, p_status public.message_status default 'scheduled',
                                p_channel public.channel default 'sms') returns uuid
language sql as $$
  insert into public.messages (workspace_id, contact_id, channel, body, send_at, status)
  select c.workspace_id, c.id, p_channel, 'hello ' || c.phone, p_send_at, p_status
  from public.contacts c where c.id = p_contact
  returning id
$$;
-- Seconds from now() (fixed in this transaction) to a timestamp.
create function pg_temp.secs(p_at timestamptz) returns numeric
language sql as $$ select extract(epoch from p_at - now()) $$;

/** Section - quiet_until: windows, zones and daylight-saving changes */
select is(herald.quiet_until('2026-06-15 02:00Z', 'America/New_York', '21:00', '08:00'), '2026-06-15 12:00Z'::timestamptz,
  '22:00 in New York (before midnight) is quiet until 08:00 New York time the next morning');
select is(herald.quiet_until('2026-06-15 07:00Z', 'America/New_York', '21:00', '08:00'), '2026-06-15 12:00Z'::timestamptz,
  '03:00 in New York (after midnight) is quiet until 08:00 the same morning');
select is(herald.quiet_until('2026-06-15 01:00Z', 'America/New_York', '21:00', '08:00'), '2026-06-15 12:00Z'::timestamptz,
  'the window starts at 21:00 sharp');
select is(herald.quiet_until('2026-06-15 00:59:59Z', 'America/New_York', '21:00', '08:00'), null,
  '20:59:59 is not quiet');
select is(herald.quiet_until('2026-06-15 12:00Z', 'America/New_York', '21:00', '08:00'), null,
  'the window ends at 08:00 sharp');
select is(herald.quiet_until('2026-06-15 02:00Z', 'Europe/Paris', '21:00', '08:00'), '2026-06-15 06:00Z'::timestamptz,
  'the same instant is 04:00 in Paris: quiet until 08:00 Paris time');
select is(herald.quiet_until('2026-06-15 02:00Z', 'Asia/Tokyo', '21:00', '08:00'), null,
  'the same instant is 11:00 in Tokyo: not quiet');
select is(herald.quiet_until('2026-06-15 12:30Z', 'UTC', '12:00', '14:00'), '2026-06-15 14:00Z'::timestamptz,
  'a window that does not cross midnight (12:00–14:00): 12:30 is quiet until 14:00');
select is(herald.quiet_until('2026-06-15 07:00Z', 'Asia/Kolkata', '12:00', '14:00'), '2026-06-15 08:30Z'::timestamptz,
  'a window that does not cross midnight, in a half-hour zone: 12:30 IST is quiet until 14:00 IST');
select is(herald.quiet_until('2026-06-15 11:59Z', 'UTC', '12:00', '14:00'), null,
  'before a daytime window: not quiet');
select is(herald.quiet_until('2026-06-15 23:00Z', 'UTC', '12:00', '14:00'), null,
  'after a daytime window, at night: not quiet');
select is(herald.quiet_until('2026-06-15 03:00Z', 'UTC', '00:00', '00:00'), null,
  'start = end means no quiet hours');
-- US daylight saving starts 2026-03-08 (02:00 EST → 03:00 EDT) and ends 2026-11-01 (02:00 EDT → 01:00 EST).
select is(herald.quiet_until('2026-03-07 05:00Z', 'America/New_York', '21:00', '08:00'), '2026-03-07 13:00Z'::timestamptz,
  'New York, the night before the change: 08:00 EST is 13:00 UTC');
select is(herald.quiet_until('2026-03-08 05:00Z', 'America/New_York', '21:00', '08:00'), '2026-03-08 12:00Z'::timestamptz,
  'New York, 00:00 EST on 2026-03-08: quiet until 08:00 EDT, which is 12:00 UTC');
select is(herald.quiet_until('2026-03-08 02:30Z', 'America/New_York', '21:00', '08:00'), '2026-03-08 12:00Z'::timestamptz,
  'New York, 21:30 EST the evening before the change: quiet until 08:00 EDT (12:00 UTC)');
select is(herald.quiet_until('2026-11-01 03:00Z', 'America/New_York', '21:00', '08:00'), '2026-11-01 13:00Z'::timestamptz,
  'New York, 23:00 EDT before 2026-11-01: quiet until 08:00 EST, which is 13:00 UTC');
select is(herald.quiet_until('2026-11-01 06:30Z', 'America/New_York', '21:00', '08:00'), '2026-11-01 13:00Z'::timestamptz,
  'New York, the repeated 01:30 (EST): quiet until 08:00 EST');
-- EU summer time starts 2026-03-29 (02:00 CET → 03:00 CEST) and ends 2026-10-25.
select is(herald.quiet_until('2026-03-28 22:00Z', 'Europe/Paris', '21:00', '08:00'), '2026-03-29 06:00Z'::timestamptz,
  'Paris, 23:00 CET before 2026-03-29: quiet until 08:00 CEST, which is 06:00 UTC');
select is(herald.quiet_until('2026-03-29 01:30Z', 'Europe/Paris', '21:00', '08:00'), '2026-03-29 06:00Z'::timestamptz,
  'Paris, 03:30 CEST just after the change: quiet until 06:00 UTC');
select is(herald.quiet_until('2026-10-24 21:00Z', 'Europe/Paris', '21:00', '08:00'), '2026-10-25 07:00Z'::timestamptz,
  'Paris, 23:00 CEST before 2026-10-25: quiet until 08:00 CET, which is 07:00 UTC');

/** Section - queue_due_messages, one scenario per workspace, clocks going backwards */
-- Each scenario's messages are due at its own clock only; running the scenarios from the latest
-- clock to the earliest keeps what one deferred out of the next one's reach.

-- 1. Daylight saving in the queue: New York, the evening before the autumn change.
select pg_temp.workspace('DST autumn', 'UTC', '21:00', '08:00') as ws_fall \gset
select pg_temp.sender(:'ws_fall', '+15550001001');
select pg_temp.contact(:'ws_fall', '+14155550001', 'America/New_York') as c_fall \gset
select pg_temp.message(:'c_fall', '2026-11-01 02:55Z') as m_fall \gset
select is(herald.queue_due_messages(1000, '2026-11-01 03:00Z'),
  '{"queued": 0, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 1, "deferred_daily_limit": 0}'::jsonb,
  'DST autumn: the one due message is deferred for quiet hours');
select ok((select send_at >= '2026-11-01 13:00Z' and send_at < '2026-11-01 13:30Z' from messages where id = :'m_fall'),
  'DST autumn: deferred to 08:00 EST (13:00 UTC) plus its spread, in the contact''s zone, not the workspace''s UTC');

-- 2. Quiet hours: one workspace in New York, contacts in their own zones, a window crossing midnight.
select pg_temp.workspace('Quiet', 'America/New_York', '21:00', '08:00') as ws_q \gset
select pg_temp.sender(:'ws_q', '+15550001002');
select pg_temp.contact(:'ws_q', '+14155550011') as c_ny \gset
select pg_temp.contact(:'ws_q', '+14155550012', 'Europe/Paris') as c_paris \gset
select pg_temp.contact(:'ws_q', '+14155550013', 'Asia/Tokyo') as c_tokyo \gset
select pg_temp.contact(:'ws_q', '+14155550014', 'America/Los_Angeles') as c_la \gset
select pg_temp.message(:'c_ny', '2026-06-15 01:30Z'::timestamptz + make_interval(secs => i)) from generate_series(1, 20) i;
select pg_temp.message(:'c_paris', '2026-06-15 01:50Z') as m_paris \gset
select pg_temp.message(:'c_tokyo', '2026-06-15 01:50Z') as m_tokyo \gset
select pg_temp.message(:'c_la', '2026-06-15 01:50Z') as m_la \gset
-- not due yet at this clock: untouched
select pg_temp.message(:'c_ny', '2026-06-15 02:01Z') as m_later \gset
select count(*) as events_before from message_events where workspace_id = :'ws_q' \gset

select is(herald.queue_due_messages(1000, '2026-06-15 02:00Z'),
  '{"queued": 2, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 21, "deferred_daily_limit": 0}'::jsonb,
  'quiet hours: 21 deferred (New York at 22:00, Paris at 04:00), 2 queued (Tokyo at 11:00, Los Angeles at 19:00)');
select results_eq(
  format($$ select status::text, count(*)::int from messages where contact_id = %L and id <> %L group by status $$, :'c_ny', :'m_later'),
  $$ values ('scheduled', 20) $$,
  'the New York contact''s 20 messages are still scheduled');
select is(
  (select count(*)::int from messages where contact_id = :'c_ny' and id <> :'m_later'
     and send_at >= '2026-06-15 12:00Z' and send_at < '2026-06-15 12:30Z'),
  20, 'each is deferred to the window''s end in New York (08:00 EDT = 12:00 UTC), within the 30-minute spread');
select cmp_ok(
  (select count(distinct send_at)::int from messages where contact_id = :'c_ny' and id <> :'m_later'), '>=', 15,
  'the deferred messages are spread, not stacked on one instant');
select cmp_ok(
  (select max(send_at) - min(send_at) from messages where contact_id = :'c_ny' and id <> :'m_later'), '>=', interval '10 minutes',
  'the spread covers a good part of its span');
select ok((select send_at >= '2026-06-15 06:00Z' and send_at < '2026-06-15 06:30Z' and status = 'scheduled'
           from messages where id = :'m_paris'),
  'the Paris contact is deferred to 08:00 in Paris (06:00 UTC), its own zone, not the workspace''s');
select results_eq(
  format($$ select id, status::text from messages where id in (%L, %L) order by id $$, :'m_tokyo', :'m_la'),
  format($$ select * from (values (%L::uuid, 'queued'), (%L::uuid, 'queued')) v order by 1 $$, :'m_tokyo', :'m_la'),
  'contacts whose local time is outside the window are queued');
select is(
  (select count(*)::int from message_events e join messages m on m.id = e.message_id
   where m.workspace_id = :'ws_q' and e.reason = 'quiet_hours' and e.from_status = 'scheduled' and e.to_status = 'scheduled'
     and (e.detail ->> 'send_at_to')::timestamptz = m.send_at),
  21, 'each deferral wrote one ledger event with reason quiet_hours and the new send_at');
select ok((select status = 'scheduled' and send_at = '2026-06-15 02:01Z' from messages where id = :'m_later'),
  'a message not yet due is left alone');
select is(herald.queue_due_messages(1000, '2026-06-15 02:00Z'),
  '{"queued": 0, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'run again at the same clock: nothing moves twice');
select is((select count(*)::int from message_events where workspace_id = :'ws_q'), :events_before + 23,
  'the second run wrote no ledger events (21 deferrals + 2 queued, once)');

-- 3. Daily limit, per workspace-local day: Tokyo, limit 3, at 05:00 local on 2026-05-16.
select pg_temp.workspace('Limited', 'Asia/Tokyo', '00:00', '00:00', 3) as ws_l \gset
select pg_temp.sender(:'ws_l', '+15550001003');
select pg_temp.contact(:'ws_l', '+14155550021') as c_l \gset
-- sent at 01:00 local today (counts), and at 23:00 local yesterday, the same UTC day (does not)
insert into messages (workspace_id, contact_id, body, send_at, status, sent_at, attempts) values
  (:'ws_l', :'c_l', 'sent today', '2026-05-15 16:00Z', 'sent', '2026-05-15 16:00Z', 1),
  (:'ws_l', :'c_l', 'sent yesterday', '2026-05-15 14:00Z', 'sent', '2026-05-15 14:00Z', 1);
create temp table limited as
  select i, pg_temp.message(:'c_l', '2026-05-15 19:50Z'::timestamptz + make_interval(secs => i)) as id from generate_series(1, 5) i;
select is(herald.queue_due_messages(1000, '2026-05-15 20:00Z'),
  '{"queued": 2, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 3}'::jsonb,
  'daily limit 3 with 1 already sent today: 2 queued, 3 deferred');
select results_eq(
  $$ select l.i, m.status::text from limited l join messages m on m.id = l.id order by l.i $$,
  $$ values (1, 'queued'), (2, 'queued'), (3, 'scheduled'), (4, 'scheduled'), (5, 'scheduled') $$,
  'the earliest due go first; a message sent yesterday (local), though today in UTC, does not count');
select is(
  (select count(*)::int from limited l join messages m on m.id = l.id
   where l.i > 2 and m.send_at >= '2026-05-16 15:00Z' and m.send_at < '2026-05-16 15:30Z'),
  3, 'the overflow is deferred to the start of the next local day (00:00 on 2026-05-17 in Tokyo = 15:00 UTC), spread');
select is(
  (select count(*)::int from limited l join message_events e on e.message_id = l.id
   where e.reason = 'daily_limit' and e.to_status = 'scheduled'),
  3, 'each daily-limit deferral wrote a ledger event with reason daily_limit');
select is(herald.queue_due_messages(1000, '2026-05-15 20:00Z'),
  '{"queued": 0, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'daily limit, run again: nothing moves twice');

-- 4. Paused automation holds, and a paused backlog does not starve another workspace.
select pg_temp.workspace('Paused') as ws_p \gset
update workspaces set automation_enabled = false where id = :'ws_p';
select pg_temp.sender(:'ws_p', '+15550001004');
select pg_temp.contact(:'ws_p', '+14155550031') as c_p \gset
select pg_temp.message(:'c_p', '2026-05-01 11:00Z'::timestamptz + make_interval(secs => i)) from generate_series(1, 5) i;
select pg_temp.workspace('Busy') as ws_b \gset
select pg_temp.sender(:'ws_b', '+15550001005');
select pg_temp.contact(:'ws_b', '+14155550032') as c_b \gset
select pg_temp.message(:'c_b', '2026-05-01 11:30Z'::timestamptz + make_interval(secs => i)) from generate_series(1, 2) i;
select is(herald.queue_due_messages(2, '2026-05-01 12:00Z'),
  '{"queued": 2, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'with a batch of 2, the active workspace''s 2 messages are queued though the paused one''s are older');
select results_eq(
  format($$ select status::text, count(*)::int, min(send_at), max(send_at) from messages where workspace_id = %L group by status $$, :'ws_p'),
  $$ values ('scheduled', 5, '2026-05-01 11:00:01Z'::timestamptz, '2026-05-01 11:00:05Z'::timestamptz) $$,
  'the paused workspace''s messages are held: still scheduled, send_at unchanged');
select is((select count(*)::int from message_events where workspace_id = :'ws_p'), 5,
  'holding writes no ledger event (only the 5 creations)');
update workspaces set automation_enabled = true where id = :'ws_p';
select is(herald.queue_due_messages(1000, '2026-05-01 12:00Z'),
  '{"queued": 5, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'resumed: the held messages are queued');

-- 5. Cancellations at queue time, with reasons; no sender → failed.
-- The triggers cancel pending messages when a contact changes; these messages are written after
-- the change (as a stale writer would), so only the queueing function can catch them.
select pg_temp.workspace('Cancels') as ws_c \gset
select pg_temp.sender(:'ws_c', '+15550001006');
insert into contacts (workspace_id, phone, deleted_at) values (:'ws_c', '+14155550041', now()) returning id as c_deleted \gset
insert into contacts (workspace_id, phone, opted_out_at) values (:'ws_c', '+14155550042', now()) returning id as c_opted \gset
select pg_temp.contact(:'ws_c', '+14155550043') as c_suppressed \gset
insert into suppressions (workspace_id, phone_hash, reason) values (:'ws_c', herald.phone_hash(:'ws_c', '+14155550043'), 'opted_out');
insert into contacts (workspace_id, phone, controlled_by) values (:'ws_c', '+14155550044', 'human') returning id as c_human \gset
select pg_temp.contact(:'ws_c', '+14155550045') as c_appt \gset
insert into appointments (workspace_id, contact_id, title, starts_at, status) values
  (:'ws_c', :'c_appt', 'Cancelled call', '2026-04-16 12:00Z', 'cancelled') returning id as a_cancelled \gset
insert into appointments (workspace_id, contact_id, title, starts_at, status) values
  (:'ws_c', :'c_appt', 'Done call', '2026-04-14 12:00Z', 'completed') returning id as a_completed \gset
insert into appointments (workspace_id, contact_id, title, starts_at) values
  (:'ws_c', :'c_appt', 'Upcoming call', '2026-04-16 12:00Z') returning id as a_scheduled \gset
insert into sequences (workspace_id, name, status) values (:'ws_c', 'Stopped', 'active') returning id as seq_c \gset
insert into sequence_steps (workspace_id, sequence_id, position, body) values (:'ws_c', :'seq_c', 1, 'Step one') returning id as step_c \gset
select pg_temp.contact(:'ws_c', '+14155550046') as c_enrolled \gset
insert into sequence_enrollments (workspace_id, sequence_id, contact_id, status, stopped_reason, completed_at)
values (:'ws_c', :'seq_c', :'c_enrolled', 'cancelled', 'user_cancelled', now()) returning id as e_stopped \gset
select pg_temp.contact(:'ws_c', '+14155550047') as c_ok \gset
select pg_temp.workspace('No sender') as ws_n \gset
select pg_temp.contact(:'ws_n', '+14155550048') as c_nosender \gset

select pg_temp.message(:'c_deleted', '2026-04-15 11:00Z') as m_deleted \gset
select pg_temp.message(:'c_opted', '2026-04-15 11:00Z') as m_opted \gset
select pg_temp.message(:'c_suppressed', '2026-04-15 11:00Z') as m_suppressed \gset
select pg_temp.message(:'c_human', '2026-04-15 11:00Z') as m_human \gset
select pg_temp.message(:'c_appt', '2026-04-15 11:00Z') as m_appt_cancelled \gset
select pg_temp.message(:'c_appt', '2026-04-15 11:00Z') as m_appt_completed \gset
select pg_temp.message(:'c_appt', '2026-04-15 11:00Z') as m_appt_ok \gset
update messages set appointment_id = :'a_cancelled' where id = :'m_appt_cancelled';
update messages set appointment_id = :'a_completed' where id = :'m_appt_completed';
update messages set appointment_id = :'a_scheduled' where id = :'m_appt_ok';
insert into messages (workspace_id, contact_id, body, send_at, enrollment_id, step_id)
values (:'ws_c', :'c_enrolled', 'Step one', '2026-04-15 11:00Z', :'e_stopped', :'step_c') returning id as m_enrolled \gset
select pg_temp.message(:'c_ok', '2026-04-15 11:00Z') as m_ok \gset
select pg_temp.message(:'c_ok', '2026-04-15 11:00Z', 'scheduled', 'whatsapp') as m_whatsapp \gset
select pg_temp.message(:'c_nosender', '2026-04-15 11:00Z') as m_nosender \gset

select is(herald.queue_due_messages(1000, '2026-04-15 12:00Z'),
  '{"queued": 2, "cancelled": 7, "failed": 2, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'cancellations: 7 cancelled, 2 failed for want of a sender, 2 queued');
select results_eq(
  format($$ select id, status::text, coalesce(cancel_reason::text, '-') from messages where id in (%L, %L, %L, %L, %L, %L, %L, %L, %L) order by id $$,
    :'m_deleted', :'m_opted', :'m_suppressed', :'m_human', :'m_appt_cancelled', :'m_appt_completed', :'m_enrolled', :'m_ok', :'m_appt_ok'),
  format($$ select * from (values (%L::uuid, 'cancelled', 'contact_deleted'), (%L::uuid, 'cancelled', 'contact_opted_out'),
                                  (%L::uuid, 'cancelled', 'contact_opted_out'), (%L::uuid, 'cancelled', 'human_takeover'),
                                  (%L::uuid, 'cancelled', 'appointment_cancelled'), (%L::uuid, 'cancelled', 'appointment_completed'),
                                  (%L::uuid, 'cancelled', 'sequence_stopped'), (%L::uuid, 'queued', '-'), (%L::uuid, 'queued', '-')) v order by 1 $$,
    :'m_deleted', :'m_opted', :'m_suppressed', :'m_human', :'m_appt_cancelled', :'m_appt_completed', :'m_enrolled', :'m_ok', :'m_appt_ok'),
  'deleted, opted out, suppressed, human, appointment cancelled or completed, enrollment stopped: each cancelled with its reason; the rest queued');
select results_eq(
  format($$ select e.reason from message_events e where e.message_id in (%L, %L, %L, %L, %L, %L, %L) and e.to_status = 'cancelled' order by e.reason $$,
    :'m_deleted', :'m_opted', :'m_suppressed', :'m_human', :'m_appt_cancelled', :'m_appt_completed', :'m_enrolled'),
  $$ values ('appointment_cancelled'), ('appointment_completed'), ('contact_deleted'), ('contact_opted_out'), ('contact_opted_out'),
            ('human_takeover'), ('sequence_stopped') $$,
  'each cancellation wrote a ledger event with its reason');
select results_eq(
  format($$ select m.status::text, e.reason, m.last_error like 'no sender%%' from messages m
            join message_events e on e.message_id = m.id and e.to_status = 'failed'
            where m.id in (%L, %L) order by m.id $$, :'m_nosender', :'m_whatsapp'),
  $$ values ('failed', 'no_sender', true), ('failed', 'no_sender', true) $$,
  'a message with no sender to send from (no default sender, or none for its channel) fails with reason no_sender');
select is(herald.queue_due_messages(1000, '2026-04-15 12:00Z'),
  '{"queued": 0, "cancelled": 0, "failed": 0, "deferred_quiet_hours": 0, "deferred_daily_limit": 0}'::jsonb,
  'cancellations, run again: nothing moves twice');

-- 6. Daylight saving in the queue: Paris, the night of the spring change; New York, likewise.
select pg_temp.workspace('DST spring', 'UTC', '21:00', '08:00') as ws_dst \gset
select pg_temp.sender(:'ws_dst', '+15550001007');
select pg_temp.contact(:'ws_dst', '+14155550051', 'Europe/Paris') as c_dst_paris \gset
select pg_temp.contact(:'ws_dst', '+14155550052', 'America/New_York') as c_dst_ny \gset
select pg_temp.message(:'c_dst_paris', '2026-03-28 21:55Z') as m_dst_paris \gset
select is((herald.queue_due_messages(1000, '2026-03-28 22:00Z') ->> 'deferred_quiet_hours')::int, 1,
  'DST Paris: 23:00 CET is quiet');
select ok((select send_at >= '2026-03-29 06:00Z' and send_at < '2026-03-29 06:30Z' from messages where id = :'m_dst_paris'),
  'DST Paris: deferred to 08:00 CEST on 2026-03-29 (06:00 UTC, not 07:00)');
select pg_temp.message(:'c_dst_ny', '2026-03-08 04:55Z') as m_dst_ny \gset
select is((herald.queue_due_messages(1000, '2026-03-08 05:00Z') ->> 'deferred_quiet_hours')::int, 1,
  'DST New York: midnight EST is quiet');
select ok((select send_at >= '2026-03-08 12:00Z' and send_at < '2026-03-08 12:30Z' from messages where id = :'m_dst_ny'),
  'DST New York: deferred to 08:00 EDT on 2026-03-08 (12:00 UTC, not 13:00)');

/** Section - claim_messages: eligibility re-checked in the claim */
-- Everything above is paused now, so the claims below see only their own workspaces.
update workspaces set automation_enabled = false;

select pg_temp.workspace('Claims') as ws_k \gset
select pg_temp.sender(:'ws_k', '+15550002001') as s_k \gset
select pg_temp.contact(:'ws_k', '+14155550061') as k_ok \gset
select pg_temp.contact(:'ws_k', '+14155550062') as k_human \gset
select pg_temp.contact(:'ws_k', '+14155550063') as k_deleted \gset
select pg_temp.contact(:'ws_k', '+14155550064') as k_opted \gset
select pg_temp.contact(:'ws_k', '+14155550065') as k_stale \gset
select pg_temp.contact(:'ws_k', '+14155550066') as k_other \gset
select pg_temp.message(:'k_ok', now() - interval '1 minute') as mk_ok \gset
select pg_temp.message(:'k_human', now() - interval '1 minute') as mk_human \gset
select pg_temp.message(:'k_deleted', now() - interval '1 minute') as mk_deleted \gset
select pg_temp.message(:'k_opted', now() - interval '1 minute') as mk_opted \gset
select pg_temp.message(:'k_stale', now() - interval '1 minute') as mk_stale \gset
select is((herald.queue_due_messages(1000, now()) ->> 'queued')::int, 5, 'claims: 5 messages queued');
select pg_temp.message(:'k_other', now() + interval '1 hour', 'queued') as mk_future \gset
select pg_temp.message(:'k_other', now() - interval '1 minute', 'scheduled') as mk_scheduled \gset

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
select is((select pg_temp.secs(send_not_before) from claim1), 0::numeric, 'its send slot is now');

/** Section - record_send_result */
select pg_temp.workspace('Records') as ws_r \gset
update workspaces set retry_base_seconds = 60, max_attempts = 3 where id = :'ws_r';
select pg_temp.sender(:'ws_r', '+15550002002');
select pg_temp.contact(:'ws_r', '+14155550071') as r_sent \gset
select pg_temp.contact(:'ws_r', '+14155550072') as r_perm \gset
select pg_temp.contact(:'ws_r', '+14155550073') as r_unsub \gset
select pg_temp.contact(:'ws_r', '+14155550074') as r_trans \gset
select pg_temp.contact(:'ws_r', '+14155550075') as r_notsent \gset
select pg_temp.contact(:'ws_r', '+14155550076') as r_stale \gset
select pg_temp.contact(:'ws_r', '+14155550077') as r_early \gset
select pg_temp.message(:'r_sent', now() - interval '1 minute', 'queued') as mr_sent \gset
select pg_temp.message(:'r_perm', now() - interval '1 minute', 'queued') as mr_perm \gset
select pg_temp.message(:'r_unsub', now() - interval '1 minute', 'queued') as mr_unsub \gset
select pg_temp.message(:'r_unsub', now() + interval '1 day') as mr_unsub_later \gset
select pg_temp.message(:'r_trans', now() - interval '1 minute', 'queued') as mr_trans \gset
select pg_temp.message(:'r_notsent', now() - interval '1 minute', 'queued') as mr_notsent \gset
select pg_temp.message(:'r_stale', now() - interval '1 minute', 'queued') as mr_stale \gset
select pg_temp.message(:'r_early', now() - interval '1 minute', 'queued') as mr_early \gset
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
                   pg_temp.secs(m.send_at) between 30 and 90, e.reason
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
select ok((select pg_temp.secs(send_at) between 60 and 180 from messages where id = :'mr_trans'),
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
select pg_temp.workspace('Slots') as ws_s \gset
select pg_temp.sender(:'ws_s', '+15550002003', 2) as s_s \gset
select pg_temp.contact(:'ws_s', '+14155550081') as c_s \gset
create temp table slotted as
  select i, pg_temp.message(:'c_s', now() - interval '1 minute' + make_interval(secs => i), 'queued') as id
  from generate_series(1, 10) i;
create temp table claim5 as select * from herald.claim_messages(4);
select results_eq(
  $$ select s.i, pg_temp.secs(c.send_not_before) from claim5 c join slotted s on s.id = c.message_id order by s.i $$,
  $$ values (1, 0.0), (2, 0.5), (3, 1.0), (4, 1.5) $$,
  'mps 2: the first claim takes the 4 earliest, in slots 0.5 s apart starting now');
create temp table claim6 as select * from herald.claim_messages(100);
select results_eq(
  $$ select s.i, pg_temp.secs(c.send_not_before) from claim6 c join slotted s on s.id = c.message_id order by s.i $$,
  $$ values (5, 2.0), (6, 2.5), (7, 3.0), (8, 3.5), (9, 4.0), (10, 4.5) $$,
  'a second claim continues after the first''s last slot, never reusing one');
select is((select pg_temp.secs(next_slot_at) from herald.sender_slots where sender_id = :'s_s'), 5.0,
  'the sender''s next free slot is after the last one taken');
select is((select count(*)::int from message_attempts a join slotted s on s.id = a.message_id), 10,
  'one attempt row per claimed message');

select pg_temp.workspace('Lease') as ws_e \gset
select pg_temp.sender(:'ws_e', '+15550002004', 1) as s_e \gset
select pg_temp.contact(:'ws_e', '+14155550091') as c_e \gset
select pg_temp.message(:'c_e', now() - interval '1 minute' + make_interval(secs => i), 'queued') from generate_series(1, 30) i;
create temp table claim7 as select * from herald.claim_messages(100, interval '10 seconds');
select results_eq($$ select count(*)::int, max(pg_temp.secs(send_not_before)) from claim7 $$, $$ values (6, 5.0) $$,
  'mps 1 and a 10 s lease: only the 6 messages whose slot falls within half the lease (0..5 s) are claimed');
select results_eq(
  format($$ select status::text, count(*)::int, sum(attempts)::int from messages where workspace_id = %L group by status order by status $$, :'ws_e'),
  $$ values ('queued', 24, 0), ('sending', 6, 6) $$,
  'the other 24 stay queued, no attempt spent');
-- (and longer where the slot plus the provider call reaches further: see lease_coverage.test.sql)
select ok((select bool_and(lease_expires_at >= now() + interval '10 seconds') from messages where workspace_id = :'ws_e' and status = 'sending'),
  'the claimed ones hold the 10 s lease');

/** Section - apply_provider_status: forward by rank only */
select count(*) as events_sent_before from message_events where message_id = :'mr_sent' \gset
select is(herald.apply_provider_status('SM' || md5('sent'), 'delivered', null, '{"MessageStatus":"delivered"}', 'tok-1'), 'applied',
  'delivered after sent: applied');
select results_eq(
  format($$ select m.status::text, m.delivered_at is not null, a.provider_status, a.last_callback_at is not null
            from messages m join message_attempts a on a.message_id = m.id where m.id = %L $$, :'mr_sent'),
  $$ values ('delivered', true, 'delivered'::text, true) $$,
  'the message and its attempt are delivered');
select is(herald.apply_provider_status('SM' || md5('sent'), 'delivered', null, '{"MessageStatus":"delivered"}', 'tok-1'), 'duplicate',
  'the same callback again (same idempotency token): duplicate');
select is((select count(*)::int from provider_events where idempotency_token = 'tok-1'), 1, 'the duplicate was not stored twice');
select is(herald.apply_provider_status('SM' || md5('sent'), 'sent', null, '{"MessageStatus":"sent"}', 'tok-2'), 'unchanged',
  'a late sent after delivered: unchanged');
select is(herald.apply_provider_status('SM' || md5('sent'), 'queued', null, '{"MessageStatus":"queued"}', 'tok-3'), 'unchanged',
  'a late queued after delivered: unchanged');
select is(herald.apply_provider_status('SM' || md5('sent'), 'undelivered', 30003, '{"MessageStatus":"undelivered"}', 'tok-4'), 'unchanged',
  'undelivered after delivered: unchanged (delivered is not taken back)');
select results_eq(
  format($$ select m.status::text, m.last_error_code, a.provider_status from messages m join message_attempts a on a.message_id = m.id
            where m.id = %L $$, :'mr_sent'),
  $$ values ('delivered', null::integer, 'delivered'::text) $$,
  'after late, duplicate and contradicting callbacks the message and its attempt are still delivered');
select is((select count(*)::int from message_events where message_id = :'mr_sent'), :events_sent_before + 1,
  'only the one real change reached the ledger');
select results_eq(
  format($$ select idempotency_token, outcome, message_id = %L from provider_events where idempotency_token like 'tok-%%' order by id $$, :'mr_sent'),
  $$ values ('tok-1', 'applied', true), ('tok-2', 'unchanged', true), ('tok-3', 'unchanged', true), ('tok-4', 'unchanged', true) $$,
  'every callback is stored once, with what was done with it');
select is(herald.apply_provider_status('SM' || md5('nobody'), 'delivered', null, '{}', 'tok-5'), 'unknown_sid',
  'an unknown sid: unknown_sid');
select results_eq($$ select outcome, message_id, workspace_id from provider_events where idempotency_token = 'tok-5' $$,
  $$ values ('unknown_sid', null::uuid, null::uuid) $$, 'and it is kept, attached to nothing');
select is(herald.apply_provider_status('SM' || md5('notsent'), 'undelivered', 30003, '{}', 'tok-6'), 'applied',
  'undelivered after sent: applied');
select results_eq(
  format($$ select m.status::text, m.last_error_code, e.reason from messages m
            join message_events e on e.message_id = m.id and e.to_status = 'undelivered' where m.id = %L $$, :'mr_notsent'),
  $$ values ('undelivered', 30003, 'provider_undelivered_30003') $$,
  'undelivered keeps the error code, in the message and the ledger');
select results_eq(
  format($$ select coalesce(from_status::text, '-') || '>' || to_status::text from message_events where message_id = %L order by id $$, :'mr_sent'),
  $$ values ('->queued'), ('queued>sending'), ('sending>sent'), ('sent>delivered') $$,
  'the ledger of a delivered message: each step once');

/** Section - apply_inbound: STOP, START, replies, routing */
select pg_temp.workspace('Inbound') as ws_i \gset
select pg_temp.sender(:'ws_i', '+15550003001');
insert into sequences (workspace_id, name, status, stop_on_reply) values (:'ws_i', 'Stops on reply', 'active', true) returning id as seq_stop \gset
insert into sequences (workspace_id, name, status, stop_on_reply) values (:'ws_i', 'Keeps going', 'active', false) returning id as seq_go \gset
insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
  (:'ws_i', :'seq_stop', 1, '1 hour', 'Hello'), (:'ws_i', :'seq_stop', 2, '1 day', 'Again'),
  (:'ws_i', :'seq_go', 1, '2 hours', 'News');
select pg_temp.contact(:'ws_i', '+14155550101') as i_stop \gset
select pg_temp.contact(:'ws_i', '+14155550102') as i_reply \gset
select herald.enroll(s, :'i_stop', now()) as ie_stop from sequences s where s.id = :'seq_stop' \gset
select pg_temp.message(:'i_stop', now() + interval '1 day') as im_plain \gset
select herald.enroll(s, :'i_reply', now()) as ie_reply_stop from sequences s where s.id = :'seq_stop' \gset
select herald.enroll(s, :'i_reply', now()) as ie_reply_go from sequences s where s.id = :'seq_go' \gset

select is(herald.apply_inbound('+14155550101', '+15550003001', '  stop ', 'SM' || md5('in-1'), '{}'), 'opted_out',
  'STOP (any case, any spacing): opted_out');
select results_eq(format($$ select opted_out_at is not null, last_inbound_at is not null from contacts where id = %L $$, :'i_stop'),
  $$ values (true, true) $$, 'the contact is opted out and its reply recorded');
select results_eq(
  format($$ select status::text, cancel_reason::text, count(*)::int from messages where contact_id = %L group by 1, 2 $$, :'i_stop'),
  $$ values ('cancelled', 'contact_opted_out', 2) $$, 'every pending message of the contact is cancelled');
select results_eq(format($$ select status::text, stopped_reason from sequence_enrollments where id = %L $$, :'ie_stop'),
  $$ values ('cancelled', 'contact_opted_out') $$, 'and its enrollment stopped');
select ok(herald.is_suppressed(:'ws_i', '+14155550101'), 'the number is suppressed');
select is(herald.apply_inbound('+14155550101', '+15550003001', 'Start', 'SM' || md5('in-2'), '{}'), 'opted_in',
  'START: opted_in');
select results_eq(format($$ select opted_out_at is null, herald.is_suppressed(workspace_id, phone) from contacts where id = %L $$, :'i_stop'),
  $$ values (true, false) $$, 'the contact is opted back in and the suppression lifted');
select is((select count(*)::int from messages where contact_id = :'i_stop' and status = 'cancelled'), 2,
  'what was cancelled stays cancelled');

select is(herald.apply_inbound('+14155550102', '+15550003001', 'Who is this?', 'SM' || md5('in-3'), '{}'), 'replied',
  'any other text: replied');
select results_eq(
  format($$ select e.id, e.status::text, coalesce(e.stopped_reason, '-'), m.status::text, coalesce(m.cancel_reason::text, '-')
            from sequence_enrollments e join messages m on m.enrollment_id = e.id where e.contact_id = %L order by e.id $$, :'i_reply'),
  format($$ select * from (values (%L::uuid, 'cancelled', 'replied', 'cancelled', 'replied'),
                                  (%L::uuid, 'active', '-', 'scheduled', '-')) v order by 1 $$, :'ie_reply_stop', :'ie_reply_go'),
  'the stop_on_reply enrollment stops (replied) with its pending step; the other keeps going');
select results_eq(format($$ select opted_out_at is null, last_inbound_at is not null from contacts where id = %L $$, :'i_reply'),
  $$ values (true, true) $$, 'a reply is not an opt-out, and is recorded');
select is(herald.apply_inbound('+14155550102', '+15550003001', 'Who is this?', 'SM' || md5('in-3'), '{}'), 'duplicate',
  'the same inbound message again: duplicate');

-- The rest of the STOP and START families.
create temp table keywords as
  select k, pg_temp.contact(:'ws_i', '+1415555020' || n) as contact_id, '+1415555020' || n as phone
  from unnest(array['STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT']) with ordinality u(k, n);
select results_eq(
  $$ select k, herald.apply_inbound(phone, '+15550003001', lower(k), 'SM' || md5('kw-' || k), '{}') from keywords order by k $$,
  $$ values ('CANCEL', 'opted_out'), ('END', 'opted_out'), ('QUIT', 'opted_out'), ('STOPALL', 'opted_out'), ('UNSUBSCRIBE', 'opted_out') $$,
  'STOPALL, UNSUBSCRIBE, CANCEL, END and QUIT opt out too');
select is((select count(*)::int from keywords k join contacts c on c.id = k.contact_id where c.opted_out_at is not null), 5,
  'all five contacts are opted out');
select results_eq(
  $$ select herald.apply_inbound(phone, '+15550003001', r, 'SM' || md5('kw2-' || k), '{}')
     from keywords join (values ('STOPALL', 'YES'), ('UNSUBSCRIBE', 'unstop')) v(kk, r) on kk = k order by k $$,
  $$ values ('opted_in'), ('opted_in') $$,
  'YES and UNSTOP opt back in');

-- A number Herald does not know: its STOP is kept as a suppression, and a contact added later is opted out.
select is(herald.apply_inbound('+14155550999', '+15550003001', 'STOP', 'SM' || md5('in-4'), '{}'), 'opted_out',
  'STOP from an unknown number: opted_out');
select ok(herald.is_suppressed(:'ws_i', '+14155550999'), 'the unknown number is suppressed');
select pg_temp.contact(:'ws_i', '+14155550999') as i_late \gset
select ok((select opted_out_at is not null from contacts where id = :'i_late'),
  'a contact added later with that number starts opted out');

-- Routing: the To number names the workspace.
select pg_temp.workspace('Inbound two') as ws_i2 \gset
select pg_temp.sender(:'ws_i2', '+15550003002');
select pg_temp.contact(:'ws_i', '+14155550777') as i_both_1 \gset
select pg_temp.contact(:'ws_i2', '+14155550777') as i_both_2 \gset
select is(herald.apply_inbound('+14155550777', '+15550003002', 'STOP', 'SM' || md5('in-5'), '{}'), 'opted_out',
  'STOP to the second workspace''s number');
select results_eq(
  format($$ select id, opted_out_at is not null from contacts where id in (%L, %L) order by id $$, :'i_both_1', :'i_both_2'),
  format($$ select * from (values (%L::uuid, false), (%L::uuid, true)) v order by 1 $$, :'i_both_1', :'i_both_2'),
  'only the contact of the workspace that owns the To number is opted out');
select is(herald.apply_inbound('+14155550777', '+15550009999', 'hello', 'SM' || md5('in-6'), '{}'), 'unrouted',
  'a To number no sender has: unrouted');

/** Section - cron jobs and privileges */
select results_eq(
  $$ select jobname::text collate "default", schedule, command from cron.job where jobname in ('herald-queue-due-messages', 'herald-reap-expired-leases') order by jobname $$,
  $$ values ('herald-queue-due-messages'::text, '* * * * *'::text, 'select herald.queue_due_messages()'::text),
            ('herald-reap-expired-leases', '* * * * *', 'select herald.reap_expired_leases()') $$,
  'pg_cron queues due messages and reaps expired leases every minute');

/** Section - a queued message has a sender (claims go sender by sender) */
select pg_temp.workspace('Unsent Co') as ws_u \gset
select pg_temp.contact(:'ws_u', '+14155550095') as u_c \gset
select throws_ok(format($$ select pg_temp.message(%L, now() - interval '1 minute', 'queued') $$, :'u_c'), '23514', null,
  'no message is queued in a workspace without a default sender: nothing could ever send it');
select pg_temp.sender(:'ws_u', '+15550009501', 10) as u_s \gset
select is((select count(*)::int from herald.sender_slots where sender_id = :'u_s'), 1, 'a new sender has its rate-slot row');
select pg_temp.message(:'u_c', now() - interval '1 minute', 'queued') as u_m \gset
select is((select sender_id from messages where id = :'u_m'), :'u_s'::uuid,
  'queued without a sender, a message is bound to the default one');

select tests.create_user('mallory');
select tests.authenticate_as('mallory');
select throws_ok($$ select * from herald.claim_messages(10) $$, '42501', null, 'authenticated cannot claim messages');
select throws_ok(format($$ select herald.record_send_result(%L, 1, 'sent', 'SMx') $$, :'mk_ok'), '42501', null,
  'authenticated cannot record send results');
select throws_ok($$ select herald.apply_provider_status('SMx', 'delivered', null, '{}') $$, '42501', null,
  'authenticated cannot apply status callbacks');
select throws_ok($$ select herald.apply_inbound('+14155550101', '+15550003001', 'STOP', 'SMx', '{}') $$, '42501', null,
  'authenticated cannot apply inbound messages');
select throws_ok($$ select herald.apply_status_event('SMx', 'delivered', null) $$, '42501', null,
  'authenticated cannot apply a stored callback either');
select throws_ok($$ select herald.reap_expired_leases() $$, '42501', null, 'authenticated cannot reap leases');
select throws_ok($$ select herald.queue_due_messages() $$, '42501', null, 'authenticated cannot run the queueing');
select tests.authenticate_as_service_role();
select lives_ok($$ select herald.reap_expired_leases() $$, 'the service role can');
select tests.clear_authentication();

select * from finish();
rollback;
