/**
 * Messages: the intent to send one message and its whole lifecycle, the provider attempts made
 * for it (one row per call to Twilio, linked by keys, so a webhook never has to update two tables
 * by hand to keep them in step), and the append-only ledger of every status change.
 *
 * Status only moves along the graph in herald.message_transition_ok(); the ledger and that check
 * run in one statement-level trigger (transition tables), so cancelling 10,000 messages is one
 * UPDATE and one INSERT, not 10,000 trigger calls.
 */

/** Section - types */
create type public.message_status as enum (
  'scheduled', 'queued', 'sending', 'sent', 'delivered', 'read', 'undelivered', 'failed', 'cancelled'
);
comment on type public.message_status is 'scheduled → queued → sending → sent → delivered → read; undelivered, failed and cancelled are terminal.';

create type public.cancel_reason as enum (
  'contact_deleted', 'contact_opted_out', 'human_takeover', 'sequence_stopped', 'replied',
  'appointment_cancelled', 'appointment_completed', 'sender_deleted', 'campaign_deleted', 'user_cancelled'
);
comment on type public.cancel_reason is 'Why a message was cancelled. Deferrals (quiet hours, daily limit, paused automation) are not cancellations.';

/** Section - status groups */
-- The groups of statuses Herald's rules speak of, each defined once, here: a rule says "pending"
-- and means the same statuses everywhere. Immutable functions of no argument: the planner folds
-- each call into its constant array while it plans, so `status = any (herald.pending_statuses())`
-- plans exactly as the literal list would, partial indexes included. Parallel safe, because
-- parallel safety is judged before that folding: a call of an unsafe function would keep the
-- whole query from running in parallel. The status graph (herald.message_transition_ok) stays a
-- literal list: it is what these groups are tested against.
create function herald.pending_statuses() returns public.message_status[]
language sql
immutable
parallel safe
set search_path = ''
as $$ select '{scheduled,queued}'::public.message_status[] $$;
comment on function herald.pending_statuses() is 'Pending: scheduled and queued. No dispatcher holds the message yet, so Herald may still cancel, defer or re-bind it; cancelling "every future execution" cancels these.';

create function herald.in_flight_statuses() returns public.message_status[]
language sql
immutable
parallel safe
set search_path = ''
as $$ select '{sending}'::public.message_status[] $$;
comment on function herald.in_flight_statuses() is 'In flight: sending. A dispatcher holds the message under a lease; whether the provider has it is known only when the dispatcher records its answer (or the lease is reaped).';

create function herald.final_statuses() returns public.message_status[]
language sql
immutable
parallel safe
set search_path = ''
as $$ select '{sent,delivered,read,undelivered,failed,cancelled}'::public.message_status[] $$;
comment on function herald.final_statuses() is 'Final: Herald will never send the message (again). It went out (sent, delivered, read) or it never will (undelivered, failed, cancelled); the provider''s callbacks may still move a sent message on, but only to another final status.';

create function herald.sent_statuses() returns public.message_status[]
language sql
immutable
parallel safe
set search_path = ''
as $$ select '{sent,delivered,read}'::public.message_status[] $$;
comment on function herald.sent_statuses() is 'Sent: the provider accepted the message (sent, delivered, read). A sequence step in one of these schedules the next step.';

create function herald.delivered_statuses() returns public.message_status[]
language sql
immutable
parallel safe
set search_path = ''
as $$ select '{delivered,read}'::public.message_status[] $$;
comment on function herald.delivered_statuses() is 'Delivered: the message reached the recipient (delivered, read).';

create function herald.failed_statuses() returns public.message_status[]
language sql
immutable
parallel safe
set search_path = ''
as $$ select '{undelivered,failed}'::public.message_status[] $$;
comment on function herald.failed_statuses() is 'Failed: the message will not reach the recipient (undelivered, failed). retry_message() may send it again as a new message; a failed sequence step stops its enrollment.';
-- Constants, and the views members read (failed_messages, queue_metrics) run as the member, who
-- needs to call them to plan those views.
grant execute on function herald.pending_statuses(), herald.in_flight_statuses(), herald.final_statuses(),
  herald.sent_statuses(), herald.delivered_statuses(), herald.failed_statuses() to authenticated, service_role;

