-- Where a contact's number places it, kept on the row (…_contact_places.sql): contacts.phone_zones
-- and contacts.phone_regions are derived by herald.contacts_before_write like phone_hash, brought
-- up to date by herald.refresh_contact_places when the zone data changes, and read by
-- herald.contact_zones and herald.allowed_send_time instead of a look-up per message.
begin;
select plan(10);

select tests.workspace_of('pia', 'Places Co') as ws \gset
update workspaces set timezone = 'Europe/Paris' where id = :'ws';
insert into contacts (workspace_id, phone) values (:'ws', '+12125550101'), (:'ws', '+33142685300'), (:'ws', '+999555010');

select results_eq(format($$ select phone, phone_zones, phone_regions from contacts where workspace_id = %L order by phone $$, :'ws'),
  $$ values ('+12125550101', '{America/New_York}'::text[], '{US-NY}'::text[]),
            ('+33142685300', '{Europe/Paris}', null), ('+999555010', null, null) $$,
  'a new contact gets its number''s zones and North American regions (none for a number of no known country)');

update contacts set phone = '+17755550102' where workspace_id = :'ws' and phone = '+12125550101';
select results_eq(format($$ select phone_zones, phone_regions from contacts where workspace_id = %L and phone = '+17755550102' $$, :'ws'),
  $$ values ('{America/Boise,America/Los_Angeles}'::text[], '{US-NV}'::text[]) $$,
  'a new number brings its own places');

update contacts set phone_zones = '{Asia/Tokyo}', phone_regions = '{US-HI}' where workspace_id = :'ws' and phone = '+33142685300';
select results_eq(format($$ select phone_zones, phone_regions from contacts where workspace_id = %L and phone = '+33142685300' $$, :'ws'),
  $$ values ('{Europe/Paris}'::text[], null::text[]) $$,
  'a member writing the places by hand gets the number''s: they are derived, like phone_hash');

/** Section - the zone data changes */
select tests.clear_authentication();
select results_eq(format($$ select herald.phone_zones(phone) is not distinct from phone_zones and herald.phone_regions(phone) is not distinct from phone_regions
                            from contacts where workspace_id = %L $$, :'ws'),
  $$ values (true), (true), (true) $$,
  'every stored place is the one the number has');
insert into herald.phone_prefix_zones (prefix, zones) values ('3314268', '{Indian/Reunion}');
select is((select phone_zones from contacts where workspace_id = :'ws' and phone = '+33142685300'), '{Indian/Reunion}',
  'a longer prefix added to the zone data moves the contacts it covers');
delete from herald.phone_prefix_zones where prefix = '3314268';
select is((select phone_zones from contacts where workspace_id = :'ws' and phone = '+33142685300'), '{Europe/Paris}',
  'and taking it out moves them back');
update herald.nanp_area_codes set regions = '{US-CA}' where area_code = '775';
select is((select phone_regions from contacts where workspace_id = :'ws' and phone = '+17755550102'), '{US-CA}',
  'an area code''s regions changed: its contacts follow');

/** Section - the send rules read the row */
-- With the triggers held (as a restore or replica would), a stored place that differs from the
-- number's is the one contact_zones and allowed_send_time go by: they no longer look it up.
set local session_replication_role = replica;
update contacts set phone_zones = '{Asia/Tokyo}' where workspace_id = :'ws' and phone = '+33142685300';
set local session_replication_role = origin;
select is((select herald.contact_zones(c) from contacts c where workspace_id = :'ws' and phone = '+33142685300'), '{Asia/Tokyo}',
  'herald.contact_zones reads the stored zones');
-- 02:00 UTC is 11:00 in Tokyo and 03:00 in Paris: inside the window only by the stored zone.
select is((select herald.allowed_send_time(c, 'transactional', w, '2026-06-01 02:00+00')
           from contacts c join workspaces w on w.id = c.workspace_id where c.workspace_id = :'ws' and c.phone = '+33142685300'),
  '2026-06-01 02:00+00'::timestamptz, 'herald.allowed_send_time goes by the stored zones');

select tests.authenticate_as('pia');
select throws_ok($$ select herald.refresh_contact_places() $$, '42501', null, 'members cannot call the refresh');

select * from finish();
rollback;
