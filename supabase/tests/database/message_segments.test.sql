-- Segments and encoding (…_message_segments.sql): herald.message_encoding, herald.message_segment_count
-- and herald.message_segments at every boundary (160/161, 153·n, an extension character or a
-- surrogate pair straddling a part boundary), the generated messages.segments / messages.encoding,
-- and queue_metrics.segments_sent.
begin;
select plan(41);

/** Section - encoding */
select is(herald.message_encoding('Hello @£$¥ èéùìò Ç Øø Åå Δ_ΦΓΛΩΠΨΣΘΞ ÆæßÉ !"#¤%&''()*+,-./:;<=>?¡ ÄÖÑÜ§¿ äöñüà'), 'GSM-7',
  'the whole GSM 03.38 basic set is GSM-7');
select is(herald.message_encoding(E'^{}\\[~]|€\f and\nlines\r'), 'GSM-7', 'the extension table, newline and carriage return are GSM-7');
select is(herald.message_encoding('ç'), 'UCS-2', 'lower-case ç is not in the GSM set (only Ç is)');
select is(herald.message_encoding('`'), 'UCS-2', 'neither is the backtick');
select is(herald.message_encoding('Zoë'), 'UCS-2', 'one character outside the set makes the body UCS-2');
select is(herald.message_encoding('ok 😀'), 'UCS-2', 'an emoji makes it UCS-2');

/** Section - GSM-7: 160 in one part, 153 per part */
select is(herald.message_segment_count(''), 0, 'an empty body is no segment');
select is(herald.message_segment_count('a'), 1, 'one character, one segment');
select is(herald.message_segment_count(repeat('a', 160)), 1, '160 GSM characters fit one segment');
select is(herald.message_segment_count(repeat('a', 161)), 2, '161 take two');
select is(herald.message_segment_count(repeat('a', 306)), 2, '306 = 2 × 153 take two');
select is(herald.message_segment_count(repeat('a', 307)), 3, '307 take three');
select is(herald.message_segment_count(repeat('a', 459)), 3, '459 = 3 × 153 take three');
select is(herald.message_segment_count(repeat('a', 460)), 4, '460 take four');
select is(herald.message_segment_count(repeat('a', 1600)), 11, '1,600 GSM characters take eleven');
select is(herald.message_segment_count(repeat('a', 158) || '€'), 1, '158 characters and a € are 160 septets: one segment');
select is(herald.message_segment_count(repeat('a', 159) || '€'), 2, '159 and a € are 161 septets: two');
select is(herald.message_segment_count(repeat('€', 80)), 1, 'eighty extension characters are 160 septets: one');
select is(herald.message_segment_count(repeat('a', 152) || '€' || repeat('a', 151)), 2,
  'a € that does not fit after 152 septets starts part two, which it then fills to 153');
select is(herald.message_segment_count(repeat('a', 152) || '€' || repeat('a', 152)), 3,
  '306 septets with a € straddling the boundary take three parts, not 306 / 153 = 2');
select is(herald.message_segment_count(repeat('€', 153)), 3, '153 extension characters (306 septets) pack 76 a part: three');
select is(herald.message_segment_count(repeat('a', 159) || E'\f'), 2, 'form feed is an extension character too');
select is(herald.message_segment_count(repeat('a', 159) || E'\n'), 1, 'newline is one septet');

/** Section - UCS-2: 70 in one part, 67 per part, surrogate pairs two units */
select is(herald.message_segment_count(repeat('ł', 70)), 1, '70 UCS-2 characters fit one segment');
select is(herald.message_segment_count(repeat('ł', 71)), 2, '71 take two');
select is(herald.message_segment_count(repeat('ł', 134)), 2, '134 = 2 × 67 take two');
select is(herald.message_segment_count(repeat('ł', 135)), 3, '135 take three');
select is(herald.message_segment_count(repeat('a', 159) || 'ł'), 3, '159 GSM characters and one ł: 160 UCS-2 units, three segments');
select is(herald.message_segment_count(repeat('😀', 35)), 1, '35 emoji are 70 UTF-16 units: one segment');
select is(herald.message_segment_count(repeat('😀', 36)), 2, '36 emoji are 72 units: two parts of up to 33 emoji');
select is(herald.message_segment_count(repeat('ł', 68) || '😀'), 1, '68 characters and an emoji are 70 units: one');
select is(herald.message_segment_count(repeat('ł', 69) || '😀'), 2, '69 and an emoji are 71: two');
select is(herald.message_segment_count(repeat('ł', 66) || '😀' || repeat('ł', 66)), 3,
  '134 units with a surrogate pair straddling the boundary take three parts: the pair is never split');
select is(herald.message_segment_count(repeat('😀', 800)), 25, '800 emoji (1,600 units) pack 33 a part: 25 segments');

select results_eq($$ select * from herald.message_segments(repeat('ł', 71)) $$, $$ values (2, 'UCS-2') $$,
  'message_segments gives the count and the encoding');

/** Section - generated on every message, whoever writes it */
select tests.workspace('Segments Co') as ws \gset
select tests.sender(:'ws', '+15550006110');
select tests.contact(:'ws', '+14155550611') as c \gset
insert into messages (workspace_id, contact_id, body) values (:'ws', :'c', repeat('a', 161)) returning id as m \gset
select results_eq(format('select segments, encoding from messages where id = %L', :'m'), $$ values (2, 'GSM-7') $$,
  'a message carries its body''s segments and encoding');
update messages set body = 'Zoë, your order shipped' where id = :'m';
select results_eq(format('select segments, encoding from messages where id = %L', :'m'), $$ values (1, 'UCS-2') $$,
  'a changed body recomputes them');
select throws_ok(format('update messages set segments = 1 where id = %L', :'m'), '428C9', null,
  'they cannot be written: they are the body''s');
select throws_ok(format($$ insert into messages (workspace_id, contact_id, body, encoding) values (%L, %L, 'x', 'UCS-2') $$, :'ws', :'c'),
  '428C9', null, 'not even on insert');

/** Section - queue_metrics: segments sent per day */
insert into messages (workspace_id, contact_id, body) values (:'ws', :'c', repeat('b', 307)) returning id as m3 \gset
insert into messages (workspace_id, contact_id, body) values (:'ws', :'c', 'not sent yet');
select tests.mark_sent(array[:'m', :'m3']::uuid[], '2026-06-15 12:00Z');
select results_eq(format($$ select day, sent, segments_sent from queue_metrics where workspace_id = %L and day = '2026-06-15' $$, :'ws'),
  $$ values ('2026-06-15'::date, 2::bigint, 4::bigint) $$,
  'queue_metrics sums the sent messages'' segments per local day (1 + 3); unsent ones do not count');
select results_eq(format($$ select segments_sent from queue_metrics where workspace_id = %L and day <> '2026-06-15' $$, :'ws'),
  $$ values (0::bigint) $$, 'a day with nothing sent reports 0');

select * from finish();
rollback;