/** Section - messages */
create table public.messages (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  contact_id uuid not null,
  sender_id uuid,
  channel public.channel not null default 'sms',
  body text not null,
  send_at timestamptz not null default now(),
  status public.message_status not null default 'scheduled',
  cancel_reason public.cancel_reason,
  attempts integer not null default 0,
  max_attempts integer not null default 3,
  last_error_code integer,
  last_error text,
  provider_sid text,
  enrollment_id uuid,
  step_id uuid,
  appointment_id uuid,
  campaign_id uuid,
  retry_of uuid,
  idempotency_key text,
  lease_expires_at timestamptz,
  sent_at timestamptz,
  delivered_at timestamptz,
  failed_at timestamptz,
  cancelled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, id),
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  foreign key (workspace_id, sender_id) references public.senders (workspace_id, id) on delete set null (sender_id),
  foreign key (workspace_id, enrollment_id) references public.sequence_enrollments (workspace_id, id) on delete set null (enrollment_id),
  foreign key (workspace_id, step_id) references public.sequence_steps (workspace_id, id) on delete set null (step_id),
  foreign key (workspace_id, appointment_id) references public.appointments (workspace_id, id) on delete set null (appointment_id),
  foreign key (workspace_id, campaign_id) references public.campaigns (workspace_id, id) on delete set null (campaign_id),
  foreign key (workspace_id, retry_of) references public.messages (workspace_id, id) on delete set null (retry_of),
  constraint messages_body_length check (length(btrim(body)) between 1 and 1600),
  constraint messages_cancel_reason_iff_cancelled check ((status = 'cancelled') = (cancel_reason is not null)),
  constraint messages_lease_iff_sending check ((status = 'sending') = (lease_expires_at is not null)),
  constraint messages_queued_has_sender check (status <> 'queued' or sender_id is not null),
  constraint messages_attempts_range check (attempts >= 0 and max_attempts between 1 and 20),
  constraint messages_idempotency_key_length check (idempotency_key is null or length(idempotency_key) between 1 and 200)
);
comment on table public.messages is 'One message to one contact and its whole lifecycle. Written through RPCs, cron and the dispatcher; members read their workspace''s.';
comment on column public.messages.sender_id is 'The sender to use; null means the workspace''s default sender for the channel, bound when the message is queued.';
comment on column public.messages.send_at is 'Not before this time. Quiet hours and daily limits move it forward (with a ledger event); retries set it to now() + backoff.';
comment on column public.messages.attempts is 'Provider calls made so far; each has a row in message_attempts.';
comment on column public.messages.lease_expires_at is 'While sending: the claiming dispatcher''s lease. An expired lease is reaped back to queued after checking the provider.';
comment on column public.messages.retry_of is 'The failed or undelivered message this one re-sends (retry_message()).';
comment on column public.messages.idempotency_key is 'Caller-chosen key: schedule_message() with the same key in the same workspace returns the same message.';

-- Partial: every message starts without a sid, and an index entry for each of those would be
-- paid on every insert and every status change for nothing.
create unique index messages_provider_sid_key on public.messages (provider_sid) where provider_sid is not null;
create index messages_workspace_contact_idx on public.messages (workspace_id, contact_id);
create index messages_workspace_sender_idx on public.messages (workspace_id, sender_id) where sender_id is not null;
create index messages_workspace_enrollment_idx on public.messages (workspace_id, enrollment_id) where enrollment_id is not null;
create index messages_workspace_step_idx on public.messages (workspace_id, step_id) where step_id is not null;
create index messages_workspace_appointment_idx on public.messages (workspace_id, appointment_id) where appointment_id is not null;
create index messages_workspace_campaign_idx on public.messages (workspace_id, campaign_id) where campaign_id is not null;
create index messages_workspace_retry_of_idx on public.messages (workspace_id, retry_of) where retry_of is not null;
create unique index messages_idempotency_key on public.messages (workspace_id, idempotency_key) where idempotency_key is not null;
-- A sequence step is scheduled once per enrollment (retries of it carry retry_of).
create unique index messages_one_per_step on public.messages (enrollment_id, step_id)
  where enrollment_id is not null and step_id is not null and retry_of is null;
