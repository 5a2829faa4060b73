import assert from "node:assert/strict";
import { connect, dispatchOnce, sandboxRecord, sendingWorkspace } from "./support.ts";

// Four dispatchers at once over 5,000 due messages: each message reaches Twilio exactly once.
// The sandbox's own count of create requests per number is the witness, not Herald's tables.
// Meanwhile leases expire mid-batch: a stall loop cuts the lease of claimed messages whose send
// was not yet confirmed (as if their dispatcher had fallen behind them) and runs the reaper, as
// pg_cron does. Those are claimed again, looked up at Twilio first, and still sent once.

const MESSAGES = 5_000;
const DISPATCHERS = 4;
const BATCH = 250;

/** 5,000 distinct numbers no other test uses (the others draw from +1415…). */
const numberOf = (i: number) => `+1312555${String(i).padStart(4, "0")}`;

Deno.test({
  name: "concurrency: 4 dispatchers over 5,000 due messages send each exactly once",
  // The callbacks of 5,000 messages go on arriving after the test; they are the stack's, not ours.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    try {
      const started = Date.now();
      // The highest rate a sender may have, so the rate slots are not what this test waits on.
      const { workspaceId } = await sendingWorkspace(sql, { mps: 1000 });
      // Counted as a difference, so a stack that has run this test before still proves it.
      const before = (await sandboxRecord()).create_requests_by_to;

      // Set-based, as postgres: 5,000 contacts and one due message each, then the cron job's queueing.
      await sql`insert into contacts (workspace_id, phone)
                select ${workspaceId}, '+1312555' || lpad(i::text, 4, '0') from generate_series(0, ${MESSAGES - 1}) i`;
      await sql`insert into messages (workspace_id, contact_id, body, send_at, status, category)
                select workspace_id, id, 'load ' || phone, now() - interval '1 minute', 'scheduled', 'transactional'
                from contacts where workspace_id = ${workspaceId}`;
      // What autovacuum does within a minute of a bulk load. Without it, on a cluster whose tables
      // were last analyzed while empty (as after the pgTAP suite), the planner takes the 5,000
      // new rows for none and both queueing and claiming pick plans that re-read the table for
      // every message (about 100 s to queue them): a planning hazard the README's Performance
      // notes describe, not what this test is about.
      await sql`analyze contacts, messages`;
      const queueing = Date.now();
      await sql`select herald.queue_due_messages(20000)`;
      const queueSeconds = (Date.now() - queueing) / 1000;
      assert.ok(queueSeconds < 45, `queueing 5,000 messages took ${queueSeconds.toFixed(1)} s`);
      const [{ queued }] = await sql`select count(*)::int as queued from messages where workspace_id = ${workspaceId} and status = 'queued'`;
      assert.equal(queued, MESSAGES);

      // Each dispatcher calls dispatch over HTTP until nothing of ours is left to claim.
      const remaining = async () => {
        const [{ n }] = await sql`select count(*)::int as n from messages where workspace_id = ${workspaceId}
                                  and status in ('scheduled', 'queued', 'sending')`;
        return n as number;
      };
      // Every attempt whose lease the staller cut: (message, attempt number).
      const cutIds: string[] = [];
      const cutAttempts: number[] = [];
      let dispatching = true;
      const staller = (async () => {
        const s = connect(1);
        try {
          while (dispatching) {
            await s.begin(async (tx) => {
              // Locked first (skipping a message being confirmed right now), then looked at afresh.
              const ids = (await tx`select id from messages where workspace_id = ${workspaceId} and status = 'sending'
                                    and random() < 0.05 for update skip locked`).map((r) => r.id);
              if (ids.length === 0) return;
              const cut = await tx`update messages m set lease_expires_at = now() - interval '1 second'
                                   from message_attempts a
                                   where m.id = any (${ids}::uuid[]) and a.message_id = m.id and a.attempt_no = m.attempts
                                     and a.confirmed_at is null
                                   returning m.id, m.attempts`;
              for (const c of cut) {
                cutIds.push(c.id);
                cutAttempts.push(c.attempts);
              }
            });
            await s`select herald.reap_expired_leases()`;
            await new Promise((r) => setTimeout(r, 100));
          }
        } finally {
          await s.end();
        }
      })();
      const claims: number[][] = Array.from({ length: DISPATCHERS }, () => []);
      let slowest = 0;
      const dispatcher = async (k: number) => {
        for (let round = 0; round < 200; round++) {
          const t0 = Date.now();
          const summary = await dispatchOnce(BATCH);
          slowest = Math.max(slowest, Date.now() - t0);
          claims[k].push(summary.claimed);
          if (summary.claimed === 0 && (await remaining()) === 0) return;
          if (summary.claimed === 0) await new Promise((r) => setTimeout(r, 50));
        }
        throw new Error(`dispatcher ${k} gave up with ${await remaining()} messages left`);
      };
      await Promise.all(Array.from({ length: DISPATCHERS }, (_, k) => dispatcher(k)));
      dispatching = false;
      await staller;
      const stalled = cutIds.length;
      assert.ok(stalled > 0, "some leases expired mid-batch");
      const elapsed = (Date.now() - started) / 1000;

      const record = await sandboxRecord();
      const counts = Array.from({ length: MESSAGES }, (_, i) =>
        (record.create_requests_by_to[numberOf(i)] ?? 0) - (before[numberOf(i)] ?? 0));
      const wrong = counts.map((n, i) => [numberOf(i), n] as const).filter(([, n]) => n !== 1);
      assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} numbers were not sent exactly once`);

      const rows = await sql`select status, count(*)::int as n from messages where workspace_id = ${workspaceId} group by status`;
      const byStatus = Object.fromEntries(rows.map((r) => [r.status, r.n]));
      assert.equal((byStatus.sent ?? 0) + (byStatus.delivered ?? 0), MESSAGES, JSON.stringify(byStatus));
      const [a] = await sql`select count(distinct message_id)::int as messages, count(provider_sid)::int as sids,
                                   count(distinct message_id) filter (where provider_sid is not null)::int as sent_messages
                            from message_attempts where workspace_id = ${workspaceId}`;
      assert.deepEqual({ messages: a.messages, sids: a.sids, sent_messages: a.sent_messages },
        { messages: MESSAGES, sids: MESSAGES, sent_messages: MESSAGES }, "one sid per message");
      // A cut attempt is never confirmed, so never sent by its dispatcher. (One reclaimed after a
      // lost lease may still carry a sid: the earlier attempt's message, found at Twilio by the
      // look-up and recorded on it; the once-per-number count above proves nothing was resent.)
      const [cutRows] = await sql`select count(*)::int as attempts, count(a.confirmed_at)::int as confirmed
                                  from unnest(${cutIds}::uuid[], ${cutAttempts}::int[]) x(id, n)
                                  join message_attempts a on a.message_id = x.id and a.attempt_no = x.n`;
      assert.equal(cutRows.confirmed, 0, `${cutRows.confirmed} of ${cutRows.attempts} attempts were confirmed after their lease was cut`);
      assert.ok(cutRows.attempts > 0, "the cut attempts are on record");

      // Every dispatcher took part, and no claim was larger than its batch.
      const perDispatcher = claims.map((c) => c.reduce((s, n) => s + n, 0));
      assert.ok(perDispatcher.every((n) => n > 0), `claims per dispatcher: ${perDispatcher}`);
      assert.ok(claims.flat().every((n) => n <= BATCH));
      console.log(`concurrency: ${MESSAGES} messages queued in ${queueSeconds.toFixed(1)} s, sent by ${DISPATCHERS} dispatchers ` +
        `(${stalled} leases cut mid-batch); ${elapsed.toFixed(1)} s in all ` +
        `(claimed per dispatcher: ${perDispatcher.join(", ")}; slowest dispatch call ${(slowest / 1000).toFixed(1)} s)`);
    } finally {
      await sql.end();
    }
  },
});
