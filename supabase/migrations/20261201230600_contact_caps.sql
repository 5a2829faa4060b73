/**
 * Per-contact daily caps on marketing. Three sequences and a campaign can each be reasonable and
 * together text one person six times a day; `workspaces.contact_daily_cap` bounds what one contact
 * receives per local day across every channel, sequence and campaign. Transactional messages are
 * neither counted nor capped.
 *
 *   herald.contact_cap_next_time(contact, p_at, p_pending)
 *       null while the contact has room today; otherwise the start of the next local day's
 *       allowed window (herald.allowed_send_time), where the message is deferred to, with ledger
 *       reason frequency_cap.
 *
 * What counts is what is on its way or gone: marketing messages queued or sending now, and those
 * sent since the contact's local midnight. The queueing step calls it once per message, with
 * p_pending = how many of the same contact's messages come before this one in its batch, so a
 * batch never queues past the cap. A partial index makes the count two short index scans.
 *
 * frequency_cap joins the deferral reasons the queue_metrics view reports.
 */

/** Section - the cap */
alter table public.workspaces
  add column contact_daily_cap integer,
  add constraint workspaces_contact_daily_cap_positive check (contact_daily_cap is null or contact_daily_cap between 1 and 1000);
comment on column public.workspaces.contact_daily_cap is 'Most marketing messages one contact receives per local day, across channels, sequences and campaigns; null means no cap. Over it, a message is deferred to the next day''s window (ledger reason frequency_cap).';

-- The count per contact and day: sent_at ranges of the contact's marketing messages, and the few
-- without a sent_at (status read from the index, no heap visit once the page is all-visible).
create index messages_contact_marketing_idx on public.messages (workspace_id, contact_id, sent_at) include (status)
  where category = 'marketing';

create function herald.contact_cap_next_time(p_contact public.contacts, p_at timestamptz, p_pending integer default 0)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  w public.workspaces;
  v_zone text;
  v_day_start timestamptz;
  v_next_day timestamptz;
  v_used bigint;
begin
  select * into w from public.workspaces where id = p_contact.workspace_id;
  if w.contact_daily_cap is null then
    return null;
  end if;
  -- The contact's local day, in the first of its possible zones (a number spanning two zones
  -- has days an hour apart; the allowed window below holds in all of them).
  v_zone := (herald.contact_zones(p_contact))[1];
  v_day_start := date_trunc('day', p_at at time zone v_zone) at time zone v_zone;
  v_next_day := (date_trunc('day', p_at at time zone v_zone) + interval '1 day') at time zone v_zone;

  select (select count(*) from public.messages m
          where m.workspace_id = p_contact.workspace_id and m.contact_id = p_contact.id and m.category = 'marketing'
            and m.sent_at >= v_day_start and m.sent_at < v_next_day)
       + (select count(*) from public.messages m
          where m.workspace_id = p_contact.workspace_id and m.contact_id = p_contact.id and m.category = 'marketing'
            and m.sent_at is null and m.status in ('queued', 'sending'))
  into v_used;
  if v_used + greatest(coalesce(p_pending, 0), 0) < w.contact_daily_cap then
    return null;
  end if;
  return herald.allowed_send_time(p_contact, 'marketing', w, v_next_day);
end;
$$;
comment on function herald.contact_cap_next_time(public.contacts, timestamptz, integer) is 'Null while the contact can take another marketing message on its local day (queued, sending and sent today, plus p_pending earlier ones of the same batch, under workspaces.contact_daily_cap); otherwise the start of the next day''s allowed window.';
revoke execute on function herald.contact_cap_next_time(public.contacts, timestamptz, integer) from public;
grant execute on function herald.contact_cap_next_time(public.contacts, timestamptz, integer) to service_role;

/** Section - metrics */
-- The deferral reasons the ledger writes with from_status = to_status, as queue_metrics reports
-- them: the one list, so a new reason is one edit here.
create function herald.deferral_reasons() returns text[]
language sql
immutable
set search_path = ''
as $$
  select array['quiet_hours', 'daily_limit', 'frequency_cap', 'automation_paused', 'appointment_moved']
$$;
comment on function herald.deferral_reasons() is 'The ledger reasons of a deferral (send_at moved, status unchanged) that queue_metrics counts.';
grant execute on function herald.deferral_reasons() to authenticated, service_role;

comment on column public.message_events.reason is 'Why: a cancel_reason, a provider error code, quiet_hours, daily_limit, frequency_cap, automation_paused, retry_backoff, lease_expired…';

create or replace view public.queue_metrics with (security_invoker = true) as
with per_message as (
  select m.workspace_id, (coalesce(m.sent_at, m.cancelled_at, m.failed_at, m.send_at) at time zone w.timezone)::date as day,
         m.status, m.cancel_reason, m.sent_at, m.send_at, m.segments
  from public.messages m join public.workspaces w on w.id = m.workspace_id
), deferrals as (
  select e.workspace_id, (e.at at time zone w.timezone)::date as day, e.reason, count(*) as n
  from public.message_events e join public.workspaces w on w.id = e.workspace_id
  where e.from_status = e.to_status and e.reason = any (herald.deferral_reasons())
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
comment on view public.queue_metrics is 'Per workspace and local day: scheduled, sent, delivered, failed, cancelled (and by reason), deferred by reason (herald.deferral_reasons), delivery rate, the median seconds from send_at to sent_at, and the segments sent.';

comment on constraint workspaces_contact_daily_cap_positive on public.workspaces is 'The per-contact daily cap must be between 1 and 1000 marketing messages a day, or null for no cap.';
select herald.explain_checks_on('public.workspaces');
