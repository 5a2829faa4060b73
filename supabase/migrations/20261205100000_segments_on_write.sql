/**
 * messages.segments and messages.encoding computed when the body is written, not on every update.
 *
 * As generated columns, PostgreSQL computed both again on every UPDATE of a message, whatever
 * the update changed: two calls of herald.message_encoding and one of message_segment_count,
 * ~20 µs, on each of the moves every message makes (queued, sending, sent, delivered, each
 * status callback). Measured with track_functions on the twilio-status path: 3 of every 8
 * function calls a callback made were these.
 *
 * Now triggers set them from the body on insert and on an update that changes the body. The
 * rule is unchanged: they are always the body's, whoever writes it, and a statement that writes
 * either by hand is refused with 428C9, the SQLSTATE a generated column refuses it with.
 *
 *   message_segments_from_body   the trigger function: the body's count and encoding, or 428C9.
 *   message_encoding, message_segment_count   no longer the members' to call.
 */

/** Section - the columns, plain */
alter table public.messages
  alter column segments drop expression,
  alter column encoding drop expression;
comment on column public.messages.segments is 'Parts the body is billed as by SMS carriers (set from the body whenever it is written; a value written by hand is refused). Twilio paces an SMS sender in segments per second; a WhatsApp message is one message whatever its length.';
comment on column public.messages.encoding is 'GSM-7 or UCS-2 (set from the body whenever it is written; a value written by hand is refused): one character outside the GSM set makes the whole body UCS-2, 70 characters a part instead of 160.';

/** Section - set from the body */
create function herald.message_segments_from_body() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- tg_argv[0] = 'written': the trigger of an update that names segments or encoding.
  if tg_op = 'INSERT' and (new.segments is not null or new.encoding is not null) or tg_argv[0] = 'written' then
    raise exception 'messages.segments and messages.encoding are computed from the body and cannot be written'
      using errcode = '428C9', hint = 'Write the body; its segments and encoding follow.';
  end if;
  new.segments := herald.message_segment_count(new.body);
  new.encoding := herald.message_encoding(new.body);
  return new;
end;
$$;
comment on function herald.message_segments_from_body() is 'Trigger: messages.segments and messages.encoding from the body, on insert and on an update that changes the body; refuses (428C9) a value written to either, on insert or by an update that names them (trigger argument ''written'').';
revoke all on function herald.message_segments_from_body() from public;
-- Members called these only because the generated columns ran as whoever wrote the row; members
-- write no message themselves (their RPCs run as Herald's owner), so no longer.
revoke execute on function herald.message_encoding(text), herald.message_segment_count(text) from authenticated;

-- Three triggers, as a generated column behaves: an update that names segments or encoding is
-- refused whatever value it writes (UPDATE OF fires for the columns a statement names); one that
-- changes the body recomputes them (WHEN is evaluated on the row as the triggers before it left
-- it; a WHEN that reads OLD cannot be on an insert trigger, hence one for each).
create trigger messages_segments_on_insert before insert on public.messages
  for each row execute function herald.message_segments_from_body();
create trigger messages_segments_written before update of segments, encoding on public.messages
  for each row execute function herald.message_segments_from_body('written');
create trigger messages_segments_on_update before update on public.messages
  for each row when (new.body is distinct from old.body)
  execute function herald.message_segments_from_body();
