-- Randomized: 2,000 random operations on two workspaces (create, schedule, enroll, soft delete,
-- restore, hard delete, opt out and in, take over and release, senders, sequences, appointments,
-- marking messages sent, the provider reporting them delivered, undelivered or failed,
-- cancelling, queueing), checking after EACH one that
--   no scheduled or queued message belongs to a deleted, opted-out or human-controlled contact,
--   no active enrollment does, no pending message hangs on a stopped enrollment or on an
--   appointment that is no longer scheduled, no pending reminder is past its deadline or expires
--   other than at its appointment's start, no active enrollment is in an archived sequence,
--   and no row is orphaned (every foreign key, generically from pg_constraint);
-- and that every RPC accepts or refuses exactly as its contract says for the state at hand.
--
-- The generator is seeded: set `herald.test_seed` (e.g. PGOPTIONS='-c herald.test_seed=42') to
-- replay a run; otherwise a seed is drawn. It is printed first, so a failure shows it even if
-- the file dies half-way. Ids are picked through arrays in creation order, never by uuid order,
-- and each pick is drawn into a variable before the statement that uses it (random() in a WHERE
-- clause is drawn once per row scanned, as many times as the plan happens to scan), so a seed
-- replays. What the assertions at the end count holds for every seed: every 20th
-- operation sends a message to a new contact (the random ones may go a whole run without a
-- sender to send from), so at least 100 go out in any run.
-- RPCs run with the workspace owner's JWT claims; the dispatcher's and the app's direct writes
-- run as postgres (for speed: 2,000 operations and checks in a few seconds).
begin;
select plan(7);

select tests.create_user('rnd_owner_1');
select tests.create_user('rnd_owner_2');

select coalesce(nullif(current_setting('herald.test_seed', true), ''), floor(random() * 2147483647)::bigint::text)::bigint as seed \gset
select setseed(:seed / 2147483648.0);
select diag(format('randomized: seed %s; replay with PGOPTIONS=''-c herald.test_seed=%s''', :seed, :seed));

create temp table rnd_failures (op integer, kind text, detail text);
create temp table rnd_stats (kind text primary key, done integer not null default 0, refused integer not null default 0);
create temp table rnd_log (op integer primary key, kind text, detail text);
create temp table rnd_sent (op integer primary key);

-- The JWT of the given user, for the RPCs (the role stays postgres).
create function pg_temp.act_as(p_user uuid) returns void
language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true)
$$;

-- Whether schedule_message may be used on the channel: a default sender with a number.
create function pg_temp.has_default_sender(p_workspace_id uuid, p_channel public.channel) returns boolean
language sql as $$
  select exists (select 1 from public.senders s where s.workspace_id = p_workspace_id and s.channel = p_channel
                 and s.is_default and s.phone_number is not null)
$$;

-- The dispatcher's way of sending a pending message: queued, claimed (re-checking the contact,
-- as the claim does), one attempt, sent. True if it went out.
create function pg_temp.send_now(p_id uuid, p_op integer) returns boolean
language plpgsql as $$
declare
  v_m public.messages;
begin
  select * into v_m from public.messages where id = p_id;
  if v_m.status = 'scheduled' then
    update public.messages set status = 'queued' where id = p_id;
  end if;
  update public.messages m set status = 'sending', lease_expires_at = now() + interval '2 minutes', attempts = attempts + 1
  from public.contacts c
  where m.id = p_id and c.workspace_id = m.workspace_id and c.id = m.contact_id
    and c.deleted_at is null and c.opted_out_at is null and c.controlled_by = 'automation';
  if not found then
    return false;
  end if;
  insert into rnd_sent values (p_op);
  insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_sid)
  values (v_m.workspace_id, p_id, v_m.attempts + 1, 'SM' || md5(p_id::text || p_op));
  update public.messages
  set status = 'sent', lease_expires_at = null, sent_at = now() + make_interval(mins => floor(random() * 600)::integer)
  where id = p_id;
  return true;
end;
$$;

