-- Twilio's error classes (…_provider_error_classes.sql): herald.provider_error_classes as
-- documented by Twilio, one assertion per class, herald.provider_error_class (a known code wins
-- over its HTTP status; unknown codes by status), herald.next_local_day, and public.provider_errors
-- for apps.
begin;
select plan(16);

/** Section - every code Herald handles, classed */
select set_eq($$ select code from herald.provider_error_classes $$,
  array[20003, 20429, 20500, 20503, 21211, 21408, 21610, 21611, 21612, 21614, 21617, 21654, 21655, 21656,
        30001, 30003, 30005, 30006, 30007, 30008, 30017, 30022, 30023, 30036, 63016, 63038, 90007],
  'the table holds every code Herald sends, receives or gets from the sandbox');
select set_eq($$ select code from herald.provider_error_classes where class = 'retry_free' $$, array[20003, 20429],
  'retry_free: requests Twilio never processed (429 / 20429, refused credentials)');
select set_eq($$ select code from herald.provider_error_classes where class = 'transient' $$,
  array[20500, 20503, 21611, 30001, 30008, 30017, 30022],
  'transient: server errors, a full sender queue (21611), queue overflow (30001), congestion and rate limits');
select set_eq($$ select code from herald.provider_error_classes where class = 'defer_next_day' $$, array[30023, 63038],
  'defer_next_day: the account''s daily limit (63038) and the carriers'' daily cap');
select set_eq($$ select code from herald.provider_error_classes where class = 'permanent' $$,
  array[21211, 21408, 21610, 21612, 21614, 21617, 21654, 21655, 21656, 30003, 30005, 30006, 30007, 30036, 63016, 90007],
  'permanent: bad or unreachable numbers, opt-outs, filtered content, template errors, expired validity');
select is_empty($$ select code from herald.provider_error_classes where length(message) < 30 or message !~ '[.:]' $$,
  'each says in a sentence what a person can do');
select throws_ok($$ insert into herald.provider_error_classes values (1, 't', 'api', 'sometimes', 'a', 'm', 'https://www.twilio.com/docs/api/errors/1') $$,
  '23514', null, 'a class outside the four is refused');
select throws_ok($$ insert into herald.provider_error_classes values (2, 't', 'api', 'permanent', 'a', 'm', 'https://example.com/2') $$,
  '23514', null, 'so is a link that is not Twilio''s page for the code');

/** Section - the lookup */
select is((herald.provider_error_class(63038, 429)).class, 'defer_next_day',
  'a known code wins over its HTTP status: 63038 comes with 429 but waits for the next day');
select is((herald.provider_error_class(21610, 400)).action, 'Fails at once, opts the contact out everywhere and records a provider opt-out in consents.',
  'a known code brings what Herald does');
select results_eq($$ select (e).class from (values (herald.provider_error_class(null, 429)), (herald.provider_error_class(29999, 503)),
                                               (herald.provider_error_class(null, null)), (herald.provider_error_class(21999, 400)),
                                               (herald.provider_error_class(39999, null))) v (e) $$,
  $$ values ('retry_free'), ('transient'), ('unknown'), ('permanent'), ('permanent') $$,
  'unknown codes by HTTP status: 429 retry_free; 5xx transient; other 4xx and unknown delivery errors permanent; no answer at all unknown');
select is((herald.provider_error_class(39999, null)).doc_url, 'https://www.twilio.com/docs/api/errors/39999',
  'an unknown code still links to Twilio''s page for it');

/** Section - the next local day */
select is(herald.next_local_day('2026-03-08 03:00Z', 'America/New_York'), '2026-03-08 05:00Z'::timestamptz,
  '22:00 EST on the 7th: the next day starts at midnight EST');
select is(herald.next_local_day('2026-03-08 12:00Z', 'America/New_York'), '2026-03-09 04:00Z'::timestamptz,
  'on the day clocks go forward, the next midnight is EDT');

/** Section - for apps */
select tests.create_user('err_reader');
select tests.authenticate_as('err_reader');
select results_eq($$ select class, doc_url from provider_errors where code = 63016 $$,
  $$ values ('permanent', 'https://www.twilio.com/docs/api/errors/63016') $$, 'any signed-in user reads public.provider_errors');
select tests.authenticate_as_anon();
select throws_ok('select * from provider_errors', '42501', null, 'anon does not');

select * from finish();
rollback;
