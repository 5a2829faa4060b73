import assert from "node:assert/strict";
import type postgres from "postgres";
import { asUser, connect, dispatchOnce, sandboxRecord, sendingWorkspace, stack, type TestUser, waitFor } from "./support.ts";

// Each class of Twilio error (herald.provider_error_classes, docs/provider-errors.md), driven over
// HTTP on the served stack through the real path: schedule_message, the cron job's queueing, the
// dispatch function, the sandbox's Twilio (a number per class) and its signed status callbacks, to
// the outcome the table documents: the message's status and attempts, its send_at and ledger
// reason, and what failed_messages tells a person. Messages are transactional and the workspace
// has no quiet hours, so nothing here depends on the hour the suite runs at.

interface Workspace {
  owner: TestUser;
  workspaceId: string;
}

async function workspace(sql: postgres.Sql, timezone = "UTC"): Promise<Workspace> {
  const { owner, workspaceId } = await sendingWorkspace(sql, { retryBaseSeconds: 1 });
  await sql`update workspaces set timezone = ${timezone} where id = ${workspaceId}`;
  return { owner, workspaceId };
}

/** A contact at `to` and one transactional message to it, as the app schedules one. */
async function schedule(sql: postgres.Sql, w: Workspace, to: string, body: string, maxAttempts?: number): Promise<string> {
  const [c] = await sql`insert into contacts (workspace_id, phone) values (${w.workspaceId}, ${to}) returning id::text`;
  const [{ id }] = await asUser(sql, w.owner, (tx) =>
    tx`select public.schedule_message(${c.id}::uuid, ${body}, category => 'transactional')::text as id`);
  if (maxAttempts !== undefined) await sql`update messages set max_attempts = ${maxAttempts} where id = ${id}`;
  return id;
}

/** One round of what pg_cron and the dispatch schedule do; the dispatcher's summary. */
async function queueAndDispatch(sql: postgres.Sql): Promise<Record<string, number>> {
  await sql`select herald.queue_due_messages()`;
  return await dispatchOnce();
}

/** waitFor, for a check that answers null or undefined until it has its value. */
async function until<T>(what: string, check: () => Promise<T | null | undefined>): Promise<T> {
  return (await waitFor(what, check)) as T;
}

/** The message's row once it is in `status`, running `step` (a dispatch round, say) before each look. */
async function untilStatus(sql: postgres.Sql, id: string, status: string, step?: () => Promise<unknown>) {
  return await until(`message ${id} to be ${status}`, async () => {
    await step?.();
    const row = await messageRow(sql, id);
    return row.status === status ? row : null;
  });
}

/** One class's test, with a connection of its own (the sandbox's callbacks outlive a test's ops). */
function classTest(name: string, fn: (sql: postgres.Sql) => Promise<void>) {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const sql = connect();
      try {
        await fn(sql);
      } finally {
        await sql.end();
      }
    },
  });
}

async function messageRow(sql: postgres.Sql, id: string) {
  const [m] = await sql`select status::text, attempts, max_attempts, last_error_code, last_error, send_at, cancel_reason::text,
                               provider_check_required, provider_sid, retry_of::text
                        from messages where id = ${id}`;
  return m;
}

async function attemptRows(sql: postgres.Sql, id: string) {
  return (await sql`select attempt_no, spent, provider_status, error_code from message_attempts
                    where message_id = ${id} order by attempt_no`).map((a) => ({ ...a }));
}

async function reasons(sql: postgres.Sql, id: string): Promise<string[]> {
  return (await sql`select coalesce(reason, '-') as reason from message_events where message_id = ${id} order by id`).map((e) => e.reason);
}

/** What a member reads in failed_messages, and what provider_errors says a person can do about the code. */
async function failedAsMember(sql: postgres.Sql, w: Workspace, id: string) {
  return await asUser(sql, w.owner, async (tx) => {
    const [f] = await tx`select f.status::text, f.attempts, f.last_error_code, f.last_error, p.message as what_to_do
                         from failed_messages f left join provider_errors p on p.code = f.last_error_code
                         where f.id = ${id}`;
    return f;
  });
}

