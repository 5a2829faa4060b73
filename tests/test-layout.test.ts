// The two checks npm test runs over the pgTAP suite's shape (scripts/lib/test-layout.ts), on
// made-up trees: each finds what it must and lets through what it must.

import assert from "node:assert/strict";
import {
  CROSS_CUTTING,
  definingStem,
  HARNESS,
  layoutProblems,
  migrationStem,
  namesFunction,
  unnamedFunctions,
  untestedIn,
} from "@herald/scripts/lib/test-layout.ts";

Deno.test("a migration's stem is its name after the timestamp", () => {
  assert.equal(migrationStem("20261121221100_dispatch.sql"), "dispatch");
  assert.equal(migrationStem("20261121221100_provider_webhooks.sql"), "provider_webhooks");
  assert.equal(migrationStem("notes.sql"), null);
});

Deno.test("layout: a migration without its test file, and a test file of no migration, are reported", () => {
  const migrations = ["20261121220000_herald_setup.sql", "20261121221100_dispatch.sql"];
  assert.deepEqual(
    layoutProblems(migrations, [HARNESS, "herald_setup.test.sql", "dispatch.test.sql", `${CROSS_CUTTING[0]}.test.sql`]),
    [],
  );
  const problems = layoutProblems(migrations, [HARNESS, "herald_setup.test.sql", "060-queueing.sql"]);
  assert.equal(problems.length, 2);
  assert.match(problems[0], /missing dispatch\.test\.sql/);
  assert.match(problems[1], /060-queueing\.sql is neither/);
});

Deno.test("a function counts as named only by its own name, Herald's internals qualified", () => {
  assert.ok(namesFunction("herald.claim_messages", "select * from herald.claim_messages(10);"));
  assert.ok(namesFunction("herald.senders_before_delete", "-- herald.senders_before_delete: re-binds"));
  assert.ok(!namesFunction("herald.enroll", "select enroll_contact(:'q', :'c'); -- we enroll her"));
  assert.ok(!namesFunction("herald.enroll", "select herald.enrollment_count()"));
  assert.ok(namesFunction("public.take_lead", "select take_lead(:'lee')"));
  assert.ok(namesFunction("public.take_lead", "select public.TAKE_LEAD(:'lee')"));
  assert.ok(!namesFunction("public.take_lead", "select retake_lead(:'lee'), take_leads()"));
  assert.ok(!namesFunction("public.take_lead", "select herald.take_lead(:'lee')"));
});

Deno.test("untested: the functions no text names, in the order given", () => {
  assert.deepEqual(
    unnamedFunctions(["herald.spread", "herald.quiet_until", "public.schedule_message"], [
      "select herald.quiet_until(now(), 'UTC', '21:00', '08:00');",
      "select schedule_message(:'c', 'hi');",
    ]),
    ["herald.spread"],
  );
});

Deno.test("a function's test file is its migration's: the last one that creates it", () => {
  const migrations = new Map([
    ["20261121221100_dispatch.sql", "create function herald.claim_messages(p_limit integer) returns void ..."],
    ["20261121221000_queueing.sql", "create function herald.spread(p uuid) ...\nCREATE OR REPLACE FUNCTION herald.quiet_until (p timestamptz)"],
    ["20261201000000_faster_claims.sql", "create or replace function herald.claim_messages(p_limit integer) returns void ..."],
  ]);
  assert.equal(definingStem("herald.quiet_until", migrations), "queueing");
  assert.equal(definingStem("herald.claim_messages", migrations), "faster_claims");
  assert.equal(definingStem("herald.claim", migrations), null);
});

Deno.test("untested: a function named only outside its migration's test file is reported", () => {
  const migrations = new Map([
    ["20261121221000_queueing.sql", "create function herald.spread(p uuid)\ncreate function herald.quiet_until(p timestamptz)"],
  ]);
  const tests = new Map([
    ["queueing.test.sql", "select herald.quiet_until(now(), 'UTC', '21:00', '08:00');"],
    ["dispatch.test.sql", "select herald.spread(gen_random_uuid(), '1 minute');"],
    ["orphans.test.sql", "select herald.made_elsewhere();"],
  ]);
  assert.deepEqual(untestedIn(["herald.quiet_until", "herald.spread", "herald.made_elsewhere", "herald.nowhere"], migrations, tests), [
    "herald.spread (…_queueing.sql): not named in queueing.test.sql",
    "herald.nowhere: named by no test file",
  ]);
});
