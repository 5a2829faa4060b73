-- Confirmations a batch at a time (…_confirm_batches.sql): herald.confirm_send confirms the
-- messages clear to go in one statement per table and hands the rest to herald.confirm_send_each,
-- the per-message steps as they were; herald.outbound_content in PL/pgSQL answers as before. Two
-- twin sets of the same cases are claimed alike, then changed alike between the claim and the
-- confirmation (a STOP, a move into the night, a closed WhatsApp window, a lapsed lease); twin one
-- is confirmed message by message, twin two in one batch, and the two are compared case by case.
begin;
select plan(12);
update workspaces set automation_enabled = false;

-- Quiet 21:00–08:00 in the contact's zone; every contact starts at 13:00 local.
select tests.workspace('Confirm batches', 'UTC', '21:00', '08:00') as ws \gset
select tests.workspace('Confirm batches, capped', 'UTC', '21:00', '08:00', 100) as ws_capped \gset
select tests.workspace('Confirm batches, roomy', 'UTC', '21:00', '08:00', 100) as ws_roomy \gset
select tests.sender(:'ws', '+15550051001'), tests.sender(:'ws_capped', '+15550051002'), tests.sender(:'ws_roomy', '+15550051003');
insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
values (:'ws', 'whatsapp', '+15550051004', 'connected', 100, true);

-- clear: nothing against it. stop: opts out after the claim. night: its zone moves to 02:00.
-- closed: a WhatsApp window that closes. stale: confirmed for another attempt. lapsed: its lease
-- ran out. capped / roomy: a workspace with a daily limit (reached / not).
create temp table cases (name text, twin integer, contact uuid, message uuid, primary key (name, twin));
insert into cases (name, twin, contact)
select n, t, tests.contact(case n when 'capped' then :'ws_capped'::uuid when 'roomy' then :'ws_roomy'::uuid else :'ws'::uuid end,
                           '+1415555' || t || lpad(i::text, 3, '0'), tests.daytime_zone())
from unnest(array['clear', 'stop', 'night', 'closed', 'stale', 'lapsed', 'capped', 'roomy']) with ordinality u (n, i),
     generate_series(1, 2) t;
update contacts c set last_whatsapp_inbound_at = now() - interval '1 hour' from cases k where k.contact = c.id and k.name = 'closed';
update cases set message = tests.message(contact, now() - interval '1 minute', 'queued',
                                         case when name = 'closed' then 'whatsapp' else 'sms' end::public.channel);
grant select on cases to service_role;

select tests.authenticate_as_service_role();
select is((select count(*)::int from herald.claim_messages(100, interval '1 minute')), 16, 'both twins claimed');

-- Between the claim and the confirmation.
select tests.clear_authentication();
update contacts c set opted_out_at = now() from cases k where k.contact = c.id and k.name = 'stop';
update contacts c set timezone = (select name from pg_catalog.pg_timezone_names
                                  where name ~ '^Etc/GMT[+-][0-9]+$' and extract(hour from now() at time zone name) between 1 and 3
                                  order by name limit 1)
from cases k where k.contact = c.id and k.name = 'night';
update contacts c set last_whatsapp_inbound_at = now() - interval '2 days' from cases k where k.contact = c.id and k.name = 'closed';
update messages m set lease_expires_at = now() - interval '1 second' from cases k where k.message = m.id and k.name = 'lapsed';
-- The capped workspace's limit drops to one, and it sent that one already.
update workspaces set daily_limit = 1 where id = :'ws_capped';
select tests.mark_sent(array[tests.message(tests.contact(:'ws_capped', '+14155559999'), now() - interval '2 hours', 'queued')]);
select tests.authenticate_as_service_role();

create temp table verdicts (twin integer, n integer, name text, verdict text, reason text);
grant insert, select on verdicts to service_role;
insert into verdicts
select 1, e.n, k.name, e.verdict, e.reason
from herald.confirm_send_each(array(select coalesce(message, '00000000-0000-4000-8000-000000000001') from cases where twin = 1 order by name),
                              array(select case name when 'stale' then 9 else 1 end from cases where twin = 1 order by name))
     with ordinality e (message_id, verdict, reason, n)
left join cases k on k.message = e.message_id;
insert into verdicts
select 2, e.n, k.name, e.verdict, e.reason
from herald.confirm_send(array(select message from cases where twin = 2 order by name),
                         array(select case name when 'stale' then 9 else 1 end from cases where twin = 2 order by name))
     with ordinality e (message_id, verdict, reason, body, content_sid, content_variables, n)
left join cases k on k.message = e.message_id;

select results_eq($$ select n, name, verdict, reason from verdicts where twin = 2 order by n $$,
                  $$ select n, name, verdict, reason from verdicts where twin = 1 order by n $$,
  'the batch gives each message the verdict the per-message steps give its twin, in the order asked');
select results_eq($$ select name, verdict, reason from verdicts where twin = 2 order by n $$,
  $$ values ('capped', 'deferred', 'daily_limit'), ('clear', 'send', null), ('closed', 'failed', 'template_required'),
            ('lapsed', 'skip', 'lease_expired'), ('night', 'deferred', 'quiet_hours'), ('roomy', 'send', null),
            ('stale', 'skip', 'not_ours'), ('stop', 'cancelled', 'contact_opted_out') $$,
  'which are: each rule''s own verdict and reason');
