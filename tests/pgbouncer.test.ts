import assert from "node:assert/strict";
import postgres from "postgres";
import { ROOT } from "@herald/scripts/lib/config.ts";
import { PgBouncer } from "@herald/scripts/lib/pgbouncer.ts";
import { firstFreePort } from "@herald/scripts/lib/proc.ts";
import { type FunctionsServer, startFunctionsServer } from "@herald/scripts/lib/stack.ts";
import { connection } from "@herald/shared/db.ts";
import {
  asUser,
  callFunction,
  connect,
  messageSid,
  phone,
  postTwilioWebhook,
  senderPhone,
  sendingWorkspace,
  stack,
  waitFor,
} from "./support.ts";

// The functions as a hosted project runs them: connected through a transaction pooler. A
// PgBouncer in transaction mode stands in for Supavisor (port 6543), with fewer server connections
// than the functions' pool has clients, so consecutive transactions of one client land on different
// server connections. The functions get HERALD_DB_URL pointing at it, and a SUPABASE_DB_URL where
// nothing listens: whatever works below went through the pooler.

Deno.test("connection(): named prepared statements only where the URL is not a transaction pooler", () => {
  assert.deepEqual(connection("postgresql://postgres:pw@db.ref.supabase.co:5432/postgres"), {
    url: "postgresql://postgres:pw@db.ref.supabase.co:5432/postgres",
    prepare: true,
  });
  assert.equal(connection("postgresql://postgres.ref:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres").prepare, false);
  assert.deepEqual(connection("postgresql://postgres:pw@127.0.0.1:6432/postgres?pgbouncer=true&sslmode=require"), {
    url: "postgresql://postgres:pw@127.0.0.1:6432/postgres?sslmode=require",
    prepare: false,
  }, "the marker is not a server setting: it is taken off the URL");
  assert.equal(connection("postgresql://postgres:pw@127.0.0.1:6432/postgres?pgbouncer=false").prepare, true);
});

/**
 * Runs one query in a few transactions in a row from one client, after making sure the pool has
 * both its server connections (`b` holds one in a transaction while `a` takes the other): the
 * pooler hands them out in turn, so the second transaction runs where the first prepared nothing.
 * (Outside a transaction postgres.js would re-prepare and retry; inside one the error has already
 * aborted it, as it would the functions' work.)
 */
async function oneQueryInSuccessiveTransactions(url: string, options: postgres.Options<Record<string, never>>) {
  const a = postgres(url, { ...options, max: 1, onnotice: () => {} });
  const b = postgres(url, { ...options, max: 1, onnotice: () => {} });
  try {
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    let holding!: () => void;
    const isHolding = new Promise<void>((r) => holding = r);
    const tx = b.begin(async (t) => {
      await t`select 1`;
      holding();
      await held;
    });
    await isHolding;
    await a`select 1`;
    release();
    await tx;
    for (let i = 0; i < 4; i++) await a.begin((t) => t`select ${i}::int as i`);
  } finally {
    await Promise.all([a.end(), b.end()]);
  }
}

