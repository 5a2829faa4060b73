-- The status callbacks' plans on tables that grow (…_callback_plans.sql). herald.apply_status_callbacks
-- plans its statements as for tables of a few rows (reading a table whole made as cheap as a
-- small table makes it), keeps them as the session's generic plans, and messages,
-- message_attempts and provider_events then grow by hundreds of rows: a batch of two callbacks
-- still reaches each table through an index, reading a few rows of each, not all of them.
-- Before, the kept plans scanned the tables whole for every batch.
begin;
select plan(5);
update workspaces set automation_enabled = false;

select tests.workspace('Callback plans') as ws \gset
select tests.sender(:'ws', '+15550048001') as sender \gset
create temp table sent (n integer primary key, message uuid, sid text);
insert into sent
select g, tests.message(tests.contact(:'ws', '+1415555' || lpad((4800 + g)::text, 4, '0'), tests.daytime_zone()),
                        now() - interval '1 minute', 'queued'),
       'SM' || md5('plans' || g)
from generate_series(1, 2) g;
select is((select count(*)::int from herald.claim_messages(50, interval '1 minute')), 2, 'two messages claimed');
select count(*) from (select herald.record_send_result(s.message, 1, 'sent', s.sid, 'queued') from sent s) r;
grant select on sent to service_role;

-- The plans as a new project's first calls make them: for tables of a few rows, where reading a
-- table whole is the cheapest way to find anything. (Not by ANALYZE: its row counts outlive the
-- rollback and would mislead every later test on this cluster. Reading whole is made as cheap
-- here as a small table makes it.) Each statement's generic plan from its first call, as a
-- session settles on after five, and kept.
set local seq_page_cost = 0;
set local cpu_tuple_cost = 0;
set local plan_cache_mode = force_generic_plan;
select tests.authenticate_as_service_role();
select is(herald.apply_status_callbacks(array(select s.sid from sent s order by s.n), array['sent', 'sent'],
                                        array[null, null]::integer[], array['{}', '{}']::jsonb[],
                                        array['plans-sent-1', 'plans-sent-2']),
  array['unchanged', 'unchanged'], 'a first batch, planned on the small tables');
select tests.clear_authentication();

reset seq_page_cost;
reset cpu_tuple_cost;

-- Then 400 more sent messages, their attempts, and a stored event for each.
insert into public.messages (workspace_id, contact_id, sender_id, channel, body, send_at, status, attempts,
                             provider_sid, sent_at)
select :'ws', c.id, :'sender', 'sms', 'Grown ' || g, now() - interval '1 minute', 'sent', 1,
       'SM' || md5('grown' || g), now() - interval '1 minute'
from generate_series(1, 400) g, (select id from contacts where workspace_id = :'ws' limit 1) c;
insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_sid, provider_status,
                                     requested_at, responded_at)
select m.workspace_id, m.id, 1, m.provider_sid, 'sent', m.sent_at, m.sent_at
from public.messages m where m.workspace_id = :'ws' and m.body like 'Grown %';
insert into public.provider_events (kind, workspace_id, message_id, provider_sid, provider_status, outcome, payload,
                                    idempotency_token)
select 'status', m.workspace_id, m.id, m.provider_sid, 'sent', 'applied', '{}', 'grown-' || m.provider_sid
from public.messages m where m.workspace_id = :'ws' and m.body like 'Grown %';

-- What the next batch reads of each table, and of each table's indexes.
create temp view reads as
select * from tests.table_reads(array['public.messages', 'public.message_attempts', 'public.provider_events',
                                      'herald.provider_erasures']::regclass[]);
select table_scans as scans_before, index_entries as entries_before from reads \gset
select tests.authenticate_as_service_role();
select is(herald.apply_status_callbacks(array['SM' || md5('grown1'), 'SM' || md5('grown2')], array['delivered', 'delivered'],
                                        array[null, null]::integer[], array['{}', '{}']::jsonb[],
                                        array['plans-delivered-1', 'plans-delivered-2']),
  array['applied', 'applied'], 'a batch on the grown tables, through the same plans, is applied');
select tests.clear_authentication();
select is((select table_scans - :scans_before from reads), 0::numeric,
  'it scans none of messages, message_attempts, provider_events and provider_erasures sequentially');
select cmp_ok((select index_entries - :entries_before from reads), '<', 50::numeric,
  'and reads a few of their index entries, not the 400 attempts or events');

select * from finish();
rollback;