/** Create requests the sandbox answered for `to` since `sinceMs`, as (HTTP status, Twilio code). */
async function createRequests(to: string, sinceMs: number): Promise<string[]> {
  const res = await fetch(`${stack.sandboxUrl}/_sandbox/messages`);
  const snap = await res.json() as { create_requests: { to: string | null; received_at_ms: number; http_status: number; error_code: number | null }[] };
  return snap.create_requests.filter((r) => r.to === to && r.received_at_ms >= sinceMs).map((r) => `${r.http_status}/${r.error_code ?? "-"}`);
}

async function sandboxCopies(body: string): Promise<number> {
  return (await sandboxRecord()).messages.filter((m) => m.body === body).length;
}

classTest(
  "retry_free: 429 / 20429 twice, then accepted; neither spends an attempt (max_attempts 1 still sends)",
  async (sql) => {
    const t0 = Date.now();
    const w = await workspace(sql);
    const body = `retry free ${crypto.randomUUID()}`;
    const id = await schedule(sql, w, "+15005550012", body, 1);

    const first = await queueAndDispatch(sql);
    assert.ok(first.retried >= 1, JSON.stringify(first));
    let m = await messageRow(sql, id);
    assert.deepEqual([m.status, m.attempts, m.last_error_code], ["queued", 1, 20429], "back to queued at once, no backoff");
    await queueAndDispatch(sql);
    await queueAndDispatch(sql);
    m = await untilStatus(sql, id, "delivered");
    assert.deepEqual([m.attempts, m.max_attempts, m.last_error], [3, 1, null]);
    assert.deepEqual(await attemptRows(sql, id), [
      { attempt_no: 1, spent: false, provider_status: "error", error_code: 20429 },
      { attempt_no: 2, spent: false, provider_status: "error", error_code: 20429 },
      { attempt_no: 3, spent: true, provider_status: "delivered", error_code: null },
    ], "each 429 keeps its row, saying it is not spent");
    assert.deepEqual((await reasons(sql, id)).filter((r) => r.startsWith("retry_free")), ["retry_free_20429", "retry_free_20429"]);
    assert.deepEqual(await createRequests("+15005550012", t0), ["429/20429", "429/20429", "201/-"]);
    assert.equal(await sandboxCopies(body), 1, "delivered once");
  },
);

classTest(
  "transient: 21611 is retried with backoff until max_attempts, then failed; a 30001 by callback is sent again as a new message",
  async (sql) => {
    const t0 = Date.now();
    const w = await workspace(sql);
    const id = await schedule(sql, w, "+15005550015", `queue full ${crypto.randomUUID()}`, 2);

    const first = await queueAndDispatch(sql);
    assert.ok(first.retried >= 1, JSON.stringify(first));
    const [{ wait }] = await sql`select extract(epoch from m.send_at - e.at)::float8 as wait from messages m
                                 join message_events e on e.message_id = m.id and e.reason = 'retry_backoff' where m.id = ${id}`;
    assert.ok(wait >= 0.5 && wait <= 1.5, `backed off 1 s × [0.5, 1.5]: ${wait} s`);
    let m = await messageRow(sql, id);
    assert.deepEqual([m.status, m.attempts, m.last_error_code], ["scheduled", 1, 21611]);
    assert.equal(await failedAsMember(sql, w, id), undefined, "not failed yet");

    m = await untilStatus(sql, id, "failed", () => queueAndDispatch(sql));
    assert.equal(m.attempts, 2);
    assert.deepEqual((await reasons(sql, id)).filter((r) => r !== "-" && r !== "created"), ["retry_backoff", "max_attempts"]);
    const f = await failedAsMember(sql, w, id);
    assert.equal(f.last_error_code, 21611);
    assert.equal(f.last_error, f.what_to_do, "failed_messages says what a person can do");
    assert.match(f.last_error, /mps/);
    assert.deepEqual(await createRequests("+15005550015", t0), ["400/21611", "400/21611"]);

    // Delivery stage: Twilio takes it, then fails it 30001 by callback.
    const body = `queue overflow ${crypto.randomUUID()}`;
    const original = await schedule(sql, w, "+15005550016", body, 2);
    await queueAndDispatch(sql);
    const retryId = await until<string>("the callback to fail it and send it again", async () => {
      const [r] = await sql`select id::text from messages where retry_of = ${original}`;
      return r?.id as string | undefined;
    });
    const o = await messageRow(sql, original);
    assert.deepEqual([o.status, o.attempts, o.last_error_code], ["failed", 1, 30001], "the message stays failed, as Twilio said");
    const of = await failedAsMember(sql, w, original);
    assert.equal(of.last_error, of.what_to_do);
    let r = await messageRow(sql, retryId);
    assert.deepEqual([r.status, r.max_attempts, r.retry_of], ["scheduled", 1, original], "the resend has the one attempt left");
    assert.equal((await reasons(sql, retryId))[0], "retry_backoff_30001");

    r = await untilStatus(sql, retryId, "failed", () => queueAndDispatch(sql));
    assert.equal(r.last_error_code, 30001);
    const [{ n }] = await sql`select count(*)::int as n from messages where workspace_id = ${w.workspaceId} and contact_id =
                                (select contact_id from messages where id = ${original})`;
    assert.equal(n, 2, "no attempts left: nothing is sent a third time");
    assert.equal(await sandboxCopies(body), 2);
  },
);

