/**
 * Child rows take their workspace from their parent.
 *
 * The contract lists sequence_steps, contact_tags, contact_variables and campaign_groups by their
 * parent key; inserting one without workspace_id failed with a not-null or RLS error that said
 * nothing useful. Now workspace_id is filled from the parent when omitted, must agree with it
 * when given, and a parent the caller cannot see (another workspace's, or none) is "not found"
 * (P0002), as in the RPCs. The composite foreign keys still hold whatever is written.
 */
create function herald.child_take_workspace() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- tg_argv: the parent table, its name in messages, and the child's column naming it.
  v_parent_id uuid := (to_jsonb(new) ->> tg_argv[2])::uuid;
  v_workspace uuid;
begin
  -- The server's own bulk writes name the workspace: the composite foreign key checks it.
  if new.workspace_id is not null and current_setting('role', true) is distinct from 'authenticated' then
    return new;
  end if;
  execute format('select workspace_id from %s where id = $1', tg_argv[0]::regclass) into v_workspace using v_parent_id;
  -- Security definer, so the lookup sees every workspace: the caller's own reach is checked here.
  if v_workspace is null
     or (current_setting('role', true) = 'authenticated' and not herald.has_role(v_workspace))
     or (new.workspace_id is not null and new.workspace_id <> v_workspace) then
    raise exception '% % not found', tg_argv[1], v_parent_id using errcode = 'P0002',
      hint = format('workspace_id may be left out: it is taken from the %s.', tg_argv[1]);
  end if;
  new.workspace_id := v_workspace;
  return new;
end;
$$;
comment on function herald.child_take_workspace() is 'A child row takes workspace_id from its parent (and must agree when given); a parent in another workspace is not found (P0002).';

create trigger sequence_steps_take_workspace before insert on public.sequence_steps
for each row execute function herald.child_take_workspace('public.sequences', 'sequence', 'sequence_id');
create trigger contact_tags_take_workspace before insert on public.contact_tags
for each row execute function herald.child_take_workspace('public.contacts', 'contact', 'contact_id');
create trigger contact_variables_take_workspace before insert on public.contact_variables
for each row execute function herald.child_take_workspace('public.contacts', 'contact', 'contact_id');
create trigger campaign_groups_take_workspace before insert on public.campaign_groups
for each row execute function herald.child_take_workspace('public.campaigns', 'campaign', 'campaign_id');
comment on trigger sequence_steps_take_workspace on public.sequence_steps is 'workspace_id from the sequence when omitted.';
comment on trigger contact_tags_take_workspace on public.contact_tags is 'workspace_id from the contact when omitted.';
comment on trigger contact_variables_take_workspace on public.contact_variables is 'workspace_id from the contact when omitted.';
comment on trigger campaign_groups_take_workspace on public.campaign_groups is 'workspace_id from the campaign when omitted.';