-- The pool with the enrollment's scheduled step added, if it has one the pool lacks: an
-- enrollment schedules its first step, a step sent schedules the next.
create function pg_temp.with_scheduled_step(p_pool uuid[], p_enrollment_id uuid) returns uuid[]
language sql as $$
  select p_pool || array(select m.id from public.messages m
                         where m.enrollment_id = p_enrollment_id and m.status = 'scheduled' and not m.id = any (p_pool))
$$;

-- The foreign keys with orphans, as text, or null: tests.orphan_check_sql() (every foreign key
-- of public and herald, from pg_constraint) compiled once into a function, so its plan is made
-- once rather than at each of the 2,000 checks.
select format($f$
  create function pg_temp.fk_violation() returns text
  language plpgsql
  set enable_nestloop = off
  as $body$
  begin
    return (select string_agg(o.constraint_name || ' on ' || o.table_name || ': ' || o.orphans, '; ') from (%s) o where o.orphans > 0);
  end;
  $body$ $f$, tests.orphan_check_sql()) as fk_function \gset
:fk_function;

-- The first violated invariant, or null.
create function pg_temp.violation() returns text
language plpgsql
set enable_nestloop = off
as $$
declare
  v text;
begin
  select coalesce(
    (select format('pending message %s of a deleted, opted-out or human-controlled contact %s', m.id, c.id)
     from public.messages m join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
     where m.status in ('scheduled', 'queued')
       and (c.deleted_at is not null or c.opted_out_at is not null or c.controlled_by = 'human') limit 1),
    (select format('active enrollment %s of a deleted, opted-out or human-controlled contact %s', e.id, c.id)
     from public.sequence_enrollments e join public.contacts c on c.workspace_id = e.workspace_id and c.id = e.contact_id
     where e.status = 'active'
       and (c.deleted_at is not null or c.opted_out_at is not null or c.controlled_by = 'human') limit 1),
    (select format('pending message %s of %s enrollment %s', m.id, e.status, e.id)
     from public.messages m join public.sequence_enrollments e on e.workspace_id = m.workspace_id and e.id = m.enrollment_id
     where m.status in ('scheduled', 'queued') and m.retry_of is null and e.status <> 'active' limit 1),
    (select format('pending reminder %s of %s appointment %s', m.id, a.status, a.id)
     from public.messages m join public.appointments a on a.workspace_id = m.workspace_id and a.id = m.appointment_id
     where m.status in ('scheduled', 'queued') and a.status <> 'scheduled' limit 1),
    (select format('pending reminder %s past its deadline %s, or not expiring at its appointment''s start %s', m.id, m.expires_at, a.starts_at)
     from public.messages m join public.appointments a on a.workspace_id = m.workspace_id and a.id = m.appointment_id
     where m.status in ('scheduled', 'queued') and m.expires_at is not null
       and (m.expires_at <= now() or m.expires_at <> a.starts_at) limit 1),
    (select format('active enrollment %s in %s sequence %s', e.id, s.status, s.id)
     from public.sequence_enrollments e join public.sequences s on s.workspace_id = e.workspace_id and s.id = e.sequence_id
     where e.status = 'active' and s.status <> 'active' limit 1),
    (select format('message %s without its contact', m.id)
     from public.messages m where not exists (select 1 from public.contacts c where c.id = m.contact_id) limit 1))
  into v;
  if v is null then
    v := 'orphans: ' || pg_temp.fk_violation();
  end if;
  return v;
end;
$$;

/** Section - two workspaces to play in */
select tests.authenticate_as('rnd_owner_1');
select create_workspace('Random one', 'America/New_York') as ws1 \gset
insert into senders (workspace_id, channel, phone_number, status, is_default) values (:'ws1', 'sms', '+15005550006', 'connected', true);
select tests.authenticate_as('rnd_owner_2');
select create_workspace('Random two', 'Asia/Tokyo') as ws2 \gset
select tests.clear_authentication();
select set_config('herald.rnd_ws1', :'ws1', true), set_config('herald.rnd_ws2', :'ws2', true) \gset

