/**
 * Keywords: what an inbound message means when it is nothing but a keyword. Twilio's standard
 * English sets (opt-out: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT; opt-in:
 * START, YES, UNSTOP, OPTIN; help: HELP, INFO), plus the words a workspace adds for its own
 * audience (PARAR, ARRET…), matched the way Twilio matches: the whole message, any case, with
 * surrounding spaces and punctuation ignored ("Stop." is STOP; "stop texting me" is a reply).
 *
 *   herald.standard_keywords   the standard sets, one list for the matcher and the validation
 *   workspaces.opt_out_keywords / opt_in_keywords   the workspace's additions, stored normalised
 *   workspaces.help_reply      answered to HELP and INFO when set
 *   herald.classify_keyword()  'opt_out' | 'opt_in' | 'help' | null for one inbound body
 *
 * A workspace's words are upper-cased and trimmed on write, and refused (22023, naming the word)
 * when one is in both sets, or is a standard keyword of another kind: a word that both stops and
 * starts messages would leave the contact's standing to chance.
 */

/** Section - the standard sets */
create table herald.standard_keywords (
  keyword text primary key,
  action text not null,
  constraint standard_keywords_action_valid check (action in ('opt_out', 'opt_in', 'help'))
);
comment on table herald.standard_keywords is 'Twilio''s standard keywords on long codes: opt-out, opt-in and help. Workspaces add to these; they never replace them.';
insert into herald.standard_keywords (keyword, action) values
  ('STOP', 'opt_out'), ('STOPALL', 'opt_out'), ('UNSUBSCRIBE', 'opt_out'), ('CANCEL', 'opt_out'),
  ('END', 'opt_out'), ('QUIT', 'opt_out'), ('REVOKE', 'opt_out'), ('OPTOUT', 'opt_out'),
  ('START', 'opt_in'), ('YES', 'opt_in'), ('UNSTOP', 'opt_in'), ('OPTIN', 'opt_in'),
  ('HELP', 'help'), ('INFO', 'help');
alter table herald.standard_keywords enable row level security;
create policy standard_keywords_select on herald.standard_keywords for select to authenticated, service_role using (true);
grant select on herald.standard_keywords to authenticated, service_role;

-- What a message says once case, surrounding whitespace and punctuation are set aside: the form
-- keywords are stored and compared in. Letters and digits of any script survive (ARRÊT, PARAR).
create function herald.normalize_keyword(p_text text) returns text
language sql
immutable
set search_path = ''
as $$
  select nullif(upper(regexp_replace(coalesce(p_text, ''), '^[[:space:][:punct:]]+|[[:space:][:punct:]]+$', '', 'g')), '')
$$;
comment on function herald.normalize_keyword(text) is 'Upper-cased, with leading and trailing whitespace and punctuation removed; null when nothing is left.';
grant execute on function herald.normalize_keyword(text) to authenticated, service_role;

/** Section - the workspace's words */
alter table public.workspaces
  add column help_reply text,
  add column opt_out_keywords text[] not null default '{}',
  add column opt_in_keywords text[] not null default '{}',
  add constraint workspaces_help_reply_length check (help_reply is null or length(help_reply) between 1 and 1600),
  add constraint workspaces_keyword_counts check (cardinality(opt_out_keywords) <= 50 and cardinality(opt_in_keywords) <= 50);
comment on column public.workspaces.help_reply is 'Answered to HELP and INFO (with the TwiML of the inbound webhook); null leaves HELP to Twilio''s own default reply.';
comment on column public.workspaces.opt_out_keywords is 'Extra opt-out words for this workspace (e.g. PARAR, ARRET), added to STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT. Stored upper-cased and trimmed.';
comment on column public.workspaces.opt_in_keywords is 'Extra opt-in words for this workspace, added to START, YES, UNSTOP, OPTIN. Stored upper-cased and trimmed.';

create function herald.workspaces_keywords() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_word text;
  v_clash text;
begin
  new.help_reply := nullif(btrim(new.help_reply), '');
  foreach v_word in array new.opt_out_keywords || new.opt_in_keywords loop
    if herald.normalize_keyword(v_word) is null or herald.normalize_keyword(v_word) !~ '^[[:alnum:]]{1,30}$' then
      raise exception 'keyword "%" must be one word of 1 to 30 letters or digits', v_word using errcode = '22023',
        hint = 'Keywords match a whole message, such as PARAR or ARRET.';
    end if;
  end loop;
  new.opt_out_keywords := array(select distinct herald.normalize_keyword(w) from unnest(new.opt_out_keywords) w order by 1);
  new.opt_in_keywords := array(select distinct herald.normalize_keyword(w) from unnest(new.opt_in_keywords) w order by 1);

  select w into v_clash from unnest(new.opt_out_keywords) w where w = any (new.opt_in_keywords) limit 1;
  if v_clash is not null then
    raise exception 'keyword "%" is both an opt-out and an opt-in keyword', v_clash using errcode = '22023';
  end if;
  select w into v_clash from unnest(new.opt_out_keywords) w
  join herald.standard_keywords k on k.keyword = w and k.action <> 'opt_out' limit 1;
  if v_clash is null then
    select w into v_clash from unnest(new.opt_in_keywords) w
    join herald.standard_keywords k on k.keyword = w and k.action <> 'opt_in' limit 1;
  end if;
  if v_clash is not null then
    raise exception 'keyword "%" is already a standard keyword of another kind', v_clash using errcode = '22023',
      hint = 'HELP and INFO answer with help_reply; STOP and the other opt-out words cannot opt in, START and its kin cannot opt out.';
  end if;
  return new;
end;
$$;
comment on function herald.workspaces_keywords() is 'Normalises a workspace''s keywords (upper-cased, trimmed, deduplicated) and help_reply; refuses (22023) a word that is not one word, is in both sets, or is a standard keyword of another kind.';
revoke execute on function herald.workspaces_keywords() from public;
create trigger workspaces_keywords before insert or update of help_reply, opt_out_keywords, opt_in_keywords on public.workspaces
for each row execute function herald.workspaces_keywords();
comment on trigger workspaces_keywords on public.workspaces is 'Validates and normalises the keyword columns (herald.workspaces_keywords).';

/** Section - classifying an inbound body */
create function herald.classify_keyword(p_workspace_id uuid, p_body text) returns text
language sql
stable
set search_path = ''
as $$
  with k as (select herald.normalize_keyword(p_body) as word)
  select coalesce(
    (select s.action from herald.standard_keywords s, k where s.keyword = k.word),
    (select case when k.word = any (w.opt_out_keywords) then 'opt_out'
                 when k.word = any (w.opt_in_keywords) then 'opt_in' end
     from public.workspaces w, k where w.id = p_workspace_id))
$$;
comment on function herald.classify_keyword(uuid, text) is 'What an inbound body means when it is only a keyword: opt_out, opt_in or help (standard sets plus the workspace''s), ignoring case, surrounding whitespace and punctuation; null for anything else.';
revoke execute on function herald.classify_keyword(uuid, text) from public;
grant execute on function herald.classify_keyword(uuid, text) to service_role;

comment on constraint workspaces_help_reply_length on public.workspaces is 'The HELP reply must be between 1 and 1600 characters (or null to leave HELP to Twilio''s default answer).';
comment on constraint workspaces_keyword_counts on public.workspaces is 'A workspace may add at most 50 opt-out and 50 opt-in keywords.';
select herald.explain_checks_on('public.workspaces');
