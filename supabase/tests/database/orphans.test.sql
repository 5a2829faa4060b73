-- The catalog-wide orphan check. Every foreign key of every table in public and herald
-- (generically, from pg_constraint), and every *_id column that has no foreign key and no
-- comment saying why, must find its row. Every test file rolls back, so this one first builds a
-- realistic dataset through the RPCs and runs every kind of deletion over it (in its own
-- transaction, rolled back too), then checks the whole database: that dataset and whatever is
-- committed (the demo data).
begin;
select plan(13);

select tests.create_user('zoe');
select tests.create_user('yan');
select tests.get_user_id('zoe') as zoe, tests.get_user_id('yan') as yan \gset

-- *_id columns with no foreign key and no "no foreign key" comment, each checked against the
-- table its name points to (contact_id → contacts.id); one it cannot place counts as -1.
create function pg_temp.unkeyed_id_orphans() returns table (column_name text, orphans bigint)
language plpgsql as $$
declare
  r record;
  v_target regclass;
begin
  for r in
    select c.oid as tbl, a.attname as col, regexp_replace(a.attname, '_id$', '') as stem
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'herald') and c.relkind in ('r', 'p')
      and a.attnum > 0 and not a.attisdropped and a.attname like '%\_id'
      and not exists (select 1 from pg_constraint k where k.conrelid = c.oid and k.contype = 'f' and a.attnum = any (k.conkey))
      and coalesce(col_description(c.oid, a.attnum), '') !~* 'no foreign key'
  loop
    column_name := r.tbl::regclass::text || '.' || r.col;
    select t.oid into v_target
    from pg_class t join pg_namespace tn on tn.oid = t.relnamespace
    where tn.nspname in ('public', 'herald') and t.relkind in ('r', 'p')
      and t.relname in (r.stem || 's', r.stem || 'es', regexp_replace(r.stem, 'y$', 'ies'))
      and exists (select 1 from pg_attribute ta where ta.attrelid = t.oid and ta.attname = 'id')
    order by (tn.nspname = 'public') desc
    limit 1;
    if v_target is null then
      orphans := -1;
    else
      execute format('select count(*) from %s c where c.%I is not null and not exists (select 1 from %s p where p.id = c.%I)',
                     r.tbl::regclass, r.col, v_target, r.col) into orphans;
    end if;
    return next;
  end loop;
end;
$$;

/** Section - a realistic dataset, through the RPCs, and every kind of deletion over it */
select tests.authenticate_as('zoe');
select create_workspace('Orphan check', 'Europe/Berlin') as ws \gset
insert into workspace_members (workspace_id, user_id, role) values (:'ws', :'yan', 'agent');
insert into senders (workspace_id, channel, phone_number, status, is_default)
values (:'ws', 'sms', '+15005550006', 'connected', true) returning id as s_default \gset
insert into senders (workspace_id, channel, status) values (:'ws', 'sms', 'disconnected') returning id as s_sms \gset
insert into senders (workspace_id, channel, status, created_at) values (:'ws', 'whatsapp', 'qr_pending', now() - interval '3 days') returning id as s_stale \gset
insert into whatsapp_groups (workspace_id, sender_id, external_id)
select :'ws', :'s_stale', 'g' || i || '@g.us' from generate_series(1, 5) i;
insert into campaigns (workspace_id, name) values (:'ws', 'Kept'), (:'ws', 'Dropped');
select id as k_kept from campaigns where name = 'Kept' \gset
select id as k_dropped from campaigns where name = 'Dropped' \gset
insert into campaign_groups (workspace_id, campaign_id, group_id)
select :'ws', k.id, g.id from campaigns k cross join whatsapp_groups g where k.workspace_id = :'ws';
insert into sequences (workspace_id, name, status) values (:'ws', 'Kept', 'active'), (:'ws', 'Archived', 'active'), (:'ws', 'Deleted', 'active');
insert into sequence_steps (workspace_id, sequence_id, position, delay, body)
select :'ws', s.id, p, make_interval(hours => p), 'Step ' || p || ', {{first_name}}'
from sequences s cross join generate_series(1, 3) p where s.workspace_id = :'ws';
insert into queue_settings (workspace_id, default_sequence_id) select :'ws', id from sequences where name = 'Deleted' and workspace_id = :'ws';
insert into contacts (workspace_id, phone, first_name)
select :'ws', '+4915100000' || lpad(i::text, 2, '0'), 'Person ' || i from generate_series(1, 30) i;
insert into contact_tags (workspace_id, contact_id, tag) select :'ws', id, 'imported' from contacts where workspace_id = :'ws';
insert into contact_variables (workspace_id, contact_id, key, value) select :'ws', id, 'code', 'x' from contacts where workspace_id = :'ws';
select count(*) from (select enroll_contact(s.id, c.id) from sequences s cross join contacts c
                      where s.workspace_id = :'ws' and c.workspace_id = :'ws') e;