do $$
declare
  c_ops constant integer := 2000;
  v_kinds constant text[] := array[
    'create_contact', 'schedule', 'enroll', 'soft_delete', 'restore', 'hard_delete', 'opt_out', 'opt_in',
    'take_over', 'release', 'create_sender', 'delete_sender', 'create_sequence', 'archive_sequence',
    'delete_sequence', 'create_appointment', 'move_appointment', 'end_appointment', 'delete_appointment',
    'mark_sent', 'cancel_message', 'queue_message', 'report_outcome'];
  v_weights constant integer[] := array[12, 16, 9, 5, 4, 3, 4, 2, 3, 2, 3, 2, 3, 1, 1, 5, 4, 2, 2, 12, 3, 4, 4];
  v_total integer := (select sum(w) from unnest(v_weights) w);
  v_ws uuid[] := array[current_setting('herald.rnd_ws1')::uuid, current_setting('herald.rnd_ws2')::uuid];
  v_owner uuid[] := array[tests.get_user_id('rnd_owner_1'), tests.get_user_id('rnd_owner_2')];
  -- everything created, in creation order, with its workspace (1 or 2)
  v_contacts uuid[] := '{}';
  v_contact_ws integer[] := '{}';
  v_messages uuid[] := '{}';
  v_sequences uuid[] := '{}';
  v_sequence_ws integer[] := '{}';
  v_senders uuid[] := '{}';
  v_appointments uuid[] := '{}';
  v_i integer;
  v_r integer;
  v_kind text;
  v_w integer;
  v_k integer;
  v_id uuid;
  v_id2 uuid;
  v_c public.contacts;
  v_m public.messages;
  v_s public.sequences;
  v_a public.appointments;
  v_expect text;
  v_got text;
  v_msg text;
  v_detail text;
  v_violation text;
  v_key text;
  v_channel public.channel;
