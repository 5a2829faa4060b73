// A sender at mps N sends N segments a second, not N messages, across all dispatchers: measured
// at the sandbox, from the times it received each create request. Messages are transactional
// (no legal hours) and the sandbox does not pace itself in tests, so what it records is Herald's
// own pacing.

import assert from "node:assert/strict";
import { callFunction, connect, phone, sandboxRecord, sendingWorkspace, stack } from "./support.ts";
import type postgres from "postgres";

/** Queues `bodies` for the workspace's default SMS sender, oldest first, spread over `phones`. */
async function queueTexts(sql: postgres.Sql, workspaceId: string, phones: string[], bodies: string[]) {
  const contacts = await sql`
    insert into contacts (workspace_id, phone) select ${workspaceId}, p from unnest(${phones}::text[]) p returning id::text`;
  await sql`
    insert into messages (workspace_id, contact_id, body, send_at, status, category)
    select ${workspaceId}, (${contacts.map((c) => c.id)}::uuid[])[1 + (b.i - 1) % ${contacts.length}], b.body,
           now() - interval '1 minute' + make_interval(secs => b.i / 1000.0), 'scheduled', 'transactional'
    from unnest(${bodies}::text[]) with ordinality b(body, i)`;
  await sql`select herald.queue_due_messages()`;
}

/** What the sandbox accepted for these numbers: receive time and segments, in order. */
async function accepted(phones: string[]) {
  const record = await sandboxRecord();
  return record.messages
    .filter((m) => m.direction === "outbound-api" && phones.includes(m.to))
    .map((m) => ({ at: m.received_at_ms, segments: Number(m.num_segments) }))
    .sort((a, b) => a.at - b.at);
}

async function dispatch(body: { limit: number; budget_seconds: number }) {
  const res = await callFunction("dispatch", { token: stack.serviceRoleKey, body });
  assert.equal(res.status, 200, res.text);
}

/** How many of the workspace's messages Twilio (the sandbox) took. A dispatcher's summary also
 * counts other tests' due messages: the workspace's own rows are what this test sent. */
async function sentCount(sql: postgres.Sql, workspaceId: string): Promise<number> {
  const [{ n }] = await sql`select count(*)::int as n from messages where workspace_id = ${workspaceId} and sent_at is not null`;
  return n;
}

Deno.test({
  name: "six 2-segment messages through a sender at 2 mps take 5 s, not 2.5",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    try {
      const { workspaceId } = await sendingWorkspace(sql, { mps: 2 });
      const phones = Array.from({ length: 6 }, phone);
      await queueTexts(sql, workspaceId, phones, phones.map((_, i) => `Two parts, message ${i}: ${"x".repeat(180)}`));
      const [{ segments }] = await sql`select array_agg(distinct segments) as segments from messages where workspace_id = ${workspaceId}`;
      assert.deepEqual(segments, [2]);

      await dispatch({ limit: 20, budget_seconds: 0 });
      assert.equal(await sentCount(sql, workspaceId), 6);
      const times = (await accepted(phones)).map((a) => a.at);
      assert.equal(times.length, 6);
      // Slots a second apart (2 segments at 2 a second): 5 s from the first to the last. The
      // first goes out as soon as the claim is back, a few milliseconds after its slot; the others
      // at theirs: allow that lag, no more.
      const span = times[5] - times[0];
      assert.ok(span >= 4900, `the six reached the sandbox over ${span} ms`);
      for (let i = 1; i < 6; i++) {
        assert.ok(times[i] - times[i - 1] >= 900, `message ${i} came ${times[i] - times[i - 1]} ms after the one before`);
      }
    } finally {
      await sql.end();
    }
  },
});

Deno.test({
  name: "30 s of mixed 1- and 3-segment texts, two dispatchers: the sender's segment rate holds within 5%",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    try {
      const mps = 4;
      const { workspaceId } = await sendingWorkspace(sql, { mps });
      const phones = Array.from({ length: 6 }, phone);
      // 120 segments at 4 a second: 30 s. 1, 3, 1, 3…
      const bodies = Array.from({ length: 60 }, (_, i) => i % 2 === 0 ? `short ${i}` : `long ${i} ${"y".repeat(320)}`);
      await queueTexts(sql, workspaceId, phones, bodies);
      const [{ total }] = await sql`select sum(segments)::int as total from messages where workspace_id = ${workspaceId}`;
      assert.equal(total, 120);

      // Two dispatcher calls side by side, each claiming a few at a time, the second a second
      // later (a first claim that finds the sender held by the other's claim ends its call): the
      // pace is the sender's, whoever claims.
      await Promise.all([
        dispatch({ limit: 6, budget_seconds: 40 }),
        new Promise((r) => setTimeout(r, 1000)).then(() => dispatch({ limit: 6, budget_seconds: 40 })),
      ]);
      assert.equal(await sentCount(sql, workspaceId), 60);

      const sent = await accepted(phones);
      assert.equal(sent.length, 60);
      assert.equal(sent.reduce((n, m) => n + m.segments, 0), 120, "the sandbox counts the same segments");
      // Each message's segments are spent before the next may go: the rate over the run is the
      // segments of all but the last over the time from the first to the last.
      const seconds = (sent[59].at - sent[0].at) / 1000;
      const rate = (120 - sent[59].segments) / seconds;
      assert.ok(Math.abs(rate - mps) / mps <= 0.05, `${rate.toFixed(3)} segments/s over ${seconds.toFixed(1)} s (sender at ${mps} mps)`);
    } finally {
      await sql.end();
    }
  },
});