select count(*) from (select schedule_message(c.id, 'Hello ' || i, now() + make_interval(hours => i))
                      from contacts c cross join generate_series(1, 3) i where c.workspace_id = :'ws') m;
insert into appointments (workspace_id, contact_id, title, starts_at)
select :'ws', id, 'Visit', now() + interval '5 days' from contacts where workspace_id = :'ws';
select count(*) from (select schedule_message(a.contact_id, 'See you', a.starts_at - interval '1 day', appointment_id => a.id)
                      from appointments a where a.workspace_id = :'ws') r;

-- the dispatcher sends a third of it, through the senders; the rest waits. Which messages is
-- picked by their place in a fixed order (contact, time, body, sequence), not by their random ids,
-- so every run builds the same history.
select tests.authenticate_as_service_role();
create temp table pick on commit drop as
select m.id, (row_number() over (order by c.phone, m.send_at, m.body, s.name) - 1)::int as n
from messages m
join contacts c on c.id = m.contact_id
left join sequence_enrollments e on e.id = m.enrollment_id
left join sequences s on s.id = e.sequence_id
where m.workspace_id = :'ws';
update messages m set campaign_id = case when p.n % 2 = 0 then :'k_kept'::uuid else :'k_dropped'::uuid end
from pick p where p.id = m.id and m.body like 'Hello%';
update messages m set sender_id = case p.n % 3 when 0 then :'s_default'::uuid when 1 then :'s_sms'::uuid else null end
from pick p where p.id = m.id;
update messages m set status = 'queued' from pick p where p.id = m.id and p.n % 3 = 0;
update messages m set status = 'sending', lease_expires_at = now() + interval '1 minute', attempts = 1
from pick p where p.id = m.id and m.status = 'queued' and (p.n / 3) % 2 = 0;
insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid)
select workspace_id, id, 1, 'SM' || md5(id::text) from messages where workspace_id = :'ws' and status = 'sending';
update messages set status = 'sent', lease_expires_at = null, sent_at = now() where workspace_id = :'ws' and status = 'sending';
-- and the provider reports some of it undelivered or failed afterwards: sequence steps among
-- them had already scheduled their next step, which stopping the enrollment must cancel
update messages m set status = 'undelivered', failed_at = now(), last_error_code = 30003
from pick p where p.id = m.id and m.status = 'sent' and (p.n / 6) % 4 = 0;
update messages m set status = 'failed', failed_at = now(), last_error_code = 30008
from pick p where p.id = m.id and m.status = 'sent' and (p.n / 6) % 4 = 1;

