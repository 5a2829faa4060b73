/**
 * Senders (a Twilio number or a WhatsApp session), their WhatsApp groups, campaigns and the
 * campaign-to-group links.
 *
 * A foreign key that sets null on a not-null column makes its parent undeletable (every delete
 * fails on the not-null constraint). campaign_groups.group_id is not null, so its foreign key
 * cascades; a catalog test fails the suite if any key ever sets null on a not-null column.
 * Deleting a sender cascades to its groups and from them to campaign links; its pending
 * messages are re-bound or cancelled by a trigger (see the deletion-rules migration).
 */

create type public.channel as enum ('sms', 'whatsapp');
create type public.sender_status as enum ('connecting', 'qr_pending', 'connected', 'disconnected');
create type public.campaign_status as enum ('draft', 'active', 'paused', 'completed', 'archived');

create table public.senders (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  channel public.channel not null,
  phone_number text,
  status public.sender_status not null default 'connecting',
  mps numeric not null default 1,
  is_default boolean not null default false,
  created_at timestamptz not null default now(),
  last_seen_at timestamptz,
  unique (workspace_id, id),
  constraint senders_phone_e164 check (phone_number is null or phone_number ~ '^\+[1-9][0-9]{6,14}$'),
  constraint senders_mps_positive check (mps > 0 and mps <= 1000),
  constraint senders_default_has_number check (not is_default or phone_number is not null)
);
comment on table public.senders is 'Where messages are sent from: a Twilio number (sms) or a WhatsApp sender.';
comment on column public.senders.mps is 'Messages per second this sender may send, held across concurrent dispatchers.';
comment on column public.senders.is_default is 'The sender used for messages with none, per channel. At most one per workspace and channel.';
create unique index senders_one_default_per_channel on public.senders (workspace_id, channel) where is_default;

create table public.whatsapp_groups (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  sender_id uuid not null,
  external_id text not null,
  name text,
  created_at timestamptz not null default now(),
  unique (workspace_id, id),
  unique (sender_id, external_id),
  foreign key (workspace_id, sender_id) references public.senders (workspace_id, id) on delete cascade
);
comment on table public.whatsapp_groups is 'WhatsApp groups seen through a sender; they go when the sender goes.';
comment on column public.whatsapp_groups.external_id is 'The group''s id at WhatsApp. No foreign key: it names something outside this database.';
create index whatsapp_groups_workspace_sender_idx on public.whatsapp_groups (workspace_id, sender_id);

create table public.campaigns (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  name text not null,
  status public.campaign_status not null default 'draft',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, id),
  constraint campaigns_name_present check (length(btrim(name)) between 1 and 200)
);
comment on table public.campaigns is 'A broadcast to WhatsApp groups or contacts. Deleting one cancels its pending messages (campaign_deleted).';
create trigger campaigns_updated_at before update on public.campaigns
for each row execute function extensions.moddatetime(updated_at);
comment on trigger campaigns_updated_at on public.campaigns is 'Keeps updated_at current on every update (moddatetime).';

create table public.campaign_groups (
  workspace_id uuid not null,
  campaign_id uuid not null,
  group_id uuid not null,
  primary key (campaign_id, group_id),
  foreign key (workspace_id, campaign_id) references public.campaigns (workspace_id, id) on delete cascade,
  foreign key (workspace_id, group_id) references public.whatsapp_groups (workspace_id, id) on delete cascade
);
comment on table public.campaign_groups is 'Which groups a campaign targets. Both keys are not null, so both cascade: a set null here would make every group and campaign undeletable.';
create index campaign_groups_workspace_campaign_idx on public.campaign_groups (workspace_id, campaign_id);
create index campaign_groups_workspace_group_idx on public.campaign_groups (workspace_id, group_id);

alter table public.senders enable row level security;
alter table public.whatsapp_groups enable row level security;
alter table public.campaigns enable row level security;
alter table public.campaign_groups enable row level security;

create policy senders_select on public.senders for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy senders_insert on public.senders for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy senders_update on public.senders for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy senders_delete on public.senders for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));
create policy whatsapp_groups_select on public.whatsapp_groups for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy whatsapp_groups_insert on public.whatsapp_groups for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy whatsapp_groups_update on public.whatsapp_groups for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy whatsapp_groups_delete on public.whatsapp_groups for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));
create policy campaigns_select on public.campaigns for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy campaigns_insert on public.campaigns for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy campaigns_update on public.campaigns for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy campaigns_delete on public.campaigns for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));
create policy campaign_groups_select on public.campaign_groups for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy campaign_groups_insert on public.campaign_groups for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy campaign_groups_update on public.campaign_groups for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')))
  with check (workspace_id in (select herald.my_workspace_ids('admin')));
create policy campaign_groups_delete on public.campaign_groups for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')));

revoke all on public.senders, public.whatsapp_groups, public.campaigns, public.campaign_groups from anon;
