/**
 * Message templates: the placeholders a sequence step's body may use, and the one renderer that
 * fills them. Sequence steps, enrollments and the queue all render through herald.render_bodies(),
 * so a placeholder means the same everywhere, and a step with an unknown placeholder is refused
 * when it is saved rather than sent with the braces in it.
 *
 *   {{first_name}}, {{last_name}}   from the contact
 *   {{var.KEY}}                     from contact_variables; a missing value renders empty
 */

/** Section - rendering */
-- Renders one template for many contacts in one statement: the template is split once, and
-- the contacts are joined to its pieces (prepare_queue renders 100,000 bodies at a time; a
-- per-contact function call was re-planned on every row). One pass, left to right: each piece
-- of text between placeholders, then the value of the placeholder after it. A value is never
-- read as a template in turn (a first name written "{{last_name}}" stays as written), and no
-- value goes through regexp_replace(), so one containing \1 or & comes out as written.
create function herald.render_bodies(p_workspace_id uuid, p_body text, p_contact_ids uuid[])
returns table (contact_id uuid, body text)
language sql
stable
set search_path = ''
as $$
  with parts as materialized (
    select t.n, t.piece, m.token[1] as token, m.token[2] as var_key
    from unnest(regexp_split_to_array(p_body, '\{\{\s*(first_name|last_name|var\.([a-z][a-z0-9_]*))\s*\}\}'))
         with ordinality t(piece, n)
    left join regexp_matches(p_body, '\{\{\s*(first_name|last_name|var\.([a-z][a-z0-9_]*))\s*\}\}', 'g')
         with ordinality m(token, n) on m.n = t.n
  )
  select c.id,
         string_agg(p.piece || coalesce(case p.token when 'first_name' then c.first_name
                                                     when 'last_name' then c.last_name
                                                     else v.value end, ''), '' order by p.n)
  from (select distinct u.id from unnest(p_contact_ids) u(id)) ids
  join public.contacts c on c.workspace_id = p_workspace_id and c.id = ids.id
  cross join parts p
  left join public.contact_variables v
    on v.workspace_id = p_workspace_id and v.contact_id = c.id and v.key = p.var_key
  group by c.id
$$;
comment on function herald.render_bodies(uuid, text, uuid[]) is 'Fills {{first_name}}, {{last_name}} and {{var.KEY}} of one template for each of the contacts; a missing value renders empty. Contacts not in the workspace are left out.';

create function herald.render_template(p_body text, p_workspace_id uuid, p_contact_id uuid) returns text
language sql
stable
set search_path = ''
as $$
  select r.body from herald.render_bodies(p_workspace_id, p_body, array[p_contact_id]) r
$$;
comment on function herald.render_template(text, uuid, uuid) is 'Fills {{first_name}}, {{last_name}} and {{var.KEY}} from the contact; a missing value renders empty.';

/** Section - what a step body may contain */
alter table public.sequence_steps add constraint sequence_steps_template_tokens
  check (body !~ '\{\{(?!\s*(first_name|last_name|var\.[a-z][a-z0-9_]*)\s*\}\})');
comment on constraint sequence_steps_template_tokens on public.sequence_steps is 'Only {{first_name}}, {{last_name}} and {{var.KEY}} are placeholders: a typo fails at save time, not at send time.';
