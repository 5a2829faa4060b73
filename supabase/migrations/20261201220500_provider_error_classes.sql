/**
 * Twilio's errors, classed in one table from Twilio's documentation, so what Herald does with
 * each (retry, defer, fail) and what a person can do about it are written once, reviewed once,
 * and read by the dispatcher, the status callbacks and the UI alike. Before it, a 63038 (the
 * account's daily limit, answered with HTTP 429) was retried with backoff and failed after three
 * attempts instead of waiting for the next day, and 429/20429 spent an attempt though Twilio
 * never processed the request.
 *
 *   retry_free      Twilio never processed the request (429 / 20429; rejected credentials):
 *                   back to the queue without spending an attempt
 *   transient       a temporary condition: retried with backoff until max_attempts
 *   defer_next_day  a daily cap: deferred to the next local day, no attempt spent
 *   permanent       no retry can fix it: fails at once (21610 also opts the contact out)
 *
 * herald.provider_error_class(code, http_status) is the one lookup: the table first (a known
 * code wins over its HTTP status: 63038 comes with 429 but is not a rate limit), then the HTTP
 * status for codes not in it. public.provider_errors shows the table to apps (a failed
 * message's last_error_code joins it), and docs/provider-errors.md is generated from it.
 */

/** Section - the table */
create table herald.provider_error_classes (
  code integer primary key,
  title text not null,
  stage text not null,
  class text not null,
  action text not null,
  message text not null,
  doc_url text not null,
  constraint provider_error_classes_stage_valid check (stage in ('api', 'delivery')),
  constraint provider_error_classes_class_valid check (class in ('retry_free', 'transient', 'defer_next_day', 'permanent')),
  constraint provider_error_classes_doc_url check (doc_url = 'https://www.twilio.com/docs/api/errors/' || code)
);
comment on table herald.provider_error_classes is 'Twilio error codes Herald handles: class (retry_free, transient, defer_next_day, permanent), what Herald does, what a person can do, and Twilio''s page.';
comment on column herald.provider_error_classes.stage is 'api: the answer to the create request; delivery: reported later by a status callback.';
comment on column herald.provider_error_classes.action is 'What Herald does with a message that gets this error.';
comment on column herald.provider_error_classes.message is 'What a person can do about it, for failed_messages and the UI.';
alter table herald.provider_error_classes enable row level security;
-- Reference data, the same for everyone: readable through public.provider_errors.
create policy provider_error_classes_select on herald.provider_error_classes for select to authenticated, service_role using (true);
grant select on herald.provider_error_classes to authenticated, service_role;