-- every kind of deletion
select tests.authenticate_as('yan');
select count(*) from (select delete_contact(id) from contacts where workspace_id = :'ws' and first_name in ('Person 1', 'Person 2', 'Person 3', 'Person 4')) d;
select restore_contact(id) from contacts where workspace_id = :'ws' and first_name = 'Person 4';
update contacts set opted_out_at = now() where workspace_id = :'ws' and first_name in ('Person 5', 'Person 6');
update contacts set controlled_by = 'human', assigned_to = auth.uid() where workspace_id = :'ws' and first_name = 'Person 7';
update appointments set starts_at = starts_at + interval '1 day' where workspace_id = :'ws' and contact_id in (
  select id from contacts where first_name in ('Person 8', 'Person 9'));
update appointments set status = 'cancelled' where workspace_id = :'ws' and contact_id in (select id from contacts where first_name = 'Person 10');
delete from appointments where workspace_id = :'ws' and contact_id in (select id from contacts where first_name = 'Person 11');
select tests.authenticate_as('zoe');
select count(*) from (select delete_contact(id, true) from contacts where workspace_id = :'ws' and first_name in ('Person 2', 'Person 5', 'Person 12')) d;
delete from contacts where workspace_id = :'ws' and first_name = 'Person 13';
delete from senders where id = :'s_sms';
update sequences set status = 'archived' where workspace_id = :'ws' and name = 'Archived';
delete from sequences where workspace_id = :'ws' and name = 'Deleted';
delete from campaigns where id = :'k_dropped';
delete from whatsapp_groups where workspace_id = :'ws' and external_id = 'g1@g.us';
select cleanup_stale_senders('1 day');
select tests.clear_authentication();
update contacts set deleted_at = now() - interval '40 days' where workspace_id = :'ws' and first_name = 'Person 3';
select herald.purge_deleted_contacts();
-- and a whole second workspace, built the same way, then deleted
select tests.authenticate_as('yan');
select create_workspace('Gone soon') as ws_gone \gset
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws_gone', 'sms', '+15550001999', 'connected', true);
insert into contacts (workspace_id, phone) values (:'ws_gone', '+4915100000001') returning id as gone_contact \gset
insert into sequences (workspace_id, name, status) values (:'ws_gone', 'S', 'active') returning id as gone_seq \gset
insert into sequence_steps (workspace_id, sequence_id, position, body) values (:'ws_gone', :'gone_seq', 1, 'Hi');
select enroll_contact(:'gone_seq', :'gone_contact');
select schedule_message(:'gone_contact', 'bye');
delete from workspaces where id = :'ws_gone';
select tests.clear_authentication();

select results_eq(
  format($$ select (select count(*) from deletion_log where workspace_id = %1$L and mode = 'soft') >= 4,
                   (select count(*) from deletion_log where workspace_id = %1$L and mode = 'hard') >= 10,
                   (select count(*) from deletion_log where workspace_id = %2$L and entity = 'workspace') = 1,
                   (select count(*) from messages where workspace_id = %1$L and status = 'sent') > 10,
                   (select count(*) from messages where workspace_id = %1$L and status = 'cancelled') > 10,
                   (select count(*) from messages m join sequence_enrollments e on e.id = m.enrollment_id
                    where m.workspace_id = %1$L and m.cancel_reason = 'sequence_stopped'
                      and e.stopped_reason in ('step_undelivered_30003', 'step_failed_30008')) > 0 $$, :'ws', :'ws_gone'),
  $$ values (true, true, true, true, true, true) $$,
  'the dataset went through soft and hard deletes of every kind, with sent and cancelled history, and steps that went out then failed');

/** Section - the checks can find what they look for */
-- an orphan planted behind a foreign key added NOT VALID (which does not check existing rows)
create table public.orphan_probe (id bigint generated always as identity primary key, contact_id uuid);
insert into public.orphan_probe (contact_id) values (gen_random_uuid());
alter table public.orphan_probe add constraint orphan_probe_contact_fkey
  foreign key (contact_id) references public.contacts (id) on delete cascade not valid;
select results_eq($$ select constraint_name, table_name, orphans from tests.foreign_key_orphans() $$,
  $$ values ('orphan_probe_contact_fkey'::text, 'public.orphan_probe'::text, 1::bigint) $$,
  'the foreign-key check finds a planted orphan, and only it');