-- The three indexes below serve the three jobs that each take messages in one status (queueing
-- scheduled ones, claiming queued ones, reaping sending ones whose lease expired): single
-- statuses, not groups, so their predicates name the status itself.
create index messages_scheduled_due_idx on public.messages (send_at) where status = 'scheduled';
-- Claims go sender by sender (each sender's rate slot is held by one claimer at a time).
create index messages_queued_due_idx on public.messages (sender_id, send_at) where status = 'queued';
create index messages_sending_lease_idx on public.messages (lease_expires_at) where status = 'sending';
create index messages_workspace_sent_at_idx on public.messages (workspace_id, sent_at) where sent_at is not null;
create index messages_workspace_created_idx on public.messages (workspace_id, created_at);

create trigger messages_updated_at before update on public.messages
for each row execute function extensions.moddatetime(updated_at);
comment on trigger messages_updated_at on public.messages is 'Keeps updated_at current on every update (moddatetime).';

/** Section - provider attempts */
create table public.message_attempts (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  message_id uuid not null,
  attempt_no integer not null,
  provider_sid text,
  provider_status text,
  error_code integer,
  error_message text,
  requested_at timestamptz not null default now(),
  responded_at timestamptz,
  last_callback_at timestamptz,
  unique (message_id, attempt_no),
  foreign key (workspace_id, message_id) references public.messages (workspace_id, id) on delete cascade,
  constraint message_attempts_attempt_no_positive check (attempt_no > 0)
);
comment on table public.message_attempts is 'One row per call to the provider for a message: its sid, the provider''s latest status and error.';
comment on column public.message_attempts.provider_sid is 'Twilio''s Message SID (SM…); null if the call failed before Twilio accepted it.';
create unique index message_attempts_provider_sid_key on public.message_attempts (provider_sid) where provider_sid is not null;
create index message_attempts_workspace_message_idx on public.message_attempts (workspace_id, message_id);

/** Section - ledger */
create table public.message_events (
  id bigint generated always as identity primary key,
  workspace_id uuid not null,
  message_id uuid not null,
  from_status public.message_status,
  to_status public.message_status not null,
  reason text,
  actor text not null,
  detail jsonb,
  at timestamptz not null default now(),
  foreign key (workspace_id, message_id) references public.messages (workspace_id, id) on delete cascade
);
comment on table public.message_events is 'Append-only ledger: one row per status change (and per deferral) of a message, written by trigger. Never updated; erased only with its message (hard delete of the contact).';
comment on column public.message_events.reason is 'Why: a cancel_reason, a provider error code, quiet_hours, daily_limit, automation_paused, retry_backoff, lease_expired…';
comment on column public.message_events.actor is 'Who: a user id, cron, dispatcher, provider, or the database role.';
create index message_events_workspace_message_idx on public.message_events (workspace_id, message_id, id);

/** Section - deletion log */
create table public.deletion_log (
  id bigint generated always as identity primary key,
  workspace_id uuid not null,
  entity text not null,
  entity_id uuid not null,
  mode text not null,
  actor text not null,
  counts jsonb not null,
  at timestamptz not null default now(),
  constraint deletion_log_entity_valid check (entity in ('workspace', 'contact', 'sequence', 'sender', 'campaign', 'appointment', 'whatsapp_group')),
  constraint deletion_log_mode_valid check (mode in ('soft', 'hard'))
);
comment on table public.deletion_log is 'What each deletion did, per table, without personal data. Outlives what it describes.';
comment on column public.deletion_log.workspace_id is 'No foreign key: the log of a deletion outlives the deleted rows, the workspace''s own deletion included.';
comment on column public.deletion_log.entity_id is 'No foreign key: the id of the row that was deleted.';
comment on column public.deletion_log.counts is '{"cancelled": {table: n}, "deleted": {table: n}, "set_null": {table.column: n}}';
create index deletion_log_workspace_at_idx on public.deletion_log (workspace_id, at desc);
create index deletion_log_entity_idx on public.deletion_log (entity_id);

/** Section - provider erasure outbox */
create table herald.provider_erasures (
  id bigint generated always as identity primary key,
  deletion_id bigint references public.deletion_log (id) on delete set null,
  workspace_id uuid not null,
  provider_sid text not null unique,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  erased_at timestamptz,
  last_error text,
  created_at timestamptz not null default now()
);
comment on table herald.provider_erasures is 'Outbox of Twilio message records to erase (DELETE /Messages/{Sid}) after a hard delete; retried until erased, never dropped.';
comment on column herald.provider_erasures.workspace_id is 'No foreign key: erasure at the provider must still happen after the workspace is gone.';
create index provider_erasures_deletion_idx on herald.provider_erasures (deletion_id);
create index provider_erasures_pending_idx on herald.provider_erasures (next_attempt_at) where erased_at is null;
alter table herald.provider_erasures enable row level security;

/** Section - queue settings */
create table public.queue_settings (
  workspace_id uuid primary key references public.workspaces (id) on delete cascade,
  daily_capacity integer not null default 50,
  window_start time not null default '09:00',
  window_end time not null default '17:00',
  default_sequence_id uuid,
  updated_at timestamptz not null default now(),
  foreign key (workspace_id, default_sequence_id) references public.sequences (workspace_id, id) on delete set null (default_sequence_id),
  constraint queue_settings_capacity_positive check (daily_capacity between 1 and 1000000),
  constraint queue_settings_window_not_empty check (window_start <> window_end)
);
comment on table public.queue_settings is 'Daily lead queue: how many new leads prepare_queue() enrolls per day, in which local send window, into which sequence.';
create index queue_settings_workspace_sequence_idx on public.queue_settings (workspace_id, default_sequence_id) where default_sequence_id is not null;
create trigger queue_settings_updated_at before update on public.queue_settings
for each row execute function extensions.moddatetime(updated_at);
comment on trigger queue_settings_updated_at on public.queue_settings is 'Keeps updated_at current on every update (moddatetime).';

/** Section - status graph and ledger trigger */
create function herald.message_transition_ok(p_from public.message_status, p_to public.message_status) returns boolean
language sql
immutable
set search_path = ''
as $$
  select p_from = p_to or case p_from
    when 'scheduled' then p_to in ('queued', 'cancelled', 'failed')
    when 'queued' then p_to in ('scheduled', 'sending', 'cancelled', 'failed')
    -- sending → cancelled only when Twilio provably never got it and the contact may no longer be messaged
    when 'sending' then p_to in ('queued', 'scheduled', 'sent', 'delivered', 'read', 'undelivered', 'failed', 'cancelled')
    when 'sent' then p_to in ('delivered', 'read', 'undelivered', 'failed')
    when 'delivered' then p_to = 'read'
    else false
  end
$$;
comment on function herald.message_transition_ok(public.message_status, public.message_status) is 'The message status graph. Nothing leaves read, undelivered, failed or cancelled; nothing moves backwards once sent.';

-- Who is acting: the user of the JWT, else what the caller declared (herald.actor), else the role.
create function herald.current_actor() returns text
language sql
stable
set search_path = ''
as $$
  select coalesce(
    (select auth.uid())::text,
    nullif(current_setting('herald.actor', true), ''),
    nullif((select auth.role()), ''),
    current_user
  )
$$;
comment on function herald.current_actor() is 'Who is acting, for the ledger and the logs: the JWT''s user, else the declared herald.actor, else the JWT''s role, else the database role.';

-- The ledger triggers read transition tables, which have no statistics: their statements run
-- through EXECUTE so each firing is planned for the rows it really has (a plan cached from a
-- one-row statement joins a 10,000-row one by nested loop). A function-level
-- plan_cache_mode setting would also re-plan every foreign-key check nested inside.
create function herald.messages_ledger_insert() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  execute 'insert into public.message_events (workspace_id, message_id, from_status, to_status, reason, actor)
           select n.workspace_id, n.id, null, n.status, coalesce(n.cancel_reason::text, $1), $2
           from new_rows n'
    using coalesce(nullif(current_setting('herald.reason', true), ''), 'created'), herald.current_actor();
  return null;
end;
$$;
comment on function herald.messages_ledger_insert() is 'Ledger: one message_events row per new message.';

create function herald.messages_ledger_update() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ok boolean;
  v_bad record;
begin
  -- The status graph, checked once per distinct (from, to) pair rather than once per row.
  execute 'select coalesce(bool_and(herald.message_transition_ok(p.from_status, p.to_status)), true)
           from (select distinct o.status as from_status, n.status as to_status
                 from old_rows o join new_rows n on n.id = o.id) p'
    into v_ok;
  if not v_ok then
    execute 'select o.id, o.status as from_status, n.status as to_status
             from old_rows o join new_rows n on n.id = o.id
             where not herald.message_transition_ok(o.status, n.status)
             order by o.id limit 1'
      into v_bad;
    raise exception 'message % cannot go from % to %', v_bad.id, v_bad.from_status, v_bad.to_status
      using errcode = '55000', hint = 'A message only moves forward; cancelled, failed, undelivered and read are final.';
  end if;

  execute 'insert into public.message_events (workspace_id, message_id, from_status, to_status, reason, actor, detail)
           select n.workspace_id, n.id, o.status, n.status,
                  case
                    when n.status = ''cancelled'' then n.cancel_reason::text
                    when n.status = any (herald.failed_statuses()) and n.last_error_code is not null
                      then coalesce($1, ''provider_error_'' || n.last_error_code)
                    else $1
                  end,
                  $2,
                  case when o.send_at is distinct from n.send_at
                    then jsonb_build_object(''send_at_from'', o.send_at, ''send_at_to'', n.send_at) end
           from old_rows o join new_rows n on n.id = o.id
           where o.status is distinct from n.status or o.send_at is distinct from n.send_at'
    using nullif(current_setting('herald.reason', true), ''), herald.current_actor();
  return null;
end;
$$;
comment on function herald.messages_ledger_update() is 'Ledger: rejects a move outside the status graph (55000); one message_events row per status change or send_at move, with reason and actor.';

-- A queued message is bound to its sender: claims go sender by sender. One that names none
-- takes the workspace's default sender of its channel; with no default, the
-- messages_queued_has_sender check refuses it (23514) rather than leaving it stuck.
create function herald.messages_bind_sender() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.sender_id := (select s.id from public.senders s
                    where s.workspace_id = new.workspace_id and s.channel = new.channel
                      and s.is_default and s.phone_number is not null);
  return new;
end;
$$;
comment on function herald.messages_bind_sender() is 'A message queued without a sender is bound to the workspace''s default sender of its channel; with none it is refused (23514, messages_queued_has_sender).';
create trigger messages_bind_sender before insert or update of status on public.messages
for each row when (new.status = 'queued' and new.sender_id is null) execute function herald.messages_bind_sender();

create trigger messages_ledger_insert after insert on public.messages
referencing new table as new_rows for each statement execute function herald.messages_ledger_insert();
create trigger messages_ledger_update after update on public.messages
referencing old table as old_rows new table as new_rows for each statement execute function herald.messages_ledger_update();

-- The ledger is append-only for everyone: only the cascade of a hard delete (a foreign-key
-- action, so trigger depth > 1) may remove its rows.
create function herald.message_events_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and pg_trigger_depth() > 1 then
    return old;
  end if;
  raise exception 'message_events is append-only' using errcode = '42501',
    hint = 'Ledger rows are never changed; they go only with their message when a contact is hard-deleted.';
end;
$$;
comment on function herald.message_events_append_only() is 'Ledger is append-only: no update, delete or truncate except the cascade of a hard delete.';
create trigger message_events_append_only before update or delete on public.message_events
for each row execute function herald.message_events_append_only();
create trigger message_events_no_truncate before truncate on public.message_events
for each statement execute function herald.message_events_append_only();

-- Messages are never deleted on their own: they go with their contact (hard delete) or their
-- workspace, both foreign-key cascades (trigger depth > 1). A direct delete would take the
-- message's ledger with it.
create function herald.messages_delete_only_by_cascade() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if pg_trigger_depth() > 1 then
    return null;
  end if;
  raise exception 'messages are not deleted one by one' using errcode = '42501',
    hint = 'cancel_message() stops a message; delete_contact(id, hard => true) erases a contact with its messages.';
end;
$$;
comment on function herald.messages_delete_only_by_cascade() is 'Messages go only with their contact or workspace (foreign-key cascade); a direct delete fails 42501.';
create trigger messages_delete_only_by_cascade before delete on public.messages
for each statement execute function herald.messages_delete_only_by_cascade();

/** Section - row level security */
alter table public.messages enable row level security;
alter table public.message_attempts enable row level security;
alter table public.message_events enable row level security;
alter table public.deletion_log enable row level security;
alter table public.queue_settings enable row level security;

create policy messages_select on public.messages for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy message_attempts_select on public.message_attempts for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy message_events_select on public.message_events for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy deletion_log_select on public.deletion_log for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy queue_settings_select on public.queue_settings for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy queue_settings_insert on public.queue_settings for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy queue_settings_update on public.queue_settings for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy queue_settings_delete on public.queue_settings for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));

revoke all on public.messages, public.message_attempts, public.message_events, public.deletion_log,
  public.queue_settings from anon;
-- Messages change only through Herald's RPCs, cron and the dispatcher; the logs only by trigger.
revoke insert, update, delete, truncate on public.messages, public.message_attempts, public.message_events,
  public.deletion_log from authenticated;
