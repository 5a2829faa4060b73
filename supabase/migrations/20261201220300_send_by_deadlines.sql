/**
 * Send-by deadlines: a message that is only worth sending before some moment (a reminder before
 * its appointment) says so in messages.expires_at, and is never sent at or after it (a reminder
 * for a 04:47 appointment deferred by quiet hours to 08:12 must not go out at all).
 *
 *   expires_at           the deadline; null means none. A message cannot be created already
 *                        expired, nor with a deadline at or before its own send time.
 *   appointment default  a message scheduled before its appointment's start expires at that
 *                        start unless it says otherwise; one scheduled after the start (a
 *                        follow-up) has no deadline
 *   appointment moved    pending deadlines move with it; one moved into the past is expired
 *   cancel_reason        `expired`
 *   cron                 herald.cancel_expired_messages() every minute: pending messages whose
 *                        deadline passed are cancelled `expired`, whatever deferred them
 *
 * herald.past_deadline() is the one comparison (at or after the deadline is too late), and
 * herald.validity_period_seconds() the seconds left as Twilio's ValidityPeriod (1–36,000), so
 * Twilio drops a message its own queue would hold past the deadline.
 *
 * The new enum value is only used inside PL/pgSQL bodies here, which are not planned until they
 * run: a value added by ALTER TYPE cannot be used in the transaction that adds it.
 */

/** Section - the deadline */
alter type public.cancel_reason add value if not exists 'expired';
comment on type public.cancel_reason is 'Why a message was cancelled. Deferrals (quiet hours, daily limit, paused automation) are not cancellations; expired means its send-by deadline (expires_at) passed first.';

alter table public.messages
  add column expires_at timestamptz,
  add constraint messages_expires_after_created check (expires_at is null or expires_at > created_at);
comment on column public.messages.expires_at is 'Send-by deadline: never sent at or after it (cancelled expired instead), and passed to Twilio as ValidityPeriod. An appointment reminder expires at the appointment''s start unless told otherwise. Null: no deadline.';
create index messages_pending_expiry_idx on public.messages (expires_at)
  where expires_at is not null and status in ('scheduled', 'queued');

create function herald.past_deadline(p_expires_at timestamptz, p_at timestamptz) returns boolean
language sql
immutable
parallel safe
set search_path = ''
as $$
  select coalesce(p_at >= p_expires_at, false)
$$;
comment on function herald.past_deadline(timestamptz, timestamptz) is 'True when a message with this deadline may no longer go out at p_at (at or after expires_at); false without a deadline. Queueing, claiming and every deferral compare through it.';
revoke execute on function herald.past_deadline(timestamptz, timestamptz) from public;
grant execute on function herald.past_deadline(timestamptz, timestamptz) to service_role;

-- Seconds left, floored so Twilio never holds the message past the deadline, clamped to the
-- range Twilio accepts (90007 outside 1–36,000).
create function herald.validity_period_seconds(p_expires_at timestamptz, p_now timestamptz default now()) returns integer
language sql
immutable
parallel safe
set search_path = ''
as $$
  select case when p_expires_at is not null then
    least(greatest(floor(extract(epoch from p_expires_at - p_now)), 1), 36000)::integer end
$$;
comment on function herald.validity_period_seconds(timestamptz, timestamptz) is 'Twilio''s ValidityPeriod for a message with this deadline sent at p_now: whole seconds left, clamped to 1–36,000; null without a deadline (send no ValidityPeriod).';
revoke execute on function herald.validity_period_seconds(timestamptz, timestamptz) from public;
grant execute on function herald.validity_period_seconds(timestamptz, timestamptz) to service_role;

/** Section - appointment reminders expire at the start */
create function herald.messages_deadline_on_insert() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_start timestamptz;
begin
  if new.expires_at is null and new.appointment_id is not null then
    select a.starts_at into v_start from public.appointments a
    where a.workspace_id = new.workspace_id and a.id = new.appointment_id;
    if v_start > new.send_at then
      new.expires_at := v_start;
    end if;
  end if;
  if new.expires_at <= new.send_at then
    raise exception 'expires_at % is not after send_at %', new.expires_at, new.send_at using errcode = '22023',
      hint = 'A message must be sendable before its deadline: move expires_at later or send_at earlier.';
  end if;
  return new;
end;
$$;
comment on function herald.messages_deadline_on_insert() is 'A message scheduled before its appointment''s start expires at that start unless it names a deadline; a deadline at or before send_at is refused (22023).';
create trigger messages_deadline_on_insert before insert on public.messages
for each row when (new.appointment_id is not null or new.expires_at is not null)
execute function herald.messages_deadline_on_insert();

-- Runs after appointments_after_update (trigger names order them), which moves send_at.
create function herald.appointments_move_deadlines() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_shift interval := new.starts_at - old.starts_at;
begin
  update public.messages
  set status = 'cancelled', cancel_reason = 'expired', cancelled_at = now()
  where workspace_id = new.workspace_id and appointment_id = new.id and status in ('scheduled', 'queued')
    and expires_at is not null and herald.past_deadline(expires_at + v_shift, now());
  update public.messages
  set expires_at = expires_at + v_shift
  where workspace_id = new.workspace_id and appointment_id = new.id and status in ('scheduled', 'queued')
    and expires_at is not null;
  return null;
end;
$$;
comment on function herald.appointments_move_deadlines() is 'Appointment moved: its pending messages'' deadlines move by the same amount; one that would now be past is cancelled expired.';
create trigger appointments_move_deadlines after update of starts_at on public.appointments
for each row when (new.starts_at <> old.starts_at and new.status = 'scheduled')
execute function herald.appointments_move_deadlines();

/** Section - expiring what waited too long */
create function herald.cancel_expired_messages(p_now timestamptz default now()) returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  perform set_config('herald.actor', coalesce(nullif(current_setting('herald.actor', true), ''), 'cron'), true);
  -- herald.past_deadline() spelled out, so messages_pending_expiry_idx serves it. Skip locked: a
  -- message a claimer holds is the claimer's to decide.
  with expired as (
    update public.messages m
    set status = 'cancelled', cancel_reason = 'expired', cancelled_at = now()
    where m.id in (select x.id from public.messages x
                   where x.expires_at <= p_now and x.status in ('scheduled', 'queued')
                   for update skip locked)
    returning 1
  ) select count(*) into v_count from expired;
  return v_count;
end;
$$;
comment on function herald.cancel_expired_messages(timestamptz) is 'pg_cron, every minute: scheduled and queued messages whose deadline passed are cancelled expired, whatever deferred them. p_now is the clock.';
revoke execute on function herald.cancel_expired_messages(timestamptz) from public, authenticated;
grant execute on function herald.cancel_expired_messages(timestamptz) to service_role;

select cron.schedule('herald-cancel-expired-messages', '* * * * *', $$select herald.cancel_expired_messages()$$);
