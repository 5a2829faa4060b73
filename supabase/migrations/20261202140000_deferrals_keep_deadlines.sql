/**
 * No deferral may carry a message past its send-by deadline. Quiet hours, the legal hours and the
 * per-contact cap already cancel such a message (herald.send_rule); but a message is also put back
 * to scheduled, later, by the workspace's daily limit, a retry backoff after a transient error, a
 * daily cap at Twilio (63038), a claim that cannot send it yet. Each of those would otherwise have
 * left a reminder waiting past its appointment, to be cancelled only when the pg_cron sweep next
 * ran, and reported as deferred meanwhile. One row trigger decides for all of them, present and
 * future: a scheduled message whose send_at moves to or past expires_at is cancelled `expired`
 * instead, its send_at left where it was.
 *
 * One move is exempt: an appointment moving carries its reminders' send_at and, in the next
 * trigger of the same statement (herald.appointments_move_deadlines), their deadline with it.
 */
create function herald.messages_deferral_keeps_deadline() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if current_setting('herald.reason', true) = 'appointment_moved' then
    return new;
  end if;
  new.status := 'cancelled';
  new.cancel_reason := 'expired';
  new.cancelled_at := now();
  new.send_at := old.send_at;
  return new;
end;
$$;
comment on function herald.messages_deferral_keeps_deadline() is 'A scheduled message deferred to or past its deadline (daily limit, retry backoff, a daily cap at Twilio, any later rule) is cancelled expired instead, send_at unchanged; an appointment move, which moves the deadline too, is exempt.';
revoke execute on function herald.messages_deferral_keeps_deadline() from public;

create trigger messages_deferral_keeps_deadline before update of send_at, status on public.messages
for each row when (new.status = 'scheduled' and new.send_at >= new.expires_at
                   and (new.send_at is distinct from old.send_at or new.status is distinct from old.status))
execute function herald.messages_deferral_keeps_deadline();
comment on trigger messages_deferral_keeps_deadline on public.messages is 'Cancels expired, instead of deferring, a message moved to or past its deadline (herald.messages_deferral_keeps_deadline).';