begin
  for v_i in 1 .. c_ops loop
    -- pick an operation by weight
    v_r := floor(random() * v_total)::integer;
    v_k := 0;
    loop
      v_k := v_k + 1;
      v_r := v_r - v_weights[v_k];
      exit when v_r < 0;
    end loop;
    v_kind := case when v_i % 20 = 0 then 'send_new' else v_kinds[v_k] end;
    v_w := 1 + floor(random() * 2)::integer;
    v_expect := null;
    v_got := null;
    v_msg := null;
    v_detail := null;
    perform pg_temp.act_as(v_owner[v_w]);

    -- a random contact (with its workspace's owner acting), for the operations that need one
    if cardinality(v_contacts) > 0 and v_kind in ('schedule', 'enroll', 'soft_delete', 'restore', 'hard_delete', 'opt_out',
                                                  'opt_in', 'take_over', 'release', 'create_appointment') then
      v_k := 1 + floor(random() * cardinality(v_contacts))::integer;
      v_id := v_contacts[v_k];
      v_w := v_contact_ws[v_k];
      perform pg_temp.act_as(v_owner[v_w]);
      select * into v_c from public.contacts where id = v_id;
      if not found then
        v_c := null;
      end if;
    elsif v_kind in ('schedule', 'enroll', 'soft_delete', 'restore', 'hard_delete', 'opt_out', 'opt_in', 'take_over',
                     'release', 'create_appointment') then
      v_kind := 'create_contact';
    end if;

    begin
      case v_kind
      when 'send_new' then
        -- The guaranteed send: a new contact of a number never used, a message to it (step 1 of
        -- an active sequence when the workspace has one), a default sender if there is none
        -- (as the app would connect one), and the dispatcher's way out.
        if not exists (select 1 from public.senders s where s.workspace_id = v_ws[v_w] and s.channel = 'sms'
                       and s.is_default and s.phone_number is not null) then
          insert into public.senders (workspace_id, channel, phone_number, status, is_default)
          values (v_ws[v_w], 'sms', '+1500666' || lpad(v_i::text, 4, '0'), 'connected', true)
          returning id into v_id;
          v_senders := v_senders || v_id;
        end if;
        insert into public.contacts (workspace_id, phone, first_name) values (v_ws[v_w], '+1415666' || lpad(v_i::text, 4, '0'), 'New')
        returning id into v_id;
        v_contacts := v_contacts || v_id;
        v_contact_ws := v_contact_ws || v_w;
        -- (the generator's sequences have steps, all SMS)
        select s.id into v_id2 from unnest(v_sequences, v_sequence_ws) with ordinality x(id, w, n)
        join public.sequences s on s.id = x.id and s.status = 'active'
        where x.w = v_w order by x.n limit 1;
        begin
          if v_id2 is not null and random() < 0.5 then
            v_messages := pg_temp.with_scheduled_step(v_messages, public.enroll_contact(v_id2, v_id));
          else
            v_messages := v_messages || public.schedule_message(v_id, 'new ' || v_i, now());
          end if;
          v_id2 := v_messages[cardinality(v_messages)];
          if not pg_temp.send_now(v_id2, v_i) then
            v_got := 'not sent';
            v_msg := 'a message to a new contact, with a sender, did not go out';
          end if;
          v_messages := pg_temp.with_scheduled_step(v_messages, (select m.enrollment_id from public.messages m where m.id = v_id2));
        exception when others then
          v_got := sqlstate;
          v_msg := sqlerrm;
        end;

      when 'create_contact' then
        begin
          insert into public.contacts (workspace_id, phone, first_name, last_name)
          values (v_ws[v_w], '+1415555' || lpad(floor(random() * 40)::integer::text, 4, '0'),
                  (array['Ada', 'Bo', 'Cy', '{{last_name}}', 'D\1&'])[1 + floor(random() * 5)::integer], 'N' || v_i)
          returning id into v_id;
          v_contacts := v_contacts || v_id;
          v_contact_ws := v_contact_ws || v_w;
          if random() < 0.3 then
            insert into public.contact_variables (workspace_id, contact_id, key, value) values (v_ws[v_w], v_id, 'code', 'c' || v_i);
            insert into public.contact_tags (workspace_id, contact_id, tag) values (v_ws[v_w], v_id, 'lead');
          end if;
        exception when unique_violation then
          v_got := sqlstate; -- the number belongs to a live contact already
          v_expect := '23505';
        end;

      when 'schedule' then
        v_key := case when random() < 0.15 then 'key-' || floor(random() * 20)::integer end;
        v_channel := case when random() < 0.2 then 'whatsapp' else 'sms' end;
        v_expect := case
          when v_c.id is null then 'P0002'
          when v_c.deleted_at is not null or v_c.opted_out_at is not null or v_c.controlled_by = 'human'
               or herald.is_suppressed(v_c.workspace_id, v_c.phone) then '55000'
          when not pg_temp.has_default_sender(v_c.workspace_id, v_channel) then '55000'
          when v_key is not null and exists (select 1 from public.messages m where m.workspace_id = v_c.workspace_id
                                             and m.idempotency_key = v_key and m.contact_id <> v_c.id) then '23505'
        end;
        begin
          v_id2 := public.schedule_message(v_id, coalesce('idempotent ' || v_key, 'op ' || v_i),
                                           now() + make_interval(mins => floor(random() * 14400)::integer - 60),
                                           v_channel::text, v_key);
          if not v_id2 = any (v_messages) then
            v_messages := v_messages || v_id2;
          end if;
        exception when others then
          v_got := sqlstate;
          v_msg := sqlerrm;
        end;

      when 'enroll' then
        if cardinality(v_sequences) = 0 then
          v_kind := 'create_sequence';
        else
          v_k := 1 + floor(random() * cardinality(v_sequences))::integer;
          select * into v_s from public.sequences where id = v_sequences[v_k];
          v_expect := case
            when v_s.id is null or v_sequence_ws[v_k] <> v_w then 'P0002'
            when v_c.id is null then 'P0002'
            when v_c.deleted_at is not null or v_c.opted_out_at is not null or v_c.controlled_by = 'human'
                 or herald.is_suppressed(v_c.workspace_id, v_c.phone) then '55000'
            when v_s.status <> 'active' then '55000'
          end;
          begin
            v_messages := pg_temp.with_scheduled_step(v_messages, public.enroll_contact(v_sequences[v_k], v_id));
          exception when others then
            v_got := sqlstate;
            v_msg := sqlerrm;
          end;
        end if;

      when 'soft_delete' then
        v_expect := case when v_c.id is null then 'P0002' when v_c.deleted_at is not null then '55000' end;
        begin
          perform public.delete_contact(v_id);
        exception when others then
          v_got := sqlstate;
          v_msg := sqlerrm;
        end;

      when 'restore' then
        v_expect := case
          when v_c.id is null then 'P0002'
          when v_c.deleted_at is null then '55000'
          when exists (select 1 from public.contacts o where o.workspace_id = v_c.workspace_id and o.phone = v_c.phone
                       and o.deleted_at is null) then '23505'
        end;
        begin
          perform public.restore_contact(v_id);
        exception when others then
          v_got := sqlstate;
          v_msg := sqlerrm;
        end;

      when 'hard_delete' then
        v_expect := case when v_c.id is null then 'P0002' end;
        begin
          perform public.delete_contact(v_id, true);
        exception when others then
          v_got := sqlstate;
          v_msg := sqlerrm;
        end;

      when 'opt_out' then
        update public.contacts set opted_out_at = now() where id = v_id and opted_out_at is null;
      when 'opt_in' then
        -- as a START reply does it: only the contact may opt back in (contacts_guard_opt_in)
        perform set_config('herald.opt_in', 'on', true);
        update public.contacts set opted_out_at = null where id = v_id;
        perform set_config('herald.opt_in', '', true);
      when 'take_over' then
        update public.contacts set controlled_by = 'human', assigned_to = v_owner[v_w] where id = v_id;
      when 'release' then
        update public.contacts set controlled_by = 'automation', assigned_to = null where id = v_id;

      when 'create_sender' then
        begin
          insert into public.senders (workspace_id, channel, phone_number, status, is_default, created_at)
          select v_ws[v_w], ch, num, (array['connecting', 'qr_pending', 'connected', 'disconnected'])[1 + floor(random() * 4)::integer]::public.sender_status,
                 num is not null and random() < 0.5, now() - make_interval(hours => floor(random() * 72)::integer)
          from (select case when random() < 0.5 then 'sms' else 'whatsapp' end::public.channel as ch,
                       case when random() < 0.6 then '+1500555' || lpad(floor(random() * 10000)::integer::text, 4, '0') end as num) x
          returning id into v_id;
          v_senders := v_senders || v_id;
        exception when unique_violation then
          v_got := sqlstate; -- a second default for the channel
          v_expect := '23505';
        end;

      when 'delete_sender' then
        if cardinality(v_senders) > 0 then
          v_id := v_senders[1 + floor(random() * cardinality(v_senders))::integer];
          if random() < 0.5 then
            delete from public.senders where id = v_id;
          else
            -- a pending message claimed through it and reaped back to the queue first
            v_id2 := v_messages[1 + floor(random() * greatest(cardinality(v_messages), 1))::integer];
            update public.messages set sender_id = v_id
            where id = v_id2
              and status in ('scheduled', 'queued')
              and workspace_id = (select s.workspace_id from public.senders s where s.id = v_id);
            delete from public.senders where id = v_id;
          end if;
        end if;

      when 'create_sequence' then
        insert into public.sequences (workspace_id, name, status)
        values (v_ws[v_w], 'seq ' || v_i, case when random() < 0.85 then 'active' else 'draft' end::public.sequence_status)
        returning id into v_id;
        insert into public.sequence_steps (workspace_id, sequence_id, position, delay, body)
        select v_ws[v_w], v_id, p, make_interval(hours => floor(random() * 48)::integer),
               'Step ' || p || ' for {{first_name}} {{last_name}} {{var.code}}'
        from generate_series(1, 1 + floor(random() * 3)::integer) p;
        v_sequences := v_sequences || v_id;
        v_sequence_ws := v_sequence_ws || v_w;
      when 'archive_sequence' then
        if cardinality(v_sequences) > 0 then
          v_id := v_sequences[1 + floor(random() * cardinality(v_sequences))::integer];
          update public.sequences set status = 'archived' where id = v_id;
        end if;
      when 'delete_sequence' then
        if cardinality(v_sequences) > 0 then
          v_id := v_sequences[1 + floor(random() * cardinality(v_sequences))::integer];
          delete from public.sequences where id = v_id;
        end if;

      when 'create_appointment' then
        if v_c.id is not null then
          insert into public.appointments (workspace_id, contact_id, title, starts_at)
          values (v_c.workspace_id, v_c.id, 'appt ' || v_i, now() + make_interval(hours => 1 + floor(random() * 200)::integer))
          returning id into v_id2;
          v_appointments := v_appointments || v_id2;
          v_expect := case
            when v_c.deleted_at is not null or v_c.opted_out_at is not null or v_c.controlled_by = 'human'
                 or herald.is_suppressed(v_c.workspace_id, v_c.phone)
                 or not pg_temp.has_default_sender(v_c.workspace_id, 'sms') then '55000'
          end;
          begin
            v_id2 := public.schedule_message(v_c.id, 'reminder ' || v_i,
                                             now() + make_interval(mins => floor(random() * 3000)::integer - 30),
                                             appointment_id => v_id2);
            v_messages := v_messages || v_id2;
          exception when others then
            v_got := sqlstate;
            v_msg := sqlerrm;
          end;
        end if;
      when 'move_appointment' then
        if cardinality(v_appointments) > 0 then
          v_id := v_appointments[1 + floor(random() * cardinality(v_appointments))::integer];
          v_r := floor(random() * 120)::integer - 48;
          update public.appointments set starts_at = starts_at + make_interval(hours => v_r) where id = v_id;
        end if;
      when 'end_appointment' then
        if cardinality(v_appointments) > 0 then
          v_id := v_appointments[1 + floor(random() * cardinality(v_appointments))::integer];
          update public.appointments
          set status = case when random() < 0.5 then 'cancelled' else 'completed' end::public.appointment_status
          where id = v_id;
        end if;
      when 'delete_appointment' then
        if cardinality(v_appointments) > 0 then
          v_id := v_appointments[1 + floor(random() * cardinality(v_appointments))::integer];
          delete from public.appointments where id = v_id;
        end if;

      when 'mark_sent', 'cancel_message', 'queue_message' then
        if cardinality(v_messages) > 0 then
          -- up to ten draws to find one still pending: most of the pool is history
          for v_k in 1 .. 10 loop
            v_id := v_messages[1 + floor(random() * cardinality(v_messages))::integer];
            select * into v_m from public.messages where id = v_id;
            if not found then
              v_m := null;
            end if;
            exit when v_kind = 'cancel_message' or v_m.status in ('scheduled', 'queued');
          end loop;
          if v_kind = 'cancel_message' then
            select owner into v_id2 from unnest(v_ws, v_owner) x(ws, owner) where x.ws = v_m.workspace_id;
            if v_id2 is not null then
              perform pg_temp.act_as(v_id2);
            end if;
            v_expect := case when v_m.id is null then 'P0002' end;
            begin
              if public.cancel_message(v_id) is distinct from (v_m.status in ('scheduled', 'queued')) then
                v_got := 'wrong answer';
                v_msg := 'cancel_message answered the opposite for a ' || v_m.status || ' message';
              end if;
            exception when others then
              v_got := sqlstate;
              v_msg := sqlerrm;
            end;
          elsif v_kind in ('queue_message', 'mark_sent') and v_m.status = 'scheduled'
                and v_m.sender_id is null
                and not exists (select 1 from public.senders s where s.workspace_id = v_m.workspace_id
                                and s.channel = v_m.channel and s.is_default and s.phone_number is not null) then
            -- nothing to send from: a queued message must have a sender, so queueing it is refused
            v_expect := '23514';
            begin
              update public.messages set status = 'queued' where id = v_id;
            exception when others then
              v_got := sqlstate;
              v_msg := sqlerrm;
            end;
          elsif v_kind = 'queue_message' and v_m.status = 'scheduled' then
            update public.messages set status = 'queued' where id = v_id;
          elsif v_kind = 'mark_sent' and v_m.status in ('scheduled', 'queued') then
            if pg_temp.send_now(v_id, v_i) then
              v_messages := pg_temp.with_scheduled_step(v_messages, v_m.enrollment_id);
            end if;
          elsif v_kind = 'mark_sent' and v_m.status = 'sent' then
            update public.messages set status = 'delivered', delivered_at = now() where id = v_id;
          end if;
        end if;

      when 'report_outcome' then
        -- The provider's later word on a message that went out: delivered, or undelivered or
        -- failed (a sequence step that already scheduled the next one stops its enrollment).
        for v_k in 1 .. 10 loop
          v_id := v_messages[1 + floor(random() * greatest(cardinality(v_messages), 1))::integer];
          exit when exists (select 1 from public.messages m where m.id = v_id and m.status = 'sent');
          v_id := null;
        end loop;
        if v_id is not null then
          v_r := floor(random() * 4)::integer;
          update public.messages
          set status = (array['delivered', 'delivered', 'undelivered', 'failed'])[1 + v_r]::public.message_status,
              delivered_at = case when v_r < 2 then now() end,
              failed_at = case when v_r >= 2 then now() end,
              last_error_code = (array[null, null, 30003, 30008])[1 + v_r]
          where id = v_id;
        end if;
      end case;
    exception when others then
      insert into rnd_failures values (v_i, v_kind, format('unexpected error %s: %s', sqlstate, sqlerrm));
      exit;
    end;

    if v_got is distinct from v_expect then
      insert into rnd_failures values (v_i, v_kind,
        format('expected %s, got %s (%s)', coalesce(v_expect, 'success'), coalesce(v_got, 'success'), coalesce(v_msg, '')));
      exit;
    end if;
    insert into rnd_stats (kind, done, refused) values (v_kind, case when v_got is null then 1 else 0 end, case when v_got is null then 0 else 1 end)
    on conflict (kind) do update set done = rnd_stats.done + excluded.done, refused = rnd_stats.refused + excluded.refused;
    insert into rnd_log values (v_i, v_kind, coalesce(v_got, 'ok'));

    v_violation := pg_temp.violation();
    if v_violation is not null then
      insert into rnd_failures values (v_i, v_kind, v_violation);
      exit;
    end if;
  end loop;
end;
$$;

select tests.clear_authentication();

select is_empty($$ select op, kind, detail from rnd_failures $$,
  'after each of the random operations every invariant held and every RPC answered as its contract says');
select is((select count(*)::int from rnd_log), 2000, 'all 2,000 operations ran');
select is_empty($$ select k from unnest(array['create_contact', 'schedule', 'enroll', 'soft_delete', 'restore', 'hard_delete',
                    'opt_out', 'take_over', 'delete_sender', 'archive_sequence', 'delete_sequence', 'move_appointment',
                    'end_appointment', 'delete_appointment', 'mark_sent', 'cancel_message', 'report_outcome', 'send_new']) k
                   where not exists (select 1 from rnd_stats s where s.kind = k and s.done > 0) $$,
  'every kind of operation succeeded at least once');
select is_empty($$ select k from unnest(array['schedule', 'enroll', 'soft_delete', 'restore']) k
                   where not exists (select 1 from rnd_stats s where s.kind = k and s.refused > 0) $$,
  'and the RPCs were also seen refusing');
select cmp_ok((select count(*)::int from rnd_sent), '>=', 100,
  'at least 100 messages went out along the way (every 20th operation sends one, whatever the seed)');
-- checked once at the end, being heavier: the suppression list, and the ledger against the messages
select is_empty($$ select m.id from messages m join contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
                   where m.status in ('scheduled', 'queued') and herald.is_suppressed(c.workspace_id, c.phone) $$,
  'no pending message goes to a suppressed number');
select is_empty($$ select m.id, m.status from messages m
                   where (select e.to_status from message_events e where e.workspace_id = m.workspace_id and e.message_id = m.id
                          order by e.id desc limit 1) is distinct from m.status $$,
  'every message''s last ledger row is its current status');

select diag(format('randomized test failed with seed %s; replay with PGOPTIONS=''-c herald.test_seed=%s''', :seed, :seed))
where num_failed() > 0;
select diag('the last operations before the failure: ' || string_agg(format('#%s %s %s', op, kind, detail), ', ' order by op))
from (select * from rnd_log order by op desc limit 15) l
where exists (select 1 from rnd_failures);

select * from finish();
rollback;
