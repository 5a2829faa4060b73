-- Keywords (…_keywords.sql): a workspace's extra opt-out and opt-in words and its HELP reply,
-- validated and normalised on write (herald.workspaces_keywords, herald.normalize_keyword), and
-- herald.classify_keyword, which reads one inbound body as Twilio does: the whole message, any
-- case, surrounding spaces and punctuation ignored.
begin;
select plan(20);

select tests.workspace_of('kit', 'Keyword Co', array['kay']) as ws \gset
select tests.workspace_of('kim', 'Plain Co') as ws_plain \gset

/** Section - the workspace's words */
select tests.authenticate_as('kit');
update workspaces set opt_out_keywords = array[' parar ', 'Arrêt!', 'PARAR'], opt_in_keywords = array['volver'],
                      help_reply = '  Acme: reply STOP to opt out, call 555-0100 for help.  '
where id = :'ws';
select results_eq(format($$ select opt_out_keywords, opt_in_keywords, help_reply from workspaces where id = %L $$, :'ws'),
  $$ values ('{ARRÊT,PARAR}'::text[], '{VOLVER}'::text[], 'Acme: reply STOP to opt out, call 555-0100 for help.') $$,
  'an admin''s words are stored upper-cased, trimmed of spaces and punctuation, once each; the help reply trimmed');
select throws_ok(format($$ update workspaces set opt_in_keywords = array['parar'] where id = %L $$, :'ws'), '22023',
  'keyword "PARAR" is both an opt-out and an opt-in keyword', 'a word in both sets is refused');
select throws_ok(format($$ update workspaces set opt_in_keywords = array['Help'] where id = %L $$, :'ws'), '22023',
  'keyword "HELP" is already a standard keyword of another kind', 'as is HELP as an opt-in word');
select throws_ok(format($$ update workspaces set opt_out_keywords = array['info'] where id = %L $$, :'ws'), '22023', null,
  'or INFO as an opt-out word');
select throws_ok(format($$ update workspaces set opt_out_keywords = array['start'] where id = %L $$, :'ws'), '22023', null,
  'or START as an opt-out word');
select throws_ok(format($$ update workspaces set opt_in_keywords = array['stop'] where id = %L $$, :'ws'), '22023', null,
  'or STOP as an opt-in word');
select lives_ok(format($$ update workspaces set opt_out_keywords = array['stop', 'parar', 'arrêt'] where id = %L $$, :'ws'),
  'repeating a standard word in its own set is harmless');
select throws_ok(format($$ update workspaces set opt_out_keywords = array['stop please'] where id = %L $$, :'ws'), '22023',
  'keyword "stop please" must be one word of 1 to 30 letters or digits', 'a keyword is one word');
select throws_ok(format($$ update workspaces set opt_out_keywords = array['!!'] where id = %L $$, :'ws'), '22023', null,
  'and not punctuation alone');
select throws_ok(format($$ update workspaces set help_reply = repeat('x', 1601) where id = %L $$, :'ws'), '23514', null,
  'a help reply longer than one message body is refused');
select tests.authenticate_as('kay');
select is_empty(format($$ update workspaces set opt_out_keywords = array['basta'] where id = %L returning id $$, :'ws'),
  'an agent cannot change the keywords');

/** Section - herald.classify_keyword */
select tests.clear_authentication();
select results_eq(format($$ select b, herald.classify_keyword(%L, b) from unnest(array[
    'STOP', ' stop ', 'Stop.', 'optout', 'REVOKE!', 'start', 'Unstop', 'YES', 'optin', 'help', 'Info?', 'stop please',
    'please stop', 'STOPP', '', null]) with ordinality u(b, n) order by n $$, :'ws_plain'),
  $$ values ('STOP', 'opt_out'), (' stop ', 'opt_out'), ('Stop.', 'opt_out'), ('optout', 'opt_out'), ('REVOKE!', 'opt_out'),
            ('start', 'opt_in'), ('Unstop', 'opt_in'), ('YES', 'opt_in'), ('optin', 'opt_in'), ('help', 'help'), ('Info?', 'help'),
            ('stop please', null), ('please stop', null), ('STOPP', null), ('', null), (null, null) $$,
  'the standard sets, whole message only, any case, surrounding spaces and punctuation ignored');
select results_eq(format($$ select herald.classify_keyword(%L, 'parar'), herald.classify_keyword(%L, '¡Parar!'),
                                   herald.classify_keyword(%L, 'arrêt'), herald.classify_keyword(%L, E'volver\n') $$, :'ws', :'ws', :'ws', :'ws'),
  $$ values ('opt_out', 'opt_out', 'opt_out', 'opt_in') $$, 'a workspace''s own words count in that workspace');
select results_eq(format($$ select herald.classify_keyword(%L, 'parar'), herald.classify_keyword(null, 'parar'), herald.classify_keyword(null, 'stop') $$, :'ws_plain'),
  $$ values (null::text, null::text, 'opt_out'::text) $$, 'and nowhere else; the standard ones everywhere');
select is(herald.normalize_keyword('  ¿Ayuda?  '), 'AYUDA', 'herald.normalize_keyword: upper-cased, surrounding punctuation and spaces gone');
select is(herald.normalize_keyword(' ... '), null, 'nothing left is null');
select is((select count(*)::int from herald.standard_keywords), 14, 'fourteen standard keywords');
select results_eq($$ select action, array_agg(keyword order by keyword) from herald.standard_keywords group by action order by action $$,
  $$ values ('help', '{HELP,INFO}'::text[]), ('opt_in', '{OPTIN,START,UNSTOP,YES}'), ('opt_out', '{CANCEL,END,OPTOUT,QUIT,REVOKE,STOP,STOPALL,UNSUBSCRIBE}') $$,
  'Twilio''s opt-out, opt-in and help sets');
select tests.authenticate_as('kay');
select throws_ok(format($$ select herald.classify_keyword(%L, 'stop') $$, :'ws'), '42501', null, 'classifying is Herald''s, not a member''s');
select tests.authenticate_as_service_role();
select is(herald.classify_keyword(:'ws', 'PARAR'), 'opt_out', 'the service role classifies for the inbound webhook');

select * from finish();
rollback;
