-- Plans made once per session on the send path (…_plans_made_once.sql): the per-message rules
-- (herald.allowed_send_time, herald.contact_cap_next_time) and the dispatcher's calls
-- (herald.claim_messages, herald.confirm_send, herald.confirm_send_each, herald.record_send_result,
-- herald.record_send_results) run with generic plans, and still with an empty search_path. What
-- they decide is unchanged: every send-rule, claim, confirmation and answer test still holds; here,
-- that the setting is there and reaches what they call.
begin;
select plan(3);

select is(
  (select array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text)
   from pg_proc p
   where p.pronamespace = 'herald'::regnamespace
     and p.proconfig @> array['search_path=""', 'plan_cache_mode=force_generic_plan']
     and cardinality(p.proconfig) = 2
     and p.proname in ('allowed_send_time', 'contact_cap_next_time', 'claim_messages', 'confirm_send', 'confirm_send_each',
                       'record_send_result', 'record_send_results')),
  array['herald.allowed_send_time(contacts,message_category,workspaces,timestamp with time zone)',
        'herald.claim_messages(integer,interval,interval)',
        'herald.confirm_send(uuid[],integer[],interval)',
        'herald.confirm_send_each(uuid[],integer[],interval)',
        'herald.contact_cap_next_time(contacts,timestamp with time zone,integer)',
        'herald.record_send_result(uuid,integer,text,text,text,integer,text,integer)',
        'herald.record_send_results(uuid[],integer[],text[],text[],text[],integer[],text[],integer[])'],
  'the send path''s seven functions run with an empty search_path and generic plans, and nothing else');

-- What a function sets holds for the functions it calls: a rule evaluated during a claim sees it.
select is(current_setting('plan_cache_mode'), 'auto', 'outside them, the session''s own setting');
update workspaces set automation_enabled = false;
select tests.workspace('Plans once') as ws \gset
select tests.sender(:'ws', '+15550043001');
select tests.message(tests.contact(:'ws', '+14155550431', tests.daytime_zone()), now() - interval '1 minute', 'queued');
create temp table seen (mode text);
create function pg_temp.note_mode() returns trigger language plpgsql as $$
begin
  insert into seen values (current_setting('plan_cache_mode'));
  return null;
end $$;
create trigger note_mode after update on message_attempts for each statement execute function pg_temp.note_mode();
create trigger note_mode_insert after insert on message_attempts for each statement execute function pg_temp.note_mode();
select count(*) from herald.claim_messages(10, interval '1 minute');
select is((select array_agg(distinct mode) from seen), array['force_generic_plan'],
  'inside herald.claim_messages, what it calls is planned the same way');

select * from finish();
rollback;
