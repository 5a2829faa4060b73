/**
 * Sequences (ordered, delayed steps), enrollments of contacts in them, and appointments whose
 * reminders are messages. The rules that stop enrollments and cancel reminders live in the
 * deletion-rules migration.
 */

create type public.sequence_status as enum ('draft', 'active', 'archived');
create type public.enrollment_status as enum ('active', 'completed', 'cancelled', 'failed');
create type public.appointment_status as enum ('scheduled', 'cancelled', 'completed');

create table public.sequences (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  name text not null,
  status public.sequence_status not null default 'draft',
  stop_on_reply boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, id),
  constraint sequences_name_present check (length(btrim(name)) between 1 and 200)
);
comment on table public.sequences is 'An ordered list of messages sent one after another. Archiving or deleting one stops its active enrollments (sequence_stopped); sent history stays.';
comment on column public.sequences.stop_on_reply is 'When true, any inbound reply from the contact stops the enrollment (replied).';
create trigger sequences_updated_at before update on public.sequences
for each row execute function extensions.moddatetime(updated_at);
comment on trigger sequences_updated_at on public.sequences is 'Keeps updated_at current on every update (moddatetime).';

create table public.sequence_steps (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  sequence_id uuid not null,
  position integer not null,
  delay interval not null default '0',
  channel public.channel not null default 'sms',
  body text not null,
  unique (workspace_id, id),
  unique (sequence_id, position),
  foreign key (workspace_id, sequence_id) references public.sequences (workspace_id, id) on delete cascade,
  constraint sequence_steps_position_positive check (position > 0),
  constraint sequence_steps_delay_not_negative check (delay >= '0'),
  constraint sequence_steps_body_length check (length(btrim(body)) between 1 and 1600)
);
comment on table public.sequence_steps is 'One message of a sequence. Step N+1 is sent `delay` after step N was sent; step 1 `delay` after enrollment.';
comment on column public.sequence_steps.body is 'Template: {{first_name}}, {{last_name}} and {{var.KEY}} (contact_variables) are filled in when the step is scheduled.';
create index sequence_steps_workspace_sequence_idx on public.sequence_steps (workspace_id, sequence_id);

create table public.sequence_enrollments (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  sequence_id uuid not null,
  contact_id uuid not null,
  status public.enrollment_status not null default 'active',
  stopped_reason text,
  current_position integer not null default 0,
  enrolled_at timestamptz not null default now(),
  completed_at timestamptz,
  updated_at timestamptz not null default now(),
  unique (workspace_id, id),
  foreign key (workspace_id, sequence_id) references public.sequences (workspace_id, id) on delete cascade,
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  constraint sequence_enrollments_stop_reason check ((status in ('cancelled', 'failed')) = (stopped_reason is not null)),
  constraint sequence_enrollments_completed_at check ((status = 'active') = (completed_at is null))
);
comment on table public.sequence_enrollments is 'A contact going through a sequence. At most one active enrollment per sequence and contact.';
comment on column public.sequence_enrollments.current_position is 'Position of the last step scheduled (0 before the first).';
comment on column public.sequence_enrollments.stopped_reason is 'Why a cancelled or failed enrollment stopped (a message cancel_reason, or the failure).';
create unique index sequence_enrollments_one_active on public.sequence_enrollments (sequence_id, contact_id) where status = 'active';
create index sequence_enrollments_workspace_sequence_idx on public.sequence_enrollments (workspace_id, sequence_id);
create index sequence_enrollments_workspace_contact_idx on public.sequence_enrollments (workspace_id, contact_id);
create trigger sequence_enrollments_updated_at before update on public.sequence_enrollments
for each row execute function extensions.moddatetime(updated_at);
comment on trigger sequence_enrollments_updated_at on public.sequence_enrollments is 'Keeps updated_at current on every update (moddatetime).';

create table public.appointments (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  contact_id uuid not null,
  title text not null,
  starts_at timestamptz not null,
  status public.appointment_status not null default 'scheduled',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, id),
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  constraint appointments_title_present check (length(btrim(title)) between 1 and 200)
);
comment on table public.appointments is 'A meeting with a contact. Moving starts_at moves its pending reminders by the same amount; cancelling, completing or deleting it cancels them.';
create index appointments_workspace_contact_idx on public.appointments (workspace_id, contact_id);
create trigger appointments_updated_at before update on public.appointments
for each row execute function extensions.moddatetime(updated_at);
comment on trigger appointments_updated_at on public.appointments is 'Keeps updated_at current on every update (moddatetime).';

alter table public.sequences enable row level security;
alter table public.sequence_steps enable row level security;
alter table public.sequence_enrollments enable row level security;
alter table public.appointments enable row level security;

create policy sequences_select on public.sequences for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy sequences_insert on public.sequences for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy sequences_update on public.sequences for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy sequences_delete on public.sequences for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));
create policy sequence_steps_select on public.sequence_steps for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy sequence_steps_insert on public.sequence_steps for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy sequence_steps_update on public.sequence_steps for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy sequence_steps_delete on public.sequence_steps for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));
-- Enrollments change only through enroll_contact() and Herald's own rules.
create policy sequence_enrollments_select on public.sequence_enrollments for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy appointments_all on public.appointments for all to authenticated
  using (workspace_id in (select herald.my_workspace_ids()))
  with check (workspace_id in (select herald.my_workspace_ids()));

revoke all on public.sequences, public.sequence_steps, public.sequence_enrollments, public.appointments from anon;
revoke insert, update, delete, truncate on public.sequence_enrollments from authenticated;