classTest(
  "defer_next_day: 63038 waits for the workspace's next day without spending an attempt; a 30023 by callback is sent again then",
  async (sql) => {
    const t0 = Date.now();
    const w = await workspace(sql, "America/New_York");
    const id = await schedule(sql, w, "+15005550017", `daily limit ${crypto.randomUUID()}`);

    const summary = await queueAndDispatch(sql);
    assert.ok(summary.retried >= 1, JSON.stringify(summary));
    const m = await messageRow(sql, id);
    assert.deepEqual([m.status, m.attempts, m.last_error_code], ["scheduled", 1, 63038]);
    assert.deepEqual(await attemptRows(sql, id), [{ attempt_no: 1, spent: false, provider_status: "error", error_code: 63038 }]);
    // The start of the next New York day after the deferral, spread over its first half hour.
    const [d] = await sql`select e.reason, m.send_at = herald.next_local_day(e.at, 'America/New_York') + herald.spread(m.id, '30 minutes') as next_day,
                                 (m.send_at at time zone 'America/New_York')::time < '00:30' as early
                          from messages m join message_events e on e.message_id = m.id
                          where m.id = ${id} order by e.id desc limit 1`;
    assert.deepEqual({ ...d }, { reason: "defer_next_day_63038", next_day: true, early: true });
    const [q] = await sql`select herald.queue_due_messages() as r`;
    assert.equal((await messageRow(sql, id)).status, "scheduled", `not queued again today: ${JSON.stringify(q.r)}`);
    assert.equal(await failedAsMember(sql, w, id), undefined, "not failed");
    assert.deepEqual(await createRequests("+15005550017", t0), ["429/63038"]);

    // Delivery stage: accepted, then failed 30023 (a 10DLC daily cap) by callback.
    const original = await schedule(sql, w, "+15005550021", `carrier cap ${crypto.randomUUID()}`);
    await queueAndDispatch(sql);
    const retryId = await until<string>("the callback to fail it and schedule it again", async () => {
      const [r] = await sql`select id::text from messages where retry_of = ${original}`;
      return r?.id as string | undefined;
    });
    const o = await messageRow(sql, original);
    assert.deepEqual([o.status, o.last_error_code], ["failed", 30023]);
    assert.deepEqual((await attemptRows(sql, original)).map((a) => a.spent), [false], "the attempt is not spent");
    const [r] = await sql`select r.status::text, r.max_attempts, e.reason,
                                 r.send_at = herald.next_local_day(e.at, 'America/New_York') + herald.spread(o.id, '30 minutes') as next_day
                          from messages r join messages o on o.id = r.retry_of
                          join message_events e on e.message_id = r.id and e.from_status is null where r.id = ${retryId}`;
    assert.deepEqual({ ...r }, { status: "scheduled", max_attempts: 3, reason: "defer_next_day_30023", next_day: true },
      "sent again on the next day, with every attempt");
  },
);

