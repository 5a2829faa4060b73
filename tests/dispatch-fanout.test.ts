import assert from "node:assert/strict";
import { DENO_BIN, DENO_CONFIG, ROOT } from "@herald/scripts/lib/config.ts";
import { callFunction, connect, sendingWorkspace, senderPhone, stack, waitFor } from "./support.ts";
import type postgres from "postgres";

// Dispatch sized by the work, over HTTP: a dispatcher call keeps claiming until its budget is
// spent or no work is left, and the stack runner (scripts/local-cron.ts, standing in for pg_cron
// and pg_net) starts as many calls at once as herald.dispatch_fanout says, generation after
// generation, until the backlog is drained with every sender at its rate.

interface Summary {
  claimed: number;
  sent: number;
}

async function dispatch(body: Record<string, unknown>): Promise<{ summary: Summary; ms: number }> {
  const t0 = performance.now();
  const res = await callFunction("dispatch", { token: stack.serviceRoleKey, body });
  assert.equal(res.status, 200, res.text);
  return { summary: res.body as Summary, ms: performance.now() - t0 };
}

/** `n` due queued messages with distinct bodies, spread round-robin over the workspace's senders. */
async function backlog(sql: postgres.Sql, workspaceId: string, n: number, tag: string) {
  await sql`insert into contacts (workspace_id, phone)
            select ${workspaceId}, '+16285' || lpad(i::text, 6, '0')
            from generate_series(1, ${n}::int) i`;
  await sql`
    with c as (select array_agg(id order by phone) as ids from contacts where workspace_id = ${workspaceId}),
         s as (select array_agg(id order by phone_number) as ids from senders where workspace_id = ${workspaceId})
    insert into messages (workspace_id, contact_id, sender_id, channel, body, send_at, status, category)
    select ${workspaceId}, c.ids[i], s.ids[1 + i % cardinality(s.ids)], 'sms', ${tag} || ' ' || i,
           now() - interval '1 minute' + i * interval '1 millisecond', 'queued', 'transactional'
    from c, s, generate_series(1, ${n}::int) i`;
  await sql`analyze contacts, messages`;
}

async function statusCounts(sql: postgres.Sql, workspaceId: string): Promise<Record<string, number>> {
  const rows = await sql`select status::text, count(*)::int as n from messages where workspace_id = ${workspaceId} group by 1`;
  return Object.fromEntries(rows.map((r) => [r.status as string, r.n as number]));
}

interface SandboxMessage {
  from: string | null;
  body: string;
  received_at_ms: number;
}

async function sandboxMessagesFrom(senders: string[]): Promise<SandboxMessage[]> {
  const res = await fetch(`${stack.sandboxUrl}/_sandbox/messages`);
  const all = (await res.json()).messages as SandboxMessage[];
  return all.filter((m) => m.from !== null && senders.includes(m.from));
}

Deno.test("dispatch: a call keeps claiming until no work is left, and stops at its budget", async () => {
  const sql = connect();
  const workspaces: string[] = [];
  try {
    // 450 due on a fast sender: one call, four claims of 100 and a fifth of 50, then nothing left.
    const fast = await sendingWorkspace(sql, { mps: 1000 });
    workspaces.push(fast.workspaceId);
    await backlog(sql, fast.workspaceId, 450, "drain");
    const drained = await dispatch({ limit: 100 });
    assert.ok(drained.summary.claimed >= 450, JSON.stringify(drained.summary));
    const after = await statusCounts(sql, fast.workspaceId);
    assert.equal((after.sent ?? 0) + (after.delivered ?? 0), 450, JSON.stringify(after));
    assert.ok(drained.ms < 30_000, `it answered when the work was done, not at its 60 s budget (${drained.ms} ms)`);

    // 60 due on a sender at 2 msg/s and a 6 s budget: the call claims for 6 s, its last claims
    // reserving slots up to 5 s past the budget, so 12 to 22 go out; the rest wait for the next call.
    const slow = await sendingWorkspace(sql, { mps: 2 });
    workspaces.push(slow.workspaceId);
    await backlog(sql, slow.workspaceId, 60, "budget");
    const cut = await dispatch({ budget_seconds: 6 });
    const counts = await statusCounts(sql, slow.workspaceId);
    const sent = (counts.sent ?? 0) + (counts.delivered ?? 0);
    assert.ok(sent >= 12 && sent <= 23, `${sent} sent in a 6 s budget at 2 msg/s: ${JSON.stringify(counts)}`);
    assert.equal(counts.queued, 60 - sent, "the rest is still queued, unclaimed");
    assert.ok(cut.ms >= 6_000 && cut.ms < 15_000, `the call answered after ${cut.ms} ms`);
    const [{ running }] = await sql`select count(*)::int as running from herald.dispatch_runs where claims_until > now()`;
    assert.equal(running, 0, "neither call counts as running once it answered");
  } finally {
    // Nothing of these backlogs is left due for the tests after this one.
    await sql`update messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now()
              where workspace_id = any (${workspaces}::uuid[]) and status = 'queued'`;
    await sql.end();
  }
});

