/**
 * Contacts and what hangs off them: tags, template variables, the activity history, and the
 * suppression list that outlives a contact's hard delete.
 *
 * lead_status is a Postgres enum so that one list drives the constraint, the RPCs and the
 * generated TypeScript types (an app that offers a status the constraint does not know fails
 * only when a user clicks it).
 */

/** Section - types */
create type public.lead_status as enum ('new', 'queued', 'contacted', 'engaged', 'booked', 'won', 'lost', 'unqualified');
comment on type public.lead_status is 'Where a lead stands in the funnel. The one list used by the contacts constraint, the RPCs and the generated types.';

create type public.controlled_by as enum ('automation', 'human');
comment on type public.controlled_by is 'automation: Herald may message the contact; human: an agent took the lead and automation stays away.';

-- Every table references its parent together with workspace_id, so a row can never point into
-- another tenant: the composite foreign keys below need (workspace_id, id) to be unique.

/** Section - contacts */
create table public.contacts (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  phone text not null,
  email text,
  first_name text,
  last_name text,
  timezone text,
  lead_status public.lead_status not null default 'new',
  controlled_by public.controlled_by not null default 'automation',
  assigned_to uuid references auth.users (id) on delete set null,
  opted_out_at timestamptz,
  last_inbound_at timestamptz,
  deleted_at timestamptz,
  phone_hash text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, id),
  constraint contacts_phone_e164 check (phone ~ '^\+[1-9][0-9]{6,14}$'),
  constraint contacts_email_shape check (email is null or email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
  constraint contacts_timezone_iana check (timezone is null or herald.is_iana_time_zone(timezone)),
  constraint contacts_names_length check (length(coalesce(first_name, '')) <= 100 and length(coalesce(last_name, '')) <= 100)
);
comment on table public.contacts is 'People a workspace messages. Soft-deleted rows (deleted_at) are purged after the retention period; any delete cancels every future execution first.';
comment on column public.contacts.phone is 'E.164, e.g. +14155550123. One live contact per phone and workspace.';
comment on column public.contacts.timezone is 'IANA time zone for quiet hours and send windows; null falls back to the workspace''s.';
comment on column public.contacts.controlled_by is 'human after take_lead(): every pending automated message and active enrollment is cancelled.';
comment on column public.contacts.assigned_to is 'The agent who took the lead; cleared if that user is deleted.';
comment on column public.contacts.opted_out_at is 'Set by STOP (or a 21610 from Twilio): nothing is sent while set, and the number stays suppressed even after a hard delete.';
comment on column public.contacts.phone_hash is 'Keyed hash of phone (herald.phone_hash), matched against suppressions with an index lookup instead of an HMAC per message. Maintained by trigger.';
comment on column public.contacts.deleted_at is 'Soft delete: setting it cancels every pending message and active enrollment in the same transaction. restore_contact() clears it.';

create unique index contacts_live_phone_key on public.contacts (workspace_id, phone) where deleted_at is null;
create index contacts_assigned_to_idx on public.contacts (assigned_to) where assigned_to is not null;
create index contacts_deleted_at_idx on public.contacts (deleted_at) where deleted_at is not null;
create index contacts_new_leads_idx on public.contacts (workspace_id, created_at)
  where lead_status = 'new' and deleted_at is null and opted_out_at is null and controlled_by = 'automation';

create trigger contacts_updated_at before update on public.contacts
for each row execute function extensions.moddatetime(updated_at);
comment on trigger contacts_updated_at on public.contacts is 'Keeps updated_at current on every update (moddatetime).';

/** Section - tags, variables, activities */
create table public.contact_tags (
  workspace_id uuid not null,
  contact_id uuid not null,
  tag text not null,
  created_at timestamptz not null default now(),
  primary key (contact_id, tag),
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  constraint contact_tags_tag_shape check (length(btrim(tag)) between 1 and 64)
);
comment on table public.contact_tags is 'Free-form labels on a contact; erased with the contact.';
create index contact_tags_workspace_contact_idx on public.contact_tags (workspace_id, contact_id);
create index contact_tags_workspace_tag_idx on public.contact_tags (workspace_id, tag);

create table public.contact_variables (
  workspace_id uuid not null,
  contact_id uuid not null,
  key text not null,
  value text not null,
  primary key (contact_id, key),
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  constraint contact_variables_key_shape check (key ~ '^[a-z][a-z0-9_]{0,62}$'),
  constraint contact_variables_value_length check (length(value) <= 1000)
);
comment on table public.contact_variables is 'Values for {{var.KEY}} in message templates; erased with the contact.';
create index contact_variables_workspace_contact_idx on public.contact_variables (workspace_id, contact_id);

