-- segments and encoding set when the body is written (…_segments_on_write.sql): through
-- herald.message_segments_from_body, a status move (the path every message takes four or five
-- times) computes neither, while an insert, an RPC as a member, and any update that writes the
-- body still do; a value written by hand is refused with 428C9, on insert and on update, and the
-- refused statement changes nothing. message_segments.test.sql proves the counts themselves.
begin;
select plan(12);

select tests.workspace_of('segments-owner@example.com', 'Segments on write') as ws \gset
select tests.sender(:'ws', '+15550046001');
select tests.contact(:'ws', '+14155550461', tests.daytime_zone()) as c \gset
select tests.clear_authentication();

select is((select string_agg(a.attname || '=' || a.attgenerated::text, ',' order by a.attname) from pg_attribute a
           where a.attrelid = 'public.messages'::regclass and a.attname in ('segments', 'encoding')),
  'encoding=,segments=', 'segments and encoding are plain columns, set by the trigger');

-- Function calls counted for this transaction only (pg_stat_xact_user_functions).
set local track_functions = 'all';
create function pg_temp.calls(out encoding numeric, out segment_count numeric) language sql as $$
  select coalesce(sum(calls) filter (where funcname = 'message_encoding'), 0),
         coalesce(sum(calls) filter (where funcname = 'message_segment_count'), 0)
  from pg_stat_xact_user_functions where schemaname = 'herald'
$$;
create temp table calls_before as select * from pg_temp.calls();
create function pg_temp.calls_since() returns text language sql as $$
  select format('encoding %s, segment_count %s', n.encoding - b.encoding, n.segment_count - b.segment_count)
  from calls_before b, pg_temp.calls() n
$$;

/** Section - a member's message: computed once, on insert */
select tests.authenticate_as('segments-owner@example.com');
select schedule_message(:'c', repeat('a', 161), now() + interval '1 hour') as m \gset
select tests.clear_authentication();
select results_eq(format('select segments, encoding from messages where id = %L', :'m'), $$ values (2, 'GSM-7') $$,
  'a message scheduled by a member (authenticated, through schedule_message) carries its body''s segments and encoding');
select isnt(pg_temp.calls_since(), 'encoding 0, segment_count 0', 'computed on insert');
truncate calls_before;
insert into calls_before select * from pg_temp.calls();

/** Section - status moves compute nothing */
update messages set status = 'queued' where id = :'m';
update messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now() where id = :'m';
select is(pg_temp.calls_since(), 'encoding 0, segment_count 0',
  'two status moves (as generated columns, each computed both again) call neither function');
select results_eq(format('select segments, encoding from messages where id = %L', :'m'), $$ values (2, 'GSM-7') $$,
  'and the message keeps its body''s values');

/** Section - an update that writes the body */
select tests.message(:'c', now() + interval '2 hours') as m2 \gset
update messages set body = 'Zoë, your order shipped', send_at = send_at + interval '1 minute' where id = :'m2';
select results_eq(format('select segments, encoding from messages where id = %L', :'m2'), $$ values (1, 'UCS-2') $$,
  'a body written beside other columns recomputes them');
update messages set body = repeat('ł', 71) where id = :'m2';
select results_eq(format('select segments, encoding from messages where id = %L', :'m2'), $$ values (2, 'UCS-2') $$,
  'and again on the next change');

/** Section - written by hand: refused, nothing changed */
select throws_ok(format('update messages set segments = 2 where id = %L', :'m2'), '428C9',
  'messages.segments and messages.encoding are computed from the body and cannot be written',
  'writing segments is refused with 428C9, even the value it has');
select throws_ok(format($$ update messages set encoding = 'GSM-7', body = 'plain' where id = %L $$, :'m2'), '428C9', null,
  'so is writing encoding, even beside a new body');
select results_eq(format('select body, segments, encoding from messages where id = %L', :'m2'),
  format('values (%L, 2, %L)', repeat('ł', 71), 'UCS-2'), 'the refused updates changed nothing');
select throws_ok(format($$ insert into messages (workspace_id, contact_id, body, segments) values (%L, %L, 'x', 1) $$, :'ws', :'c'),
  '428C9', null, 'and on insert');
select is((select count(*)::int from messages where contact_id = :'c'), 2, 'the refused insert stored nothing');

select * from finish();
rollback;
