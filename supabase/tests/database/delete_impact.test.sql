-- What a delete would do, from the live catalog (…_delete_impact.sql): herald.delete_impact walks
-- pg_constraint from a row and counts, per table, the rows a delete would cascade to, set null or
-- be blocked by, and the pending messages and active enrollments it would cancel; its pieces
-- (herald.delete_impact_pred, herald.delete_impact_within, herald.delete_impact_join,
-- herald.delete_impact_reach) turn foreign keys into predicates. A cascade rule kept anywhere
-- but the schema would drift from it; this one cannot. (preview_delete against real deletes of
-- every entity: deletion_rpcs.test.sql.)
begin;
select plan(17);

/** Section - the predicate builders */
select is(herald.delete_impact_pred('{"eq": {"workspace_id": "''w''", "id": "$1"}, "nn": ["sender_id"]}'),
  'c.id = $1 and c.sender_id is not null and c.workspace_id = ''w''',
  'delete_impact_pred: equalities and not-nulls on alias c, in a stable order');
select is(herald.delete_impact_pred('{"or": [{"eq": {"id": "$1"}}, {"nn": ["retry_of"]}]}'),
  '((c.id = $1) or (c.retry_of is not null))', 'an "or" of predicates');
select is(herald.delete_impact_pred('{}'), 'true', 'no condition is every row');
select is(herald.delete_impact_join('{"child_cols": ["workspace_id", "contact_id"], "parent_cols": ["workspace_id", "id"]}'),
  'c.workspace_id = p.workspace_id and c.contact_id = p.id',
  'delete_impact_join: a composite key joins column by column, in key order');
select results_eq(
  $$ select herald.delete_impact_within(r::jsonb, e::jsonb, n::jsonb) from (values
       ('{"eq": {"workspace_id": "''w''", "contact_id": "$1"}, "nn": []}', '{"eq": {"workspace_id": "''w''"}, "nn": ["contact_id"]}', '[]'),
       ('{"eq": {"workspace_id": "''w''"}, "nn": []}', '{"eq": {"workspace_id": "''w''"}, "nn": ["sender_id"]}', '[]'),
       ('{"eq": {"workspace_id": "''w''"}, "nn": []}', '{"eq": {"workspace_id": "''w''"}, "nn": ["sender_id"]}', '["sender_id"]'),
       ('{"eq": {"workspace_id": "''v''"}, "nn": []}', '{"eq": {"workspace_id": "''w''"}, "nn": []}', '[]'),
       ('{"or": []}', '{"eq": {}, "nn": []}', '[]')) v(r, e, n) $$,
  $$ values (true), (false), (true), (false), (false) $$,
  'delete_impact_within: rows of r are rows of e when e asks nothing r does not pin, or the column cannot be null; "or" is never proven');
select results_eq(
  $$ select herald.delete_impact_reach(f::jsonb, p::jsonb) from (values
       ('{"trusted": true, "child_cols": ["workspace_id", "contact_id"], "parent_cols": ["workspace_id", "id"], "child_not_null": ["workspace_id", "contact_id"]}',
        '{"eq": {"workspace_id": "''w''", "id": "$1"}, "nn": [], "def": ["id"], "exact": true}'),
       ('{"trusted": true, "child_cols": ["workspace_id", "sender_id"], "parent_cols": ["workspace_id", "id"], "child_not_null": ["workspace_id"]}',
        '{"eq": {"workspace_id": "''w''"}, "nn": [], "def": ["workspace_id"], "exact": true}'),
       ('{"trusted": false, "child_cols": ["workspace_id", "contact_id"], "parent_cols": ["workspace_id", "id"], "child_not_null": ["workspace_id", "contact_id"]}',
        '{"eq": {"workspace_id": "''w''", "id": "$1"}, "nn": [], "def": ["id"], "exact": true}'),
       ('{"trusted": true, "child_cols": ["workspace_id", "contact_id"], "parent_cols": ["workspace_id", "id"], "child_not_null": ["workspace_id", "contact_id"]}',
        '{"or": [], "exact": false}')) v(f, p) $$,
  $$ values ('{"eq": {"contact_id": "$1", "workspace_id": "''w''"}, "nn": [], "def": ["contact_id"], "exact": true}'::jsonb),
            ('{"eq": {"workspace_id": "''w''"}, "nn": ["sender_id"], "def": ["workspace_id"], "exact": false}'),
            (null), (null) $$,
  'delete_impact_reach: a trusted key from a pinned parent pins the child by equalities; a nullable column adds a not-null; an untrusted key or an unpinned parent proves nothing');

