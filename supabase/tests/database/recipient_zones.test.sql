-- The recipient's zones from the number (…_recipient_zones.sql): herald.phone_zones (longest
-- known prefix), herald.phone_regions (North American area code → ISO 3166-2 regions) and
-- herald.contact_zones (the contact's own timezone, else the number's zones, else the
-- workspace's).
begin;
select plan(9);

select tests.workspace_of('zed', 'Zone Co') as ws \gset
update workspaces set timezone = 'Europe/Paris' where id = :'ws';
insert into contacts (workspace_id, phone, timezone) values
  (:'ws', '+12125550101', null), (:'ws', '+17755550102', null), (:'ws', '+12125550103', 'Europe/Lisbon'), (:'ws', '+999555010', null);

-- Internals: Herald's functions call them, members do not.
select tests.clear_authentication();
select is(herald.phone_zones('+12125550101'), array['America/New_York'], 'a New York number is in New York');
select is(herald.phone_zones('+17755550102'), array['America/Boise', 'America/Los_Angeles'], 'a 775 number may be in either of its two zones');
select is(herald.phone_zones('+33142685300'), array['Europe/Paris'], 'a French number is in Paris');
select is(herald.phone_zones('+999555010'), null, 'a number of no known country has no zones');
select results_eq($$ select herald.phone_regions('+13055550100'), herald.phone_regions('+19025550100'), herald.phone_regions('+33142685300') $$,
  $$ values ('{US-FL}'::text[], '{CA-NS,CA-PE}'::text[], null::text[]) $$,
  'herald.phone_regions: a 305 number is in Florida, a 902 number in Nova Scotia or Prince Edward Island, a French one in no NANP region');
select results_eq(format($$ select phone, herald.contact_zones(c) from contacts c where workspace_id = %L order by phone $$, :'ws'),
  $$ values ('+12125550101', '{America/New_York}'::text[]), ('+12125550103', '{Europe/Lisbon}'), ('+17755550102', '{America/Boise,America/Los_Angeles}'),
            ('+999555010', '{Europe/Paris}') $$,
  'a contact''s zones: its timezone overrides, else its number''s, else the workspace''s');
select tests.authenticate_as('zed');
select throws_ok(format($$ select herald.contact_zones(c) from contacts c where workspace_id = %L and phone = '+12125550101' $$, :'ws'),
  '42501', null, 'members do not call it: it is the queueing''s, not an API');
select ok((select count(*) from herald.phone_prefix_zones) > 3000 and (select count(*) from herald.nanp_area_codes) > 400,
  'members read the zone data');
select tests.clear_authentication();
select is_empty($$ select z from herald.phone_prefix_zones, unnest(zones) z where not herald.is_iana_time_zone(z) $$,
  'every zone loaded is one this server can convert to');

select * from finish();
rollback;