Deno.test("dispatch: a budget is 0 (one claim) to 120 seconds", async () => {
  for (const [budget, message] of [[121, "budget_seconds: must be at most 120"], [-1, "budget_seconds: must be at least 0"], [
    2.5,
    "budget_seconds: must be an integer",
  ]] as const) {
    const res = await callFunction("dispatch", { token: stack.serviceRoleKey, body: { budget_seconds: budget } });
    assert.equal(res.status, 400, res.text);
    assert.deepEqual((res.body as { error: unknown }).error, { code: "invalid_body", message });
  }
});

const SENDERS = 4;
const MPS = 10;
const PER_SENDER = 200;

Deno.test({
  name: "stack runner: as many dispatch calls at once as herald.dispatch_fanout says, generation after generation, until drained",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    const [saved] = await sql`select call_budget, call_rate, max_calls from herald.dispatch_settings`;
    let cron: Deno.ChildProcess | undefined;
    let workspaceId: string | undefined;
    try {
      // 10 s budgets and calls sized for 10 msg/s: 4 senders at 10 msg/s with 200 due each can
      // send 100 each in one budget, so 4 calls; the first generation claims no further than 5 s
      // past its budget, so the 20 s backlog takes a second.
      await sql`update herald.dispatch_settings set call_budget = '10 seconds', call_rate = ${MPS}, max_calls = 20`;
      const ws = await sendingWorkspace(sql, { mps: MPS });
      workspaceId = ws.workspaceId;
      const phones = [ws.senderNumber];
      for (let i = 1; i < SENDERS; i++) {
        const [s] = await sql`insert into senders (workspace_id, channel, phone_number, status, mps)
                              values (${ws.workspaceId}, 'sms', ${senderPhone()}, 'connected', ${MPS}) returning phone_number`;
        phones.push(s.phone_number);
      }
      await backlog(sql, ws.workspaceId, SENDERS * PER_SENDER, `fan-out ${ws.workspaceId.slice(0, 8)}`);
      const [plan] = await sql`select * from herald.dispatch_fanout(interval '1 second')`;
      assert.deepEqual({ sendable: plan.sendable, needed: plan.needed, calls: plan.calls }, {
        sendable: SENDERS * 10 * MPS,
        needed: 4,
        calls: 4,
      }, "nothing but this backlog is due, and it needs 4 calls");

      const lines: string[] = [];
      cron = new Deno.Command(DENO_BIN, {
        args: ["run", "-A", "--config", DENO_CONFIG, `${ROOT}/scripts/local-cron.ts`],
        env: {
          HERALD_DISPATCH_URL: `${stack.functionsUrl}/dispatch`,
          SUPABASE_SERVICE_ROLE_KEY: stack.serviceRoleKey,
          HERALD_DB_URL: stack.dbUrl,
          HERALD_DISPATCH_INTERVAL_MS: "1000",
          NO_COLOR: "1",
        },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      for (const stream of [cron.stdout, cron.stderr]) {
        stream.pipeThrough(new TextDecoderStream()).pipeTo(
          new WritableStream({ write: (chunk) => void lines.push(...chunk.split("\n").filter(Boolean)) }),
        ).catch(() => {});
      }

      const t0 = Date.now();
      let mostRunning = 0;
      await waitFor("the backlog to be sent", async () => {
        const [{ running }] = await sql`select count(*)::int as running from herald.dispatch_runs where claims_until > now()`;
        mostRunning = Math.max(mostRunning, running);
        const c = await statusCounts(sql, ws.workspaceId);
        return (c.sent ?? 0) + (c.delivered ?? 0) === SENDERS * PER_SENDER;
      }, 60_000);
      const drainedMs = Date.now() - t0;
      const posted = () =>
        lines.map((l) => /^local-cron: (\d+) dispatch call\(s\) at once/.exec(l)).filter((m) => m !== null).map((m) => Number(m![1]));
      const answered = () => lines.filter((l) => l.startsWith("local-cron: dispatch {")).length;
      await waitFor("every call to answer", () => Promise.resolve(answered() === posted().reduce((a, b) => a + b, 0)), 30_000);

      const errors = lines.filter((l) => /answered \d|unreachable|could not/.test(l));
      assert.deepEqual(errors, [], lines.join("\n"));
      assert.equal(posted()[0], 4, `its first tick started the 4 calls at once:\n${lines.join("\n")}`);
      assert.ok(posted().length >= 2, `a second generation took over from the first:\n${lines.join("\n")}`);
      assert.ok(mostRunning >= 2 && mostRunning <= 20, `${mostRunning} calls ran at once at most`);

      // The sandbox's record: each message created once, each sender at its rate throughout
      // (generations hand over without a gap), the senders side by side.
      const record = await sandboxMessagesFrom(phones);
      assert.equal(record.length, SENDERS * PER_SENDER);
      assert.equal(new Set(record.map((m) => m.body)).size, SENDERS * PER_SENDER, "no message was sent twice");
      for (const p of phones) {
        const at = record.filter((m) => m.from === p).map((m) => m.received_at_ms).sort((a, b) => a - b);
        assert.equal(at.length, PER_SENDER);
        const rate = (at.length - 1) / ((at[at.length - 1] - at[0]) / 1000);
        assert.ok(Math.abs(rate / MPS - 1) <= 0.1, `sender ${p} sent at ${rate.toFixed(2)} msg/s, not ${MPS}`);
        // Never ahead of the sender's schedule, one slot every 1/mps from its first send (a stall
        // on this busy machine can delay sends and bunch them; it cannot bring one forward).
        for (let i = 1; i < at.length; i++) {
          const ahead = at[0] + (i * 1000) / MPS - at[i];
          assert.ok(ahead <= 1000, `sender ${p}: send ${i + 1} went out ${ahead} ms ahead of its rate`);
        }
      }
      assert.ok(drainedMs < (PER_SENDER / MPS + 8) * 1000, `drained in ${drainedMs} ms`);
      const [{ running }] = await sql`select count(*)::int as running from herald.dispatch_runs where claims_until > now()`;
      assert.equal(running, 0, "no call is left running");
      const [after] = await sql`select calls, sendable from herald.dispatch_fanout(interval '1 second')`;
      assert.deepEqual({ calls: after.calls, sendable: after.sendable }, { calls: 0, sendable: 0 }, "and none is asked for");
    } finally {
      if (cron) {
        cron.kill("SIGTERM");
        await cron.status;
      }
      await sql`update herald.dispatch_settings set call_budget = ${saved.call_budget}, call_rate = ${saved.call_rate},
                max_calls = ${saved.max_calls}`;
      if (workspaceId) {
        await sql`update messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now()
                  where workspace_id = ${workspaceId} and status = 'queued'`;
      }
      await sql.end();
    }
  },
});