create table public.contact_activities (
  id bigint generated always as identity primary key,
  workspace_id uuid not null,
  contact_id uuid not null,
  kind text not null,
  detail jsonb not null default '{}',
  actor text not null,
  at timestamptz not null default now(),
  foreign key (workspace_id, contact_id) references public.contacts (workspace_id, id) on delete cascade,
  constraint contact_activities_kind_shape check (kind ~ '^[a-z_]+$')
);
comment on table public.contact_activities is 'What happened to a contact (opt-out, takeover, deletion, restore, reply…). Written by Herald''s triggers and RPCs; erased with the contact.';
comment on column public.contact_activities.actor is 'Who did it: a user id, or cron / service_role / provider.';
create index contact_activities_contact_idx on public.contact_activities (workspace_id, contact_id, at desc);

/** Section - suppressions */
create table herald.workspace_keys (
  workspace_id uuid primary key references public.workspaces (id) on delete cascade,
  phone_hash_key bytea not null default extensions.gen_random_bytes(32)
);
comment on table herald.workspace_keys is 'Per-workspace secret for hashing phone numbers in suppressions: a bare SHA-256 of a phone number is trivially reversible.';

create table public.suppressions (
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  phone_hash text not null,
  reason text not null,
  at timestamptz not null default now(),
  primary key (workspace_id, phone_hash),
  constraint suppressions_reason_valid check (reason in ('opted_out', 'provider_unsubscribed'))
);
comment on table public.suppressions is 'Numbers that must not be messaged, kept as keyed hashes so they outlive a hard delete without keeping the number.';

create function herald.phone_hash(p_workspace_id uuid, p_phone text) returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_key bytea;
begin
  select phone_hash_key into v_key from herald.workspace_keys where workspace_id = p_workspace_id;
  if v_key is null then
    insert into herald.workspace_keys (workspace_id) values (p_workspace_id)
    on conflict (workspace_id) do nothing;
    select phone_hash_key into v_key from herald.workspace_keys where workspace_id = p_workspace_id;
  end if;
  return encode(extensions.hmac(convert_to(p_phone, 'UTF8'), v_key, 'sha256'), 'hex');
end;
$$;
comment on function herald.phone_hash(uuid, text) is 'Keyed hash of a phone number for the suppression list.';
-- Security definer with any workspace's key: Herald's triggers and RPCs only, never a client.
revoke execute on function herald.phone_hash(uuid, text) from public;

create function herald.is_suppressed(p_workspace_id uuid, p_phone text) returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.suppressions s
    join herald.workspace_keys k on k.workspace_id = s.workspace_id
    where s.workspace_id = p_workspace_id
      and s.phone_hash = encode(extensions.hmac(convert_to(p_phone, 'UTF8'), k.phone_hash_key, 'sha256'), 'hex')
  )
$$;
-- Not to authenticated: it answers for any workspace, so a member could ask about another
-- tenant's opt-outs. The RPCs call it as their owner.
revoke execute on function herald.is_suppressed(uuid, text) from public;
grant execute on function herald.is_suppressed(uuid, text) to service_role;

/** Section - row level security */
alter table public.contacts enable row level security;
alter table public.contact_tags enable row level security;
alter table public.contact_variables enable row level security;
alter table public.contact_activities enable row level security;
alter table public.suppressions enable row level security;
alter table herald.workspace_keys enable row level security;

create policy contacts_select on public.contacts for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy contacts_insert on public.contacts for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids()));
create policy contacts_update on public.contacts for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids()))
  with check (workspace_id in (select herald.my_workspace_ids()));
-- A hard delete erases personal data for good: admins and owners only.
create policy contacts_delete on public.contacts for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));

create policy contact_tags_all on public.contact_tags for all to authenticated
  using (workspace_id in (select herald.my_workspace_ids()))
  with check (workspace_id in (select herald.my_workspace_ids()));
create policy contact_variables_all on public.contact_variables for all to authenticated
  using (workspace_id in (select herald.my_workspace_ids()))
  with check (workspace_id in (select herald.my_workspace_ids()));
create policy contact_activities_select on public.contact_activities for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy suppressions_select on public.suppressions for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));

revoke all on public.contacts, public.contact_tags, public.contact_variables, public.contact_activities,
  public.suppressions from anon;
-- The history and the suppression list are written by Herald only.
revoke insert, update, delete, truncate on public.contact_activities, public.suppressions from authenticated;
