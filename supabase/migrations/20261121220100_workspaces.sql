/**
 * Tenancy: workspaces, their members and roles, the membership helpers every RLS policy uses,
 * and `create_workspace()`, whose caller becomes the owner.
 *
 * Every Herald table carries workspace_id (directly or through its parent) and is readable by
 * the workspace's members only. Roles rank owner > admin > agent.
 */

/** Section - tables */
create table public.workspaces (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  timezone text not null default 'UTC',
  quiet_hours_start time not null default '21:00',
  quiet_hours_end time not null default '08:00',
  daily_limit integer,
  max_attempts integer not null default 3,
  retry_base_seconds integer not null default 60,
  automation_enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint workspaces_name_present check (length(btrim(name)) between 1 and 200),
  constraint workspaces_timezone_iana check (herald.is_iana_time_zone(timezone)),
  constraint workspaces_daily_limit_positive check (daily_limit is null or daily_limit > 0),
  constraint workspaces_max_attempts_range check (max_attempts between 1 and 20),
  constraint workspaces_retry_base_range check (retry_base_seconds between 1 and 86400)
);
comment on table public.workspaces is 'A tenant: every contact, sender, sequence and message belongs to exactly one workspace.';
comment on column public.workspaces.timezone is 'IANA time zone used for contacts that have none of their own.';
comment on column public.workspaces.quiet_hours_start is 'Local time at which sending stops (in the recipient''s time zone). A window may cross midnight.';
comment on column public.workspaces.quiet_hours_end is 'Local time at which sending resumes.';
comment on column public.workspaces.daily_limit is 'Most messages sent per local day across the workspace; null means no limit.';
comment on column public.workspaces.max_attempts is 'Default provider attempts per message before it fails.';
comment on column public.workspaces.retry_base_seconds is 'Base of the exponential retry backoff after a transient provider error.';
comment on column public.workspaces.automation_enabled is 'When false, due messages are held (not cancelled) until automation resumes.';

create trigger workspaces_updated_at before update on public.workspaces
for each row execute function extensions.moddatetime(updated_at);
comment on trigger workspaces_updated_at on public.workspaces is 'Keeps updated_at current on every update (moddatetime).';

create table public.workspace_members (
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'agent',
  created_at timestamptz not null default now(),
  primary key (workspace_id, user_id),
  constraint workspace_members_role_valid check (role in ('owner', 'admin', 'agent'))
);
comment on table public.workspace_members is 'Who belongs to a workspace, and with which role (owner > admin > agent).';
create index workspace_members_user_id_idx on public.workspace_members (user_id);

/** Section - membership helpers */
create function herald.role_rank(p_role text) returns integer
language sql
immutable
set search_path = ''
as $$
  select case p_role when 'owner' then 3 when 'admin' then 2 when 'agent' then 1 else 0 end
$$;
comment on function herald.role_rank(text) is 'owner 3 > admin 2 > agent 1; anything else 0.';

-- Security definer: workspace_members is itself protected by policies that call these helpers.
create function herald.my_workspace_ids(p_min_role text default 'agent') returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.workspace_id
  from public.workspace_members m
  where m.user_id = (select auth.uid())
    and herald.role_rank(m.role) >= herald.role_rank(p_min_role)
$$;
comment on function herald.my_workspace_ids(text) is 'The workspaces the calling user belongs to with at least the given role. Policies use it as `workspace_id in (select herald.my_workspace_ids())` so it runs once per statement.';
-- Policies run as the member whose statement they filter.
grant execute on function herald.my_workspace_ids(text) to authenticated, service_role;

create function herald.has_role(p_workspace_id uuid, p_min_role text default 'agent') returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.workspace_members m
    where m.workspace_id = p_workspace_id
      and m.user_id = (select auth.uid())
      and herald.role_rank(m.role) >= herald.role_rank(p_min_role)
  )
$$;
comment on function herald.has_role(uuid, text) is 'True if the calling user has at least the given role in the workspace.';
-- Asked in a member's own context too (a rule on a table she writes), and it answers only
-- about her.
grant execute on function herald.has_role(uuid, text) to authenticated, service_role;

-- Who is calling: the user of the JWT. Every RPC asks this first, itself or through the
-- herald.member_* lookups, before it reads anything: a call without a user gets the same 42501
-- whatever its arguments, never a "not found" or a complaint about a parameter.
create function herald.require_user() returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
begin
  if v_user is null then
    raise exception 'not signed in' using errcode = '42501',
      hint = 'Call this with a user''s JWT: the authenticated role with a sub claim.';
  end if;
  return v_user;