Deno.test("through a transaction-mode PgBouncer: user RPC, export, webhook and dispatch", async (t) => {
  const serverPort = Number(new URL(stack.dbUrl).port);
  const bouncer = new PgBouncer({
    dir: `/var/tmp/herald/test-${Deno.pid}-pgbouncer`,
    port: await firstFreePort(54450),
    serverPort,
    poolSize: 2,
  });
  await bouncer.start();
  const sql = connect();
  let server: FunctionsServer | undefined;
  try {
    await t.step("the pooler really pools by transaction: a named prepared statement goes missing", async () => {
      await assert.rejects(oneQueryInSuccessiveTransactions(bouncer.url, { prepare: true }), /prepared statement .* does not exist/);
      const { url, prepare } = connection(`${bouncer.url}?pgbouncer=true`);
      await oneQueryInSuccessiveTransactions(url, { prepare }); // with the functions' own options it works

    });

    const port = await firstFreePort(54460);
    const functionsUrl = `http://127.0.0.1:${port}/functions/v1`;
    const unreachable = `postgresql://postgres:postgres@127.0.0.1:${await firstFreePort(54470)}/postgres`;
    server = await startFunctionsServer(port, {
      ...Deno.env.toObject(),
      HERALD_DB_URL: `${bouncer.url}?pgbouncer=true`,
      SUPABASE_DB_URL: unreachable,
      HERALD_DB_POOL_SIZE: "5",
      HERALD_FUNCTIONS_URL: functionsUrl,
    }, `${ROOT}/.local/test-functions-pgbouncer.log`);

    const { owner, workspaceId, senderId } = await sendingWorkspace(sql);

    await t.step("delete-contact: the RPC runs as the user, in one pooled transaction", async () => {
      const [{ id }] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${phone()}) returning id::text`;
      const res = await callFunction("delete-contact", { token: owner.token, body: { contact_id: id }, functionsUrl });
      assert.equal(res.status, 200, res.text);
      const [row] = await sql`select deleted_at from contacts where id = ${id}`;
      assert.notEqual(row.deleted_at, null);
    });

    await t.step("export-queue: a cursor streamed across fetches inside one pooled transaction", async () => {
      const [{ id: contactId }] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${phone()}) returning id::text`;
      const sendAt = new Date(Date.now() + 24 * 3600_000).toISOString();
      await sql`insert into messages (workspace_id, contact_id, sender_id, channel, body, send_at)
                select ${workspaceId}, ${contactId}, ${senderId}, 'sms', 'row ' || n, ${sendAt}::timestamptz
                from generate_series(1, 450) n`;
      const res = await callFunction("export-queue", { token: owner.token, functionsUrl });
      assert.equal(res.status, 200, res.text);
      const lines = res.text.trimEnd().split("\r\n");
      assert.equal(lines.length, 1 + 450, "the header and every row, over three 200-row fetches");
    });

    await t.step("twilio-inbound: a signed STOP opts the contact out", async () => {
      const number = senderPhone();
      await sql`update senders set phone_number = ${number} where id = ${senderId}`;
      const from = phone();
      const [{ id }] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${from}) returning id::text`;
      const sid = messageSid();
      const res = await postTwilioWebhook("twilio-inbound", {
        MessageSid: sid,
        AccountSid: Deno.env.get("TWILIO_ACCOUNT_SID")!,
        From: from,
        To: number,
        Body: "STOP",
      }, { functionsUrl });
      assert.equal(res.status, 200, res.text);
      const [row] = await sql`select opted_out_at from contacts where id = ${id}`;
      assert.notEqual(row.opted_out_at, null);
    });

    await t.step("dispatch: claims, sends to the sandbox, and the signed callbacks come back through the pooler", async () => {
      await sql`update senders set phone_number = '+15005550006' where id = ${senderId}`;
      const [{ id: contactId }] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${phone()}) returning id::text`;
      const messageId = await asUser(sql, owner, async (tx) => {
        const [r] = await tx`select public.schedule_message(${contactId}::uuid, 'through the pooler', category => 'transactional')::text as id`;
        return r.id as string;
      });
      await waitFor("the message to be delivered", async () => {
        await sql`select herald.queue_due_messages()`;
        const res = await callFunction("dispatch", { token: stack.serviceRoleKey, body: { limit: 200 }, functionsUrl });
        assert.equal(res.status, 200, res.text);
        const [m] = await sql`select status from messages where id = ${messageId}`;
        return m.status === "delivered";
      }, 30_000);
    });

    await t.step("a user call is cut short by the authenticated role's statement_timeout", async () => {
      const [{ id }] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${phone()}) returning id::text`;
      const [before] = await sql`select coalesce((select c from pg_roles r, unnest(r.rolconfig) c
                                  where r.rolname = 'authenticated' and c like 'statement_timeout=%'), '') as setting`;
      const locker = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
      try {
        await sql`alter role authenticated set statement_timeout = '400ms'`;
        // Another transaction holds the contact's row: delete_contact waits for it until the
        // role's timeout cancels it. Without the role's setting it would wait for the lock.
        const res = await locker.begin(async (tx) => {
          await tx`select 1 from contacts where id = ${id} for update`;
          const started = performance.now();
          // Bounded: were the role's timeout not applied, the call would wait as long as the lock is held.
          const r = await callFunction("delete-contact", {
            token: owner.token,
            body: { contact_id: id },
            functionsUrl,
            signal: AbortSignal.timeout(10_000),
          });
          return { ...r, ms: performance.now() - started };
        });
        assert.equal(res.status, 503, res.text);
        assert.equal((res.body as { error: { code: string } }).error.code, "statement_timeout");
        assert.ok(res.ms >= 350 && res.ms < 5_000, `cut after ${res.ms.toFixed(0)} ms`);
      } finally {
        if (before.setting) await sql.unsafe(`alter role authenticated set ${before.setting.replace("=", " = '")}'`);
        else await sql`alter role authenticated reset statement_timeout`;
        await locker.end();
      }
      const [row] = await sql`select deleted_at from contacts where id = ${id}`;
      assert.equal(row.deleted_at, null, "the cancelled call changed nothing");
      const res = await callFunction("delete-contact", { token: owner.token, body: { contact_id: id }, functionsUrl });
      assert.equal(res.status, 200, "with the lock gone the same call succeeds");
    });

    await t.step("the functions' connections are PgBouncer's clients", async () => {
      const clients = await bouncer.admin("show clients");
      assert.ok(clients.some((c) => c.database === "postgres" && c.user === "postgres"), JSON.stringify(clients));
      const pools = await bouncer.admin("show pools");
      assert.ok(pools.some((p) => p.database === "postgres" && p.pool_mode === "transaction"), JSON.stringify(pools));
    });
  } catch (err) {
    if (server) console.error(`functions log (${server.logFile}) and pgbouncer log:\n${await bouncer.logTail()}`);
    throw err;
  } finally {
    await server?.stop();
    await sql.end();
    await bouncer.destroy();
  }
});
