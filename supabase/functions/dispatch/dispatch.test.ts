import assert from "node:assert/strict";
import { sidPattern } from "@herald/shared/sids.ts";
import {
  asUser,
  callFunction,
  connect,
  dispatchOnce,
  sandboxClient,
  sandboxRecord,
  sendingWorkspace,
  stack,
  waitFor,
} from "@herald/tests/support.ts";

// Twilio's magic numbers and the sandbox's extensions, and where each one must end.
const CASES = [
  { to: "+14155550123", status: "delivered", code: null },
  { to: "+15005550001", status: "failed", code: 21211 },
  { to: "+15005550002", status: "failed", code: 21612 },
  { to: "+15005550003", status: "failed", code: 21408 },
  { to: "+15005550004", status: "failed", code: 21610 },
  { to: "+15005550009", status: "failed", code: 21614 },
  { to: "+15005550010", status: "undelivered", code: 30003 },
  { to: "+15005550011", status: "failed", code: 30008 },
  { to: "+15005550012", status: "delivered", code: null },
  { to: "+15005550013", status: "failed", code: 20500 },
  { to: "+15005550014", status: "delivered", code: null },
];

Deno.test("end to end: schedule → queue → dispatch → sandbox → signed callbacks, for every sandbox number", async () => {
  const sql = connect();
  try {
    const { owner, workspaceId } = await sendingWorkspace(sql, { retryBaseSeconds: 1 });
    const ids = new Map<string, string>();
    for (const c of CASES) {
      const [{ id: contactId }] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${c.to}) returning id::text`;
      const id = await asUser(sql, owner, async (tx) => {
        const [r] = await tx`select public.schedule_message(${contactId}::uuid, ${"hello " + c.to}, category => 'transactional')::text as id`;
        return r.id as string;
      });
      ids.set(c.to, id);
    }

    // The cron job's function, then the dispatcher over HTTP, until nothing is pending
    // (+15005550012 is retried after two 429s; +15005550013 exhausts its 3 attempts).
    await waitFor("every message to settle", async () => {
      await sql`select herald.queue_due_messages()`;
      await dispatchOnce();
      const rows = await sql`select count(*)::int as n from messages where workspace_id = ${workspaceId}
                             and status not in ('delivered', 'failed', 'undelivered')`;
      return rows[0].n === 0;
    }, 30_000);

    for (const c of CASES) {
      const [m] = await sql`select status, last_error_code, attempts, provider_sid from messages where id = ${ids.get(c.to)!}`;
      assert.equal(m.status, c.status, `${c.to} ended ${m.status}`);
      assert.equal(m.last_error_code, c.code, `${c.to} error code`);
    }

    // The ordinary number: one attempt, the full ledger, the attempt at the furthest status.
    const normal = ids.get("+14155550123")!;
    const attempts = await sql`select attempt_no, provider_sid, provider_status from message_attempts where message_id = ${normal}`;
    assert.equal(attempts.length, 1);
    assert.match(attempts[0].provider_sid, sidPattern("SM"));
    assert.equal(attempts[0].provider_status, "delivered");
    const ledger = await sql`select from_status, to_status from message_events where message_id = ${normal} order by id`;
    assert.deepEqual(ledger.map((e) => `${e.from_status ?? "∅"}→${e.to_status}`),
      ["∅→scheduled", "scheduled→queued", "queued→sending", "sending→sent", "sent→delivered"]);

    // 0012: two 429s then accepted; 0013: three attempts, all 500.
    const [retried] = await sql`select attempts from messages where id = ${ids.get("+15005550012")!}`;
    assert.equal(retried.attempts, 3);
    const [exhausted] = await sql`select attempts from messages where id = ${ids.get("+15005550013")!}`;
    assert.equal(exhausted.attempts, 3);
    // 0004 (21610): the contact is opted out and its number suppressed.
    const [optedOut] = await sql`select opted_out_at is not null as out from contacts where workspace_id = ${workspaceId} and phone = '+15005550004'`;
    assert.equal(optedOut.out, true);
    // 0014: delivered arrived before sent; the late sent changed nothing.
    const events = await sql`select outcome, provider_status from provider_events
                             where message_id = ${ids.get("+15005550014")!} order by id`;
    assert.ok(events.some((e) => e.provider_status === "sent" && e.outcome === "unchanged"), JSON.stringify(events));
  } finally {
    await sql.end();
  }
});

Deno.test("a contact deleted or taken over while its messages are queued gets none of them", async () => {
  const sql = connect();
  try {
    const { owner, workspaceId } = await sendingWorkspace(sql);
    const numbers = ["+14155551001", "+14155551002", "+14155551003"];
    const contacts: string[] = [];
    for (const phone of numbers) {
      const [c] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${phone}) returning id::text`;
      contacts.push(c.id);
      await asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, 'queued then gone', category => 'transactional')`);
    }
    await sql`select herald.queue_due_messages()`;
    const [{ n: queued }] = await sql`select count(*)::int as n from messages where workspace_id = ${workspaceId} and status = 'queued'`;
    assert.equal(queued, 3);

    await asUser(sql, owner, (tx) => tx`select public.delete_contact(${contacts[0]}::uuid)`);
    await asUser(sql, owner, (tx) => tx`update contacts set controlled_by = 'human' where id = ${contacts[1]}`);
    const summary = await dispatchOnce();
    assert.equal(summary.claimed, 1);

    const rows = await sql`select c.phone, m.status, m.cancel_reason from messages m join contacts c on c.id = m.contact_id
                           where m.workspace_id = ${workspaceId} order by c.phone`;
    assert.deepEqual(rows.map((r) => [r.phone, r.status === "cancelled" ? r.cancel_reason : "handed over"]), [
      ["+14155551001", "contact_deleted"],
      ["+14155551002", "human_takeover"],
      ["+14155551003", "handed over"],
    ]);
    const record = await sandboxRecord();
    assert.equal(record.create_requests_by_to["+14155551001"] ?? 0, 0);
    assert.equal(record.create_requests_by_to["+14155551002"] ?? 0, 0);
  } finally {
    await sql.end();
  }
});

Deno.test("a dispatcher killed mid-batch loses nothing and sends nothing twice", async () => {
  const sql = connect();
  try {
    const { owner, workspaceId } = await sendingWorkspace(sql);
    const phones = Array.from({ length: 6 }, (_, i) => `+1415555${String(2000 + i)}`);
    for (const phone of phones) {
      const [c] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${phone}) returning id::text`;
      await asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, ${"once only " + phone}, category => 'transactional')`);
    }
    await sql`select herald.queue_due_messages()`;
    // The doomed dispatcher claims everything, gets half of it to Twilio, and dies before
    // recording anything.
    const claimed = await sql`select * from herald.claim_messages(100, interval '30 seconds')
                              where workspace_id = ${workspaceId}`;
    assert.equal(claimed.length, 6);
    for (const m of claimed.slice(0, 3)) {
      await sandboxClient().messages.create({ to: m.to_phone, from: m.from_phone, body: m.body });
    }
    // Its leases expire and the reaper (a pg_cron job) puts the messages back, flagged.
    await sql`update messages set lease_expires_at = now() - interval '1 second' where workspace_id = ${workspaceId}`;
    const [{ reaped }] = await sql`select herald.reap_expired_leases() as reaped`;
    assert.ok(reaped >= 6);

    const summary = await dispatchOnce();
    assert.equal(summary.claimed, 6);
    assert.equal((summary as { reconciled?: number }).reconciled, 3);
    const record = await sandboxRecord();
    for (const phone of phones) assert.equal(record.create_requests_by_to[phone], 1, `${phone} sent exactly once`);
    const [{ n }] = await sql`select count(*)::int as n from messages where workspace_id = ${workspaceId} and status in ('sent', 'delivered')`;
    assert.equal(n, 6);
  } finally {
    await sql.end();
  }
});

Deno.test("dispatch: service role only, and bad bodies are refused", async () => {
  const sql = connect();
  try {
    const { owner } = await sendingWorkspace(sql);
    assert.equal((await callFunction("dispatch", { body: {} })).status, 401);
    assert.equal((await callFunction("dispatch", { token: owner.token, body: {} })).status, 403);
    const refused = async (body: unknown) => {
      const res = await callFunction("dispatch", { token: stack.serviceRoleKey, body });
      assert.equal(res.status, 400, res.text);
      return (res.body as { error: { code: string; message: string } }).error;
    };
    assert.deepEqual(await refused({ limit: 0 }), { code: "invalid_body", message: "limit: must be at least 1" });
    assert.deepEqual(await refused({ limit: 5001 }), { code: "invalid_body", message: "limit: must be at most 5000" });
    assert.deepEqual(await refused({ limit: 1.5 }), { code: "invalid_body", message: "limit: must be an integer" });
    assert.deepEqual(await refused({ limit: "x" }), {
      code: "invalid_body",
      message: "limit: expected number, received string",
    });
    assert.deepEqual(await refused({ limt: 5 }), { code: "invalid_body", message: "limt: unknown field" });
    assert.deepEqual(await refused("{"), { code: "invalid_body", message: "body: not valid JSON" });
  } finally {
    await sql.end();
  }
});