alter table public.orphan_probe drop constraint orphan_probe_contact_fkey;
select results_eq($$ select column_name, orphans from pg_temp.unkeyed_id_orphans() $$,
  $$ values ('orphan_probe.contact_id'::text, 1::bigint) $$,
  'the *_id check finds it without the foreign key too, by the column''s name');
alter table public.orphan_probe add column widget_id uuid;
select results_eq($$ select column_name, orphans from pg_temp.unkeyed_id_orphans() order by 1 $$,
  $$ values ('orphan_probe.contact_id'::text, 1::bigint), ('orphan_probe.widget_id', -1) $$,
  'and reports a column whose table it cannot place');
drop table public.orphan_probe;

/** Section - zero orphans across the whole database */
select cmp_ok((select count(*)::int from pg_constraint k join pg_class c on c.oid = k.conrelid
               join pg_namespace n on n.oid = c.relnamespace where k.contype = 'f' and n.nspname in ('public', 'herald')),
  '>=', 25, 'Herald has at least 25 foreign keys to check');
select is((select count(*)::int from regexp_matches(tests.orphan_check_sql(), ' union all ', 'g')) + 1,
  (select count(*)::int from pg_constraint k join pg_class c on c.oid = k.conrelid
   join pg_namespace n on n.oid = c.relnamespace where k.contype = 'f' and n.nspname in ('public', 'herald')),
  'the check covers every one of them');
select is_empty($$ select * from tests.foreign_key_orphans() $$,
  'no row anywhere in public or herald points at a missing row through a foreign key');
select is_empty($$ select * from pg_temp.unkeyed_id_orphans() $$,
  'every *_id column without a foreign key either says why or finds its row');
select is_empty($$ select m.id from messages m join contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
                   where m.status in ('scheduled', 'queued')
                     and (c.deleted_at is not null or c.opted_out_at is not null or c.controlled_by = 'human'
                          or herald.is_suppressed(c.workspace_id, c.phone)) $$,
  'no pending message belongs to a deleted, opted-out, suppressed or human-controlled contact');
select is_empty($$ select e.id from sequence_enrollments e
                   join contacts c on c.workspace_id = e.workspace_id and c.id = e.contact_id
                   join sequences s on s.workspace_id = e.workspace_id and s.id = e.sequence_id
                   where e.status = 'active'
                     and (c.deleted_at is not null or c.opted_out_at is not null or c.controlled_by = 'human' or s.status <> 'active') $$,
  'no active enrollment belongs to such a contact or to a sequence that is not active');
select is_empty($$ select m.id from messages m
                   left join sequence_enrollments e on e.workspace_id = m.workspace_id and e.id = m.enrollment_id
                   left join appointments a on a.workspace_id = m.workspace_id and a.id = m.appointment_id
                   where m.status in ('scheduled', 'queued')
                     and ((m.enrollment_id is not null and m.retry_of is null and e.status <> 'active')
                          or (m.appointment_id is not null and a.status <> 'scheduled')) $$,
  'no pending message hangs on a stopped enrollment or an appointment that is off');
select is_empty($$ select m.id from messages m
                   where not exists (select 1 from message_events e where e.workspace_id = m.workspace_id and e.message_id = m.id
                                     and e.from_status is null)
                      or (select e.to_status from message_events e where e.workspace_id = m.workspace_id and e.message_id = m.id
                          order by e.id desc limit 1) is distinct from m.status $$,
  'every message''s ledger starts at its creation and ends at its current status');
select is_empty($$ select l.id from deletion_log l where l.counts::text ~ '\+[0-9]{7,}'
                   union all select 0 from suppressions s where s.phone_hash !~ '^[0-9a-f]{64}$' $$,
  'the deletion log and the suppression list hold no phone number');

select * from finish();
rollback;