select is((select array_agg(e.verdict order by e.n)
           from herald.confirm_send(array['00000000-0000-4000-8000-000000000003'::uuid, (select message from cases where name = 'clear' and twin = 2)],
                                    array[1, 2]) with ordinality e (message_id, verdict, reason, body, content_sid, content_variables, n)),
  '{skip,skip}', 'a message that is gone, or asked for with another attempt number, is skipped');

/** Section - twin for twin */
create function pg_temp.message_state(p_twin integer) returns table (name text, state text)
language sql as $$
  select c.name, concat_ws(' | ', m.status, m.cancel_reason, m.attempts, m.last_error, sign(extract(epoch from m.send_at - now())),
                           round(extract(epoch from m.lease_expires_at - now())))
  from cases c join public.messages m on m.id = c.message where c.twin = p_twin
$$;
create function pg_temp.attempt_state(p_twin integer) returns table (name text, state text)
language sql as $$
  select c.name, concat_ws(' | ', a.attempt_no, a.provider_status, a.confirmed_at is not null, a.spent)
  from cases c join public.message_attempts a on a.message_id = c.message where c.twin = p_twin
$$;
grant execute on function pg_temp.message_state(integer), pg_temp.attempt_state(integer) to service_role;

select results_eq($$ select * from pg_temp.message_state(2) order by 1 $$, $$ select * from pg_temp.message_state(1) order by 1 $$,
  'every message is as its twin: status, reason, attempts, error, deferred or not, the lease stretched over the call');
select results_eq($$ select * from pg_temp.attempt_state(2) order by 1, 2 $$, $$ select * from pg_temp.attempt_state(1) order by 1, 2 $$,
  'every attempt too: confirmed where the message goes, gone where it does not');
select results_eq($$ select name, tests.ledger_of(message) from cases where twin = 2 order by 1 $$,
                  $$ select name, tests.ledger_of(message) from cases where twin = 1 order by 1 $$,
  'and every ledger row');

/** Section - what goes to Twilio */
select results_eq(format($$ select o.body is not null, o.content_sid, o.refusal from cases k
                            join messages m on m.id = k.message join contacts c on c.id = k.contact,
                            herald.outbound_content(m, c, %L) o where k.name in ('clear', 'closed') and k.twin = 1 order by k.name $$, now()),
  $$ values (true, null::text, null::text), (false, null, 'template_required') $$,
  'herald.outbound_content: an SMS carries its body; WhatsApp outside the window with no template is refused');

-- A WhatsApp message with a template, claimed inside the window as free-form text; the window
-- closes while it waits for its slot: the confirmation says to send the template instead.
select tests.clear_authentication();
insert into message_templates (workspace_id, name, content_sid, body, variables)
values (:'ws', 'reminder', 'HX0123456789abcdef0123456789abcdef', 'Hi {{1}}, see you soon.', array['{{first_name}}'])
returning id as tpl \gset
select tests.contact(:'ws', '+14155556001', tests.daytime_zone()) as c_tpl \gset
update contacts set last_whatsapp_inbound_at = now() - interval '1 hour', first_name = 'Ada' where id = :'c_tpl';
insert into messages (workspace_id, contact_id, channel, body, send_at, status, category, template_id, template_variables)
values (:'ws', :'c_tpl', 'whatsapp', 'Hi Ada, see you soon.', now() - interval '1 minute', 'queued', 'transactional', :'tpl', '{"1": "Ada"}')
returning id as m_tpl \gset
grant select on cases to service_role;
select tests.authenticate_as_service_role();
select results_eq(format($$ select body, content_sid from herald.claim_messages(100, interval '1 minute') where message_id = %L $$, :'m_tpl'),
  $$ values ('Hi Ada, see you soon.', null::text) $$, 'claimed inside the window: free-form');
select tests.clear_authentication();
update contacts set last_whatsapp_inbound_at = now() - interval '2 days' where id = :'c_tpl';
select tests.authenticate_as_service_role();
select results_eq(format($$ select verdict, body, content_sid, content_variables from herald.confirm_send(array[%L::uuid, %L::uuid], array[1, 1]) $$,
                         :'m_tpl', (select message from cases where name = 'roomy' and twin = 2)),
  $$ values ('send', null::text, 'HX0123456789abcdef0123456789abcdef', '{"1": "Ada"}'::jsonb),
            ('send', 'hello +14155552008', null, null) $$,
  'confirmed after the window closed: the template goes, not the body; an SMS (here confirmed step by step) carries its body');

/** Section - refused */
select throws_ok($$ select * from herald.confirm_send(array[gen_random_uuid()], array[1, 2]) $$, '22023',
  'message ids and attempt numbers must pair up', 'ids and attempts that do not pair up are refused');
select tests.create_user('outsider');
select tests.authenticate_as('outsider');
select throws_ok($$ select * from herald.confirm_send_each(array[gen_random_uuid()], array[1]) $$, '42501', null,
  'nobody signed in calls the per-message steps: only the dispatcher, as service_role');

select * from finish();
rollback;