insert into herald.provider_error_classes (code, title, stage, class, action, message, doc_url)
select v.code, v.title, v.stage, v.class, v.action, v.message, 'https://www.twilio.com/docs/api/errors/' || v.code
from (values
  (20003, 'Authentication failed', 'api', 'retry_free',
   'Back to the queue without spending an attempt; nothing is sent until the credentials work.',
   'Twilio refused Herald''s credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to the account''s (Console → Account info).'),
  (20429, 'Too many requests', 'api', 'retry_free',
   'Sent again without spending an attempt: Twilio never processed the request.',
   'Nothing to do for this message. If it happens often, run fewer dispatchers at once.'),
  (20500, 'Internal server error', 'api', 'transient',
   'Retried with backoff until max_attempts.',
   'An error at Twilio; the message is retried. If it persists, check status.twilio.com.'),
  (20503, 'Service unavailable', 'api', 'transient',
   'Retried with backoff until max_attempts.',
   'Twilio is briefly unavailable; the message is retried. If it persists, check status.twilio.com.'),
  (21211, 'Invalid ''To'' phone number', 'api', 'permanent',
   'Fails at once.',
   'The contact''s number is not a valid phone number: correct it, then retry the message.'),
  (21408, 'Permission to send an SMS has not been enabled for the region', 'api', 'permanent',
   'Fails at once.',
   'Your Twilio account may not send to this country: enable it under Messaging → Settings → Geo permissions, then retry.'),
  (21610, 'Attempt to send to unsubscribed recipient', 'api', 'permanent',
   'Fails at once and opts the contact out everywhere.',
   'The recipient replied STOP to this sender. Only they can opt back in, by replying START.'),
  (21611, 'This ''From'' number has exceeded the maximum number of queued messages', 'api', 'transient',
   'Retried with backoff until max_attempts.',
   'The sender''s queue at Twilio is full (about 10 hours of segments): set the sender''s mps in Herald to its real throughput, or add numbers.'),
  (21612, 'The ''To'' phone number is not currently reachable using the ''From'' phone number', 'api', 'permanent',
   'Fails at once.',
   'This sender cannot reach this number (another country or carrier, or a channel it is not set up for): send from another sender.'),
  (21614, '''To'' number is not a valid mobile number', 'api', 'permanent',
   'Fails at once.',
   'The number cannot receive text messages (a landline?): ask the contact for a mobile number.'),
  (21617, 'The concatenated message body exceeds the 1600 character limit', 'api', 'permanent',
   'Fails at once.',
   'Shorten the message to 1,600 characters or fewer.'),
  (21654, 'ContentSid required', 'api', 'permanent',
   'Fails at once.',
   'ContentVariables were sent without a ContentSid: give the message a template (template_id).'),
  (21655, 'The ContentSid is invalid', 'api', 'permanent',
   'Fails at once.',
   'The template''s content_sid is not a Content template of this Twilio account: correct message_templates.content_sid.'),
  (21656, 'The ContentVariables parameter is invalid', 'api', 'permanent',
   'Fails at once.',
   'A template variable is empty or has a newline, a tab or a long run of spaces: fix the template''s variables or the contact''s data, then retry.'),
  (30001, 'Queue overflow', 'delivery', 'transient',
   'Retried with backoff until max_attempts.',
   'Twilio''s queue overflowed while the message waited: lower the sender''s mps in Herald, or add numbers.'),
  (30003, 'Unreachable destination handset', 'delivery', 'permanent',
   'Fails (undelivered).',
   'The phone was off or out of coverage: retry the message later, or reach the contact another way.'),
  (30005, 'Unknown destination handset', 'delivery', 'permanent',
   'Fails (undelivered).',
   'The number is unknown or no longer in service: update the contact''s number.'),
  (30006, 'Landline or unreachable carrier', 'delivery', 'permanent',
   'Fails (undelivered).',
   'The number is a landline or its carrier cannot be reached: ask the contact for a mobile number.'),
  (30007, 'Message filtered', 'delivery', 'permanent',
   'Fails (undelivered).',
   'The carrier or Twilio filtered the message as unwanted: revise its wording and links, and check your sender''s registration (A2P 10DLC in the US).'),
  (30008, 'Unknown error', 'delivery', 'transient',
   'Retried with backoff until max_attempts.',
   'The carrier gave no reason; the message is retried. If it keeps failing for this contact, check the number.'),
  (30017, 'Carrier network congestion', 'delivery', 'transient',
   'Retried with backoff until max_attempts.',
   'The carrier was congested; the message is retried.'),
  (30022, 'US A2P 10DLC - Rate limits exceeded', 'delivery', 'transient',
   'Retried with backoff until max_attempts.',
   'Sent faster than your A2P 10DLC campaign allows: set the senders'' mps in Herald to the campaign''s throughput.'),
  (30023, 'US A2P 10DLC - Daily message cap reached', 'delivery', 'defer_next_day',
   'Deferred to the next local day without spending an attempt.',
   'Your A2P 10DLC brand reached its daily cap with a carrier: sends resume tomorrow; a higher Trust Score raises the cap.'),
  (30036, 'Validity period expired', 'delivery', 'permanent',
   'Fails: Twilio held it past its send-by deadline (ValidityPeriod) and did not send it.',
   'The message waited in Twilio''s queue past its deadline: schedule it again if it is still useful, and keep the sender''s mps at its real throughput.'),
  (63016, 'Outside the messaging window: use a template', 'delivery', 'permanent',
   'Fails (not delivered). Herald itself does not send free-form WhatsApp outside the window: it fails such a message as template_required before calling Twilio.',
   'The contact has not written on WhatsApp in the last 24 hours: give the message a template (template_id) to reach them.'),
  (63038, 'Account exceeded the daily messages limit', 'api', 'defer_next_day',
   'Deferred to the next local day without spending an attempt.',
   'Your Twilio account reached its daily message limit: sends resume tomorrow. Ask Twilio Support to raise the limit.'),
  (90007, 'Invalid validity period value', 'api', 'permanent',
   'Fails at once.',
   'A ValidityPeriod outside 1–36,000 seconds was sent, which Herald should never do: report it with the message id.')
) v (code, title, stage, class, action, message);

/** Section - the lookup */
-- Codes not in the table are classed by HTTP status as the dispatcher always did: 429 never
-- processed, 5xx or no answer at all (network) temporary, any other 4xx permanent; a delivery
-- error Herald does not know (no HTTP status) is final, as Twilio reported it.
create function herald.provider_error_class(p_code integer, p_http_status integer default null)
returns herald.provider_error_classes
language sql
stable
set search_path = ''
as $$
  select coalesce(
    (select e from herald.provider_error_classes e where e.code = p_code),
    row(p_code, 'Unknown error',
        case when p_http_status is null and p_code is not null then 'delivery' else 'api' end,
        case when p_http_status = 429 then 'retry_free'
             when p_http_status >= 500 or (p_http_status is null and p_code is null) then 'transient'
             else 'permanent' end,
        case when p_http_status = 429 then 'Sent again without spending an attempt.'
             when p_http_status >= 500 or (p_http_status is null and p_code is null) then 'Retried with backoff until max_attempts.'
             else 'Fails at once.' end,
        'See Twilio''s page for this error.',
        case when p_code is not null then 'https://www.twilio.com/docs/api/errors/' || p_code end
    )::herald.provider_error_classes)
$$;
comment on function herald.provider_error_class(integer, integer) is 'How Herald treats a provider error: the row of herald.provider_error_classes for a known code (whatever its HTTP status), else one classed by HTTP status (429 retry_free; 5xx or no answer transient; other 4xx, or an unknown delivery error, permanent).';
revoke execute on function herald.provider_error_class(integer, integer) from public;
grant execute on function herald.provider_error_class(integer, integer) to service_role;

-- A defer_next_day error waits for the start of the next local day (the workspace's zone, as
-- the daily limit counts days), spread over its first half hour like daily-limit deferrals.
create function herald.next_local_day(p_at timestamptz, p_tz text) returns timestamptz
language sql
stable
set search_path = ''
as $$
  select ((p_at at time zone herald.check_time_zone(p_tz))::date + 1)::timestamp at time zone p_tz
$$;
comment on function herald.next_local_day(timestamptz, text) is 'Midnight at the start of the next day in the zone, after p_at (daylight saving included).';
revoke execute on function herald.next_local_day(timestamptz, text) from public;
grant execute on function herald.next_local_day(timestamptz, text) to service_role;

/** Section - for apps */
create view public.provider_errors with (security_invoker = true) as
select e.code, e.title, e.stage, e.class, e.action, e.message, e.doc_url from herald.provider_error_classes e;
comment on view public.provider_errors is 'Twilio errors Herald knows, with what it does and what a person can do; join failed_messages.last_error_code to code. Reference data, the same for every workspace.';
comment on column public.provider_errors.code is 'Twilio''s error code.';
comment on column public.provider_errors.title is 'Twilio''s name for the error.';
comment on column public.provider_errors.stage is 'api: the answer to the send request; delivery: reported later by a status callback.';
comment on column public.provider_errors.class is 'retry_free, transient, defer_next_day or permanent.';
comment on column public.provider_errors.action is 'What Herald does with a message that gets it.';
comment on column public.provider_errors.message is 'What a person can do about it.';
comment on column public.provider_errors.doc_url is 'Twilio''s page for the error.';
revoke all on public.provider_errors from anon;
grant select on public.provider_errors to authenticated, service_role;
