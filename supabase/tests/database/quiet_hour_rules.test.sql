-- Legal sending hours (…_quiet_hour_rules.sql): public.quiet_hour_rules, herald.next_open_instant
-- and herald.allowed_send_time, with fixed clocks. Marketing keeps to 08:00–21:00 in every zone
-- the recipient may be in, and to 08:00–20:00 for a Florida number, whatever the workspace
-- allows; transactional follows the workspace's window only; both hold across midnight and
-- daylight-saving changes.
begin;
select plan(24);

-- The workspace allows 06:00–23:00 (wider than the law) and sits in London: the numbers' zones
-- must win over it.
select tests.workspace_of('lex', 'Law Co') as ws \gset
update workspaces set timezone = 'Europe/London', quiet_hours_start = '23:00', quiet_hours_end = '06:00' where id = :'ws';
insert into contacts (workspace_id, phone, first_name, timezone) values
  (:'ws', '+12125550101', 'ny', null), (:'ws', '+13055550102', 'fl', null), (:'ws', '+17755550103', 'nv', null),
  (:'ws', '+12125550104', 'ny_in_tokyo', 'Asia/Tokyo'), (:'ws', '+70000000000', 'ru', null);
select tests.clear_authentication();
-- allowed_send_time for a contact by first name
create function pg_temp.allowed(p_name text, p_category public.message_category, p_at timestamptz) returns timestamptz
language sql as $$
  select herald.allowed_send_time(c, p_category, w, p_at)
  from public.contacts c join public.workspaces w on w.id = c.workspace_id where c.first_name = p_name
$$;

/** Section - the rules */
select results_eq($$ select id, calling_code, region, window_start, window_end, applies_to::text from quiet_hour_rules order by id $$,
  $$ values ('floor', null, null, '08:00'::time, '21:00'::time, 'marketing'), ('us-fl', '1', 'US-FL', '08:00', '20:00', 'marketing'),
            ('us-md', '1', 'US-MD', '08:00', '20:00', 'marketing'), ('us-ok', '1', 'US-OK', '08:00', '20:00', 'marketing') $$,
  'the floor everywhere and the Florida, Oklahoma and Maryland windows, each for marketing');
select is_empty($$ select id from quiet_hour_rules where citation !~ '§' $$, 'every rule cites its statute');
select tests.authenticate_as('lex');
select results_eq($$ select count(*)::int from quiet_hour_rules $$, $$ values (4) $$, 'members read the rules');
select throws_ok($$ delete from quiet_hour_rules where id = 'floor' $$, '42501', null, 'but cannot remove the floor');
select tests.authenticate_as_service_role();
select throws_ok($$ update quiet_hour_rules set window_end = '23:00' $$, '42501', null, 'nor can the service role loosen a rule');
select tests.clear_authentication();
select throws_ok($$ insert into quiet_hour_rules (id, calling_code, region, window_start, window_end, applies_to, citation)
                    values ('fr', '33', 'FR-75', '10:00', '20:00', 'marketing', 'Code de la consommation') $$, '23514', null,
  'a region is a North American one, known from its area code');

/** Section - marketing against the legal floor, in the number's zone */
select is(pg_temp.allowed('ny', 'marketing', '2026-07-01 21:30 America/New_York'), '2026-07-02 08:00 America/New_York'::timestamptz,
  'a marketing message at 21:30 recipient time waits for 08:00 although the workspace allows until 23:00');
select is(pg_temp.allowed('ny', 'transactional', '2026-07-01 21:30 America/New_York'), '2026-07-01 21:30 America/New_York'::timestamptz,
  'a transactional one goes at once: the workspace''s window is its only one');
select is(pg_temp.allowed('ny', 'transactional', '2026-07-01 23:30 America/New_York'), '2026-07-02 06:00 America/New_York'::timestamptz,
  'and waits, across midnight, when outside it');
select is(pg_temp.allowed('ny', 'marketing', '2026-07-01 07:59 America/New_York'), '2026-07-01 08:00 America/New_York'::timestamptz,
  'marketing at 07:59 waits a minute');
select is(pg_temp.allowed('ny', 'marketing', '2026-07-01 12:00 America/New_York'), '2026-07-01 12:00 America/New_York'::timestamptz,
  'and at noon goes at once: a contact with no zone and a New York number is treated as in New York, not London');

/** Section - regional rules */
select is(pg_temp.allowed('fl', 'marketing', '2026-07-01 20:30 America/New_York'), '2026-07-02 08:00 America/New_York'::timestamptz,
  'a Florida number at 20:30 waits for 08:00');
select is(pg_temp.allowed('ny', 'marketing', '2026-07-01 20:30 America/New_York'), '2026-07-01 20:30 America/New_York'::timestamptz,
  'a New York number at 20:30 does not');
select is(pg_temp.allowed('fl', 'transactional', '2026-07-01 20:30 America/New_York'), '2026-07-01 20:30 America/New_York'::timestamptz,
  'nor a transactional message to the Florida number');
select is(pg_temp.allowed('ny_in_tokyo', 'marketing', '2026-07-01 22:00 Asia/Tokyo'), '2026-07-02 08:00 Asia/Tokyo'::timestamptz,
  'a contact''s own timezone overrides its number''s zone');

/** Section - a number spanning two zones waits for both */
select is(pg_temp.allowed('nv', 'marketing', '2026-07-01 07:30 America/Los_Angeles'), '2026-07-01 08:00 America/Los_Angeles'::timestamptz,
  'a 775 number at 07:30 Los Angeles (08:30 Boise) waits for 08:00 in Los Angeles');
select is(pg_temp.allowed('nv', 'marketing', '2026-07-01 20:30 America/Los_Angeles'), '2026-07-02 08:00 America/Los_Angeles'::timestamptz,
  'and at 20:30 Los Angeles (21:30 Boise) for the next morning in both');

/** Section - daylight saving */
select is(pg_temp.allowed('ny', 'marketing', '2026-03-08 01:30 America/New_York'), '2026-03-08 08:00 America/New_York'::timestamptz,
  'the night clocks spring forward, the wait ends at 08:00 local (12:00 UTC, not 13:00)');
select is(pg_temp.allowed('ny', 'marketing', '2026-11-01 01:30 America/New_York'), '2026-11-01 08:00 America/New_York'::timestamptz,
  'the night they fall back, at 08:00 local (13:00 UTC)');

/** Section - windows that never meet */
update workspaces set quiet_hours_start = '17:00', quiet_hours_end = '09:00' where id = :'ws';
select ok(cardinality(herald.phone_zones('+70000000000')) > 10, 'a number known only by its country code may be in many zones');
select is(pg_temp.allowed('ru', 'marketing', '2026-07-01 12:00 Europe/London'), '2026-07-01 12:00 Europe/London'::timestamptz,
  'when its zones share no hour of a 09:00–17:00 window, the workspace''s zone is the last resort (noon in London: at once)');
select is(pg_temp.allowed('ru', 'marketing', '2026-07-01 18:00 Europe/London'), '2026-07-02 09:00 Europe/London'::timestamptz,
  'and 18:00 in London waits for 09:00 there');
select is(herald.next_open_instant(array['Asia/Tokyo', 'America/New_York'], array['17:00'::time], array['09:00'::time], '2026-07-01 12:00Z'), null,
  'herald.next_open_instant: null when the zones'' windows never meet');
update workspaces set quiet_hours_start = '06:00', quiet_hours_end = '23:00' where id = :'ws';
select is(pg_temp.allowed('ny', 'marketing', '2026-07-01 12:00 America/New_York'), null,
  'a workspace that only sends at night never sends marketing: null');

select * from finish();
rollback;