classTest(
  "permanent: refused (21211, 21408, 21612, 21614, 21610) or undelivered by callback (30003, 30005-30007): failed at once, with what to do",
  async (sql) => {
    const w = await workspace(sql);
    const cases = [
      { to: "+15005550001", code: 21211, status: "failed" },
      { to: "+15005550003", code: 21408, status: "failed" },
      { to: "+15005550002", code: 21612, status: "failed" },
      { to: "+15005550009", code: 21614, status: "failed" },
      { to: "+15005550004", code: 21610, status: "failed" },
      { to: "+15005550010", code: 30003, status: "undelivered" },
      { to: "+15005550018", code: 30005, status: "undelivered" },
      { to: "+15005550019", code: 30006, status: "undelivered" },
      { to: "+15005550020", code: 30007, status: "undelivered" },
    ];
    const ids = new Map<number, string>();
    for (const c of cases) ids.set(c.code, await schedule(sql, w, c.to, `permanent ${c.code} ${crypto.randomUUID()}`));

    const summary = await queueAndDispatch(sql);
    assert.ok(summary.failed >= 5, `the five refusals fail at once: ${JSON.stringify(summary)}`);
    await waitFor("the callbacks of the other four", async () => {
      const [{ n }] = await sql`select count(*)::int as n from messages where workspace_id = ${w.workspaceId} and status = 'undelivered'`;
      return n === 4;
    });
    for (const c of cases) {
      const id = ids.get(c.code)!;
      const f = await failedAsMember(sql, w, id);
      assert.deepEqual([f.status, f.attempts, f.last_error_code], [c.status, 1, c.code], String(c.code));
      assert.ok(f.what_to_do && f.last_error === f.what_to_do, `${c.code}: failed_messages says ${f.last_error}`);
      const failedBy = (await reasons(sql, id)).at(-1);
      assert.equal(failedBy, c.status === "failed" ? `provider_error_${c.code}` : `provider_undelivered_${c.code}`);
    }
    const [{ n: resent }] = await sql`select count(*)::int as n from messages where workspace_id = ${w.workspaceId} and retry_of is not null`;
    assert.equal(resent, 0, "nothing permanent is sent again");

    // 21610: the recipient unsubscribed at Twilio: opted out, suppressed, and a consent record says so.
    const unsub = ids.get(21610)!;
    const [c] = await sql`select c.id, c.opted_out_at is not null as opted_out, s.reason as suppressed
                          from contacts c
                          left join suppressions s on s.workspace_id = c.workspace_id and s.phone_hash = herald.phone_hash(c.workspace_id, c.phone)
                          where c.workspace_id = ${w.workspaceId} and c.phone = '+15005550004'`;
    assert.deepEqual([c.opted_out, c.suppressed], [true, "provider_unsubscribed"]);
    const consents = await asUser(sql, w.owner, (tx) =>
      tx`select channel::text, status::text, source::text, proof from consents where contact_id = ${c.id}`);
    assert.deepEqual(consents.map((k) => ({ ...k })), [
      { channel: "sms", status: "opted_out", source: "provider", proof: `Twilio error 21610 answering message ${unsub}, attempt 1` },
    ]);
  },
);

classTest(
  "unknown: Twilio takes the message but its answer is lost; it is looked up, never sent again, and delivered",
  async (sql) => {
    const t0 = Date.now();
    const w = await workspace(sql);
    const body = `answer lost ${crypto.randomUUID()}`;
    const id = await schedule(sql, w, "+15005550022", body);

    const summary = await queueAndDispatch(sql);
    assert.equal(summary.unknown, 1, JSON.stringify(summary));
    let m = await messageRow(sql, id);
    assert.deepEqual([m.status, m.provider_check_required, m.attempts, m.provider_sid], ["sending", true, 1, null],
      "not called transient: kept in sending, flagged for the look-up");
    assert.deepEqual((await attemptRows(sql, id)).map((a) => [a.provider_status, a.spent]), [["unknown", true]]);
    assert.equal((await reasons(sql, id)).at(-1), "unknown_outcome");

    // The retry delay (1 s × [0.5, 1.5]) passes; the reaper (pg_cron) hands it to the look-up.
    await waitFor("the lease to run out", async () => {
      const [{ reaped }] = await sql`select herald.reap_expired_leases() > 0 or exists (
                                       select 1 from messages where id = ${id} and status = 'queued') as reaped`;
      return reaped;
    });
    const again: Record<string, number> = await dispatchOnce();
    assert.ok(again.reconciled >= 1, JSON.stringify(again));
    m = await untilStatus(sql, id, "delivered");
    const atTwilio = (await sandboxRecord()).messages.filter((x) => x.body === body);
    assert.equal(atTwilio.length, 1);
    assert.equal(m.provider_sid, atTwilio[0].sid, "Herald's record is the message Twilio has");
    assert.deepEqual(await createRequests("+15005550022", t0), ["201/-"], "one create request: nothing sent twice");
  },
);
