/**
 * Segments and encoding: how many parts a carrier bills a message body as, computed in SQL from
 * the body, so pacing, metrics and exports read one number instead of each guessing (a sender at
 * 1 mps sending three-segment texts otherwise runs at three times its rate at the carrier).
 *
 *   GSM-7    the GSM 03.38 basic set; its extension characters (^ { } \ [ ~ ] | € and form
 *            feed) take two septets. One part holds 160 septets; a longer body is sent in parts
 *            of 153 (the rest of each part is the concatenation header).
 *   UCS-2    any other body. 70 UTF-16 code units in one part, 67 per part beyond; a character
 *            outside the Basic Multilingual Plane (most emoji) is a surrogate pair, two units.
 *
 * A two-unit character is never split between parts (an escape and its character, or the two
 * halves of a surrogate pair, travel together), so a part may carry one unit less than its
 * size: the count is the greedy packing Twilio's segment calculator does, not units / 153.
 *
 * messages.segments and messages.encoding are generated columns: always the body's, whoever
 * wrote it. queue_metrics gains segments_sent per day.
 */

/** Section - counting */
-- The GSM 03.38 basic set and extension table, as one bracket expression. Ranges are by code
-- point in PostgreSQL's regular expressions, whatever the collation.
create function herald.message_encoding(p_body text) returns text
language sql
immutable
strict
parallel safe
set search_path = ''
as $$
  select case when p_body ~ '^[\n\r\f @£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!"#¤%&''()*+,./0-9:;<=>?¡A-ZÄÖÑÜ§¿a-zäöñüà^{}\\\[~\]|€-]*$'
              then 'GSM-7' else 'UCS-2' end
$$;
comment on function herald.message_encoding(text) is 'GSM-7 when every character of the body is in the GSM 03.38 basic set or its extension table, else UCS-2.';
grant execute on function herald.message_encoding(text) to authenticated, service_role;

create function herald.message_segment_count(p_body text) returns integer
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
declare
  v_gsm boolean := herald.message_encoding(p_body) = 'GSM-7';
  v_length integer := length(p_body);
  v_wide integer;   -- characters that take two units
  v_single integer := case when v_gsm then 160 else 70 end;
  v_part integer := case when v_gsm then 153 else 67 end;
  v_parts integer := 1;
  v_used integer := 0;
  v_width integer;
  v_char text;
begin
  if v_length = 0 then
    return 0;
  end if;
  v_wide := v_length - length(case when v_gsm then translate(p_body, E'^{}\\[~]|€\f', '')
                                   else regexp_replace(p_body, '[\U00010000-\U0010FFFF]', '', 'g') end);
  if v_length + v_wide <= v_single then
    return 1;
  end if;
  if v_wide = 0 then
    return ceil((v_length)::numeric / v_part)::integer;
  end if;
  -- Parts filled in order; a two-unit character that does not fit starts the next part.
  foreach v_char in array string_to_array(p_body, null) loop
    v_width := case when v_gsm then case when strpos(E'^{}\\[~]|€\f', v_char) > 0 then 2 else 1 end
                    else case when ascii(v_char) > 65535 then 2 else 1 end end;
    if v_used + v_width > v_part then
      v_parts := v_parts + 1;
      v_used := 0;
    end if;
    v_used := v_used + v_width;
  end loop;
  return v_parts;
end;
$$;
comment on function herald.message_segment_count(text) is 'How many parts a carrier bills the body as: GSM-7 160 septets in one part, 153 per part beyond (extension characters take two); UCS-2 70 / 67 UTF-16 units (surrogate pairs take two). A two-unit character is never split between parts. 0 for an empty body.';
grant execute on function herald.message_segment_count(text) to authenticated, service_role;

create function herald.message_segments(p_body text, out segments integer, out encoding text)
language sql
immutable
strict
parallel safe
set search_path = ''
as $$
  select herald.message_segment_count(p_body), herald.message_encoding(p_body)
$$;
comment on function herald.message_segments(text) is 'The body''s segment count and encoding (GSM-7 or UCS-2), as messages.segments and messages.encoding hold them.';
grant execute on function herald.message_segments(text) to service_role;

