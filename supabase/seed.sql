-- Local demo data, loaded by `npm start` (and by `supabase db reset` under the Docker stack).
-- The demo user's id and e-mail match scripts/lib/config.ts, which prints a token for them.

insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, email_confirmed_at)
values (
  '00000000-0000-4000-8000-00000000d3e0', 'authenticated', 'authenticated', 'demo@herald.local',
  '{"provider":"email","providers":["email"]}', '{"name":"Demo User"}', now()
)
on conflict (id) do nothing;

insert into public.workspaces (id, name, timezone)
values ('00000000-0000-4000-8000-0000000000a1', 'Demo Workspace', 'America/New_York')
on conflict (id) do nothing;

insert into public.workspace_members (workspace_id, user_id, role)
values ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-00000000d3e0', 'owner')
on conflict do nothing;