end;
$$;
comment on function herald.require_user() is 'The calling user''s id (auth.uid()); raises 42501 "not signed in" when the request carries none.';

-- The caller must have at least the given role in the workspace.
create function herald.require_role(p_workspace_id uuid, p_min_role text default 'agent') returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  perform herald.require_user();
  if p_workspace_id is null or not herald.has_role(p_workspace_id, p_min_role) then
    raise exception 'not a member of this workspace with role % or higher', p_min_role using errcode = '42501';
  end if;
end;
$$;
comment on function herald.require_role(uuid, text) is 'Raises 42501 unless the calling user has at least the given role in the workspace.';

/** Section - row level security */
alter table public.workspaces enable row level security;
alter table public.workspace_members enable row level security;

create policy workspaces_select on public.workspaces for select to authenticated
  using (id in (select herald.my_workspace_ids()));
create policy workspaces_update on public.workspaces for update to authenticated
  using (id in (select herald.my_workspace_ids('admin')))
  with check (id in (select herald.my_workspace_ids('admin')));
create policy workspaces_delete on public.workspaces for delete to authenticated
  using (id in (select herald.my_workspace_ids('owner')));
-- No insert policy: workspaces are created through create_workspace(), which adds the owner.

create policy workspace_members_select on public.workspace_members for select to authenticated
  using (workspace_id in (select herald.my_workspace_ids()));
create policy workspace_members_insert on public.workspace_members for insert to authenticated
  with check (workspace_id in (select herald.my_workspace_ids('admin')) and role <> 'owner');
create policy workspace_members_update on public.workspace_members for update to authenticated
  using (workspace_id in (select herald.my_workspace_ids('owner')))
  with check (workspace_id in (select herald.my_workspace_ids('owner')));
create policy workspace_members_delete on public.workspace_members for delete to authenticated
  using (workspace_id in (select herald.my_workspace_ids('admin')) or user_id = (select auth.uid()));

revoke all on public.workspaces, public.workspace_members from anon;

-- A workspace always keeps an owner: the last one can neither leave nor be demoted. Security
-- definer so it sees every owner and auth.users whichever member's statement fires it.
create function herald.keep_an_owner() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.role = 'owner'
     and (tg_op = 'DELETE' or new.role <> 'owner')
     and exists (select 1 from public.workspaces w where w.id = old.workspace_id)
     and not exists (
       select 1 from public.workspace_members m
       where m.workspace_id = old.workspace_id and m.role = 'owner' and m.user_id <> old.user_id
     ) then
    -- Deleting the user or the whole workspace is allowed; removing the last owner by hand is not.
    if tg_op = 'DELETE' and not exists (select 1 from auth.users u where u.id = old.user_id) then
      return old;
    end if;
    raise exception 'a workspace must keep at least one owner' using errcode = '23514',
      hint = 'Make another member owner first, or delete the workspace.';
  end if;
  return coalesce(new, old);
end;
$$;
comment on function herald.keep_an_owner() is 'The last owner can neither leave nor be demoted; deleting the user or the workspace is allowed.';
create trigger workspace_members_keep_an_owner before update or delete on public.workspace_members
for each row execute function herald.keep_an_owner();

/** Section - RPC */
create function public.create_workspace(name text, timezone text default 'UTC') returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user uuid := herald.require_user();
  v_id uuid;
begin
  if name is null or length(btrim(name)) = 0 then
    raise exception 'workspace name must not be empty' using errcode = '22023';
  end if;
  if length(btrim(name)) > 200 then
    raise exception 'workspace name is longer than 200 characters' using errcode = '22023';
  end if;
  perform herald.check_time_zone(timezone);

  insert into public.workspaces (name, timezone) values (btrim(name), timezone) returning id into v_id;
  insert into public.workspace_members (workspace_id, user_id, role) values (v_id, v_user, 'owner');
  return v_id;
end;
$$;
comment on function public.create_workspace(text, text) is 'Creates a workspace whose owner is the caller. Raises 42501 without a signed-in user, 22023 on an empty name or a time zone that is not an IANA name.';
revoke execute on function public.create_workspace(text, text) from public, anon;
grant execute on function public.create_workspace(text, text) to authenticated;