/** Section - on every message */
-- Generated, so no writer (RPC, trigger, import, a body re-rendered when its appointment moves)
-- can leave them disagreeing with the body. Two columns, two calls: a generated column cannot
-- read another one.
alter table public.messages
  add column segments integer generated always as (herald.message_segment_count(body)) stored,
  add column encoding text generated always as (herald.message_encoding(body)) stored,
  add constraint messages_encoding_valid check (encoding in ('GSM-7', 'UCS-2'));
comment on column public.messages.segments is 'Parts the body is billed as by SMS carriers (generated from the body). Twilio paces an SMS sender in segments per second; a WhatsApp message is one message whatever its length.';
comment on column public.messages.encoding is 'GSM-7 or UCS-2 (generated from the body): one character outside the GSM set makes the whole body UCS-2, 70 characters a part instead of 160.';

/** Section - queue_metrics with segments */
-- As in queue_operations, plus segments_sent: what the day's sent messages were billed as.
create or replace view public.queue_metrics with (security_invoker = true) as
with per_message as (
  select m.workspace_id, (coalesce(m.sent_at, m.cancelled_at, m.failed_at, m.send_at) at time zone w.timezone)::date as day,
         m.status, m.cancel_reason, m.sent_at, m.send_at, m.segments
  from public.messages m join public.workspaces w on w.id = m.workspace_id
), deferrals as (
  select e.workspace_id, (e.at at time zone w.timezone)::date as day, e.reason, count(*) as n
  from public.message_events e join public.workspaces w on w.id = e.workspace_id
  where e.from_status = e.to_status and e.reason in ('quiet_hours', 'daily_limit', 'automation_paused', 'appointment_moved')
  group by 1, 2, 3
), totals as (
  select workspace_id, day,
         count(*) filter (where status in ('scheduled', 'queued', 'sending')) as scheduled,
         count(*) filter (where sent_at is not null) as sent,
         count(*) filter (where status in ('delivered', 'read')) as delivered,
         count(*) filter (where status in ('failed', 'undelivered')) as failed,
         count(*) filter (where status = 'cancelled') as cancelled,
         percentile_cont(0.5) within group (order by extract(epoch from sent_at - send_at))
           filter (where sent_at is not null) as median_delay_seconds,
         sum(segments) filter (where sent_at is not null) as segments_sent
  from per_message group by 1, 2
), by_reason as (
  select workspace_id, day, jsonb_object_agg(cancel_reason, n) as cancelled_by_reason
  from (select workspace_id, day, cancel_reason, count(*) as n from per_message
        where status = 'cancelled' group by 1, 2, 3) r
  group by 1, 2
), deferred as (
  select workspace_id, day, jsonb_object_agg(reason, n) as deferred_by_reason from deferrals group by 1, 2
)
select coalesce(t.workspace_id, d.workspace_id) as workspace_id, coalesce(t.day, d.day) as day,
       coalesce(t.scheduled, 0) as scheduled, coalesce(t.sent, 0) as sent, coalesce(t.delivered, 0) as delivered,
       coalesce(t.failed, 0) as failed, coalesce(t.cancelled, 0) as cancelled,
       coalesce(b.cancelled_by_reason, '{}') as cancelled_by_reason,
       coalesce(d.deferred_by_reason, '{}') as deferred_by_reason,
       round(t.delivered::numeric / nullif(t.sent, 0), 4) as delivery_rate,
       t.median_delay_seconds,
       coalesce(t.segments_sent, 0) as segments_sent
from totals t
full join deferred d on d.workspace_id = t.workspace_id and d.day = t.day
left join by_reason b on b.workspace_id = coalesce(t.workspace_id, d.workspace_id) and b.day = coalesce(t.day, d.day);
comment on view public.queue_metrics is 'Per workspace and local day: scheduled, sent, delivered, failed, cancelled (and by reason), deferred by reason, delivery rate, the median seconds from send_at to sent_at, and the segments the sent messages were billed as.';
comment on column public.queue_metrics.segments_sent is 'Sum of messages.segments over the day''s sent messages: what SMS carriers bill, and what a sender''s rate is spent in.';