/** Section - a contact with something in every table, counted */
select tests.workspace('Impact Co') as ws \gset
select tests.sender(:'ws', '+15005550006');
select tests.contact(:'ws', '+14155551101') as c \gset
select tests.contact(:'ws', '+14155551102') as c_other \gset
insert into contact_tags (workspace_id, contact_id, tag) values (:'ws', :'c', 'a'), (:'ws', :'c', 'b'), (:'ws', :'c_other', 'a');
insert into contact_variables (workspace_id, contact_id, key, value) values (:'ws', :'c', 'city', 'Lyon');
insert into appointments (workspace_id, contact_id, title, starts_at) values (:'ws', :'c', 'Visit', now() + interval '2 days');
select tests.message(:'c', now() + interval '1 day') as m_pending \gset
select tests.message(:'c', now()) as m_sent \gset
select tests.message(:'c_other', now() + interval '1 day');
select tests.mark_sent(array[:'m_sent']::uuid[]);
insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid) values (:'ws', :'m_sent', 1, 'SM' || md5('impact'));
select herald.delete_impact('public.contacts', :'c') as impact \gset
select results_eq(
  $$ select k, v::int from jsonb_each_text($$ || quote_literal(:'impact') || $$::jsonb -> 'cascade') x(k, v) where v::int > 0 order by k $$,
  format($$ values ('public.appointments'::text, 1), ('public.contact_tags', 2), ('public.contact_variables', 1),
                   ('public.message_attempts', 1), ('public.message_events', %s), ('public.messages', 2) $$,
         (select count(*) from message_events where message_id in (:'m_pending', :'m_sent'))),
  'cascade: exactly the contact''s rows of each table, and none of the other contact''s');
select is((:'impact'::jsonb) -> 'cancel', '{"messages": 1, "sequence_enrollments": 0}'::jsonb, 'cancel: the one pending message');
select is(herald.delete_impact('public.contacts', gen_random_uuid()) -> 'cancel', '{"messages": 0, "sequence_enrollments": 0}'::jsonb,
  'an id that is not there: nothing to cancel');
select is_empty($$ select 1 from jsonb_each_text(herald.delete_impact('public.contacts', gen_random_uuid()) -> 'cascade') x(k, v) where v::int <> 0 $$,
  'and nothing to delete');

/** Section - it follows the live catalog */
create table public.contact_notes (
  id bigint generated always as identity primary key,
  contact_id uuid not null references public.contacts (id) on delete no action,
  note text
);
create table public.contact_files (
  id bigint generated always as identity primary key,
  contact_id uuid not null references public.contacts (id) on delete cascade
);
create table public.contact_links (
  id bigint generated always as identity primary key,
  contact_id uuid references public.contacts (id) on delete set null
);
insert into public.contact_notes (contact_id, note) values (:'c', 'called'), (:'c', 'no answer');
insert into public.contact_files (contact_id) values (:'c'), (:'c'), (:'c');
insert into public.contact_links (contact_id) values (:'c');
select herald.delete_impact('public.contacts', :'c') as impact \gset
select is((:'impact'::jsonb) -> 'blocked_by' -> 'public.contact_notes', '2'::jsonb,
  'a new no-action foreign key shows under blocked_by, with its count');
select is((:'impact'::jsonb) -> 'cascade' -> 'public.contact_files', '3'::jsonb,
  'a new cascading foreign key shows under cascade, with its count');
select is((:'impact'::jsonb) -> 'set_null' -> 'public.contact_links.contact_id', '1'::jsonb,
  'a new set-null foreign key shows under set_null, with its count');
select throws_ok(format($$ delete from contacts where id = %L $$, :'c'), '23503', null,
  'and the blocking key does block the delete');
-- A key added NOT VALID is not trusted to prove anything: its rows are found by a join instead.
alter table public.contact_files drop constraint contact_files_contact_id_fkey;
alter table public.contact_files add constraint contact_files_contact_id_fkey
  foreign key (contact_id) references public.contacts (id) on delete cascade not valid;
select is(herald.delete_impact('public.contacts', :'c') -> 'cascade' -> 'public.contact_files', '3'::jsonb,
  'a key not validated is counted by a join, to the same count');
drop table public.contact_notes, public.contact_files, public.contact_links;

/** Section - a cascade that runs in a circle cannot be counted, and says so */
create table public.ring_a (id uuid primary key default gen_random_uuid(), contact_id uuid references public.contacts (id) on delete cascade, b_id uuid);
create table public.ring_b (id uuid primary key default gen_random_uuid(), a_id uuid references public.ring_a (id) on delete cascade);
alter table public.ring_a add foreign key (b_id) references public.ring_b (id) on delete cascade;
select throws_ok(format($$ select herald.delete_impact('public.contacts', %L) $$, :'c_other'), '54001',
  'delete_impact: the cascade from public.contacts runs in a cycle through public.ring_a, public.ring_b',
  'a cycle below the row is named');
select throws_ok(format($$ select herald.delete_impact('public.ring_a', %L) $$, gen_random_uuid()), '54001',
  'delete_impact: the cascade from public.ring_a comes back to it', 'and so is one back to the row itself');
drop table public.ring_a, public.ring_b cascade;

select * from finish();
rollback;
