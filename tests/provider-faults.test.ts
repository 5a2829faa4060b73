import assert from "node:assert/strict";
import { LOCAL_TWILIO, ROOT } from "@herald/scripts/lib/config.ts";
import { firstFreePort } from "@herald/scripts/lib/proc.ts";
import { type FunctionsServer, localKeys, type ServiceProcess, Stack, startFunctionsServer, stopServices } from "@herald/scripts/lib/stack.ts";
import { createTwilioClient } from "@herald/shared/twilio.ts";
import { recordedCreatesByTo } from "@herald/sandbox/testing.ts";
import { asUser, callFunction, connect, phone, sendingWorkspace, stack as testStack, waitFor } from "./support.ts";

// Over HTTP, with a Twilio sandbox and functions server of the test's own (so the sandbox can be
// stopped and the functions server taken away) against the test database, and the sandbox's
// record on disk as the witness of what reached "Twilio".

interface OwnServices {
  stack: Stack;
  services: ServiceProcess[];
  record: string;
  sandboxPid: number;
  stop(): Promise<void>;
}

async function ownServices(name: string): Promise<OwnServices> {
  const functions = await firstFreePort(54480);
  const sandbox = await firstFreePort(functions + 1);
  const stack = new Stack({ db: Number(new URL(testStack.dbUrl).port), functions, sandbox }, "/nonexistent: the test stack's cluster is not ours", true);
  const dir = await Deno.makeTempDir({ prefix: `herald-${name}-` });
  const record = `${dir}/messages.jsonl`;
  const services = await stack.startServices(await localKeys(), { sandboxRecord: record, logFile: `${ROOT}/.local/test-${name}-services.log` });
  const sandboxPid = services.find((s) => s.name === "sandbox")!.child.pid;
  return {
    stack,
    services,
    record,
    sandboxPid,
    async stop() {
      try {
        Deno.kill(sandboxPid, "SIGCONT");
      } catch { /* gone already */ }
      await stopServices(services);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function dispatch(functionsUrl: string, limit = 200) {
  const res = await callFunction("dispatch", { token: testStack.serviceRoleKey, body: { limit }, functionsUrl });
  if (res.status !== 200) throw new Error(`dispatch answered ${res.status}: ${res.text}`);
  return res.body as Record<string, number>;
}

Deno.test({
  name: "a provider stalled for 20 s mid-dispatch: every message reaches it exactly once, none to a contact deleted meanwhile",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    const own = await ownServices("stall");
    try {
      const functionsUrl = own.stack.urls.functions;
      const { owner, workspaceId } = await sendingWorkspace(sql, { mps: 50, retryBaseSeconds: 10 });
      const phones = Array.from({ length: 200 }, phone);
      const contacts = await sql<{ id: string; phone: string }[]>`
        insert into contacts (workspace_id, phone) select ${workspaceId}, p from unnest(${phones}::text[]) p returning id::text, phone`;
      await asUser(sql, owner, (tx) => tx`select count(public.schedule_message(c.id, 'Your code is ' || right(c.phone, 6), category => 'transactional'))
                                           from contacts c where c.workspace_id = ${workspaceId}`);
      await sql`select herald.queue_due_messages()`;

      const first = dispatch(functionsUrl);
      // Mid-dispatch: once some messages have gone out, the provider stalls.
      await waitFor("the first messages to reach the sandbox", async () => {
        const [{ n }] = await sql`select count(*)::int as n from message_attempts where workspace_id = ${workspaceId} and provider_sid is not null`;
        return n >= 40;
      }, 30_000);
      Deno.kill(own.sandboxPid, "SIGSTOP");
      const stalledAt = Date.now();

      // During the stall, once every dispatcher worker hangs on a call (until then they keep
      // taking their next message at its rate slot), contacts whose message is still waiting its
      // turn are deleted (three soft, one hard): none of them may get anything.
      let confirmed = -1;
      await waitFor("every worker to hang on the stalled provider", async () => {
        const [{ n }] = await sql`select count(*)::int as n from message_attempts where workspace_id = ${workspaceId} and confirmed_at is not null`;
        const settled = n === confirmed;
        confirmed = n;
        if (!settled) await new Promise((r) => setTimeout(r, 500));
        return settled;
      });
      const waiting = await sql<{ contact_id: string; phone: string }[]>`
        select m.contact_id::text, c.phone from messages m
        join contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
        left join message_attempts a on a.message_id = m.id and a.attempt_no = m.attempts
        where m.workspace_id = ${workspaceId} and a.confirmed_at is null
        order by m.send_at desc, m.id desc limit 4`;
      assert.equal(waiting.length, 4, "messages still waiting for their turn when the provider stalled");
      for (const [i, w] of waiting.entries()) {
        await asUser(sql, owner, (tx) => tx`select public.delete_contact(${w.contact_id}::uuid, ${i === 0})`);
      }
      const deleted = new Set(waiting.map((w) => w.phone));

      await new Promise((r) => setTimeout(r, 20_000 - (Date.now() - stalledAt)));
      Deno.kill(own.sandboxPid, "SIGCONT");
      const summary = await first;

      // What pg_cron and the dispatch schedule do, until nothing is pending.
      await waitFor("nothing pending", async () => {
        await sql`select herald.queue_due_messages()`;
        await sql`select herald.reap_expired_leases()`;
        await dispatch(functionsUrl);
        const [{ n }] = await sql`select count(*)::int as n from messages where workspace_id = ${workspaceId}
                                  and status in ('scheduled', 'queued', 'sending')`;
        return n === 0;
      }, 150_000);

      const creates = await recordedCreatesByTo(own.record);
      const counts = contacts.map((c) => creates.get(c.phone) ?? 0);
      const twice = contacts.filter((c) => (creates.get(c.phone) ?? 0) > 1).map((c) => c.phone);
      assert.deepEqual(twice, [], "no message reached the provider twice");
      assert.deepEqual(contacts.filter((c) => deleted.has(c.phone)).map((c) => creates.get(c.phone) ?? 0), [0, 0, 0, 0],
        "none reached a contact deleted during the stall");
      assert.equal(counts.filter((n) => n === 1).length, 196, "every other message reached it once");
      assert.ok(summary.unknown > 0, `calls with no answer were recorded as unknown: ${JSON.stringify(summary)}`);

      const rows = await sql<{ phone: string; status: string; cancel_reason: string | null; unknowns: number }[]>`
        select c.phone, m.status, m.cancel_reason,
               (select count(*)::int from message_events e where e.message_id = m.id and e.reason = 'unknown_outcome') as unknowns
        from messages m join contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
        where m.workspace_id = ${workspaceId}`;
      assert.equal(rows.length, 199, "the hard-deleted contact's message went with it");
      for (const r of rows) {
        if (deleted.has(r.phone)) assert.equal(`${r.status}:${r.cancel_reason}`, "cancelled:contact_deleted", r.phone);
        else assert.ok(["sent", "delivered"].includes(r.status), `${r.phone} is ${r.status}`);
      }
      assert.ok(rows.some((r) => r.unknowns > 0), "some went through the look-up after an unknown outcome");
      // Herald's record agrees with the provider's: the sid of each sent message is the one it has.
      const sandbox = createTwilioClient({ ...LOCAL_TWILIO, apiBase: own.stack.urls.sandbox });
      const atProvider = new Map((await sandbox.messages.list({ limit: 1000 })).map((m) => [m.to, m.sid]));
      const sids = await sql`select c.phone, m.provider_sid from messages m join contacts c on c.id = m.contact_id
                             where m.workspace_id = ${workspaceId} and m.provider_sid is not null`;
      assert.equal(sids.length, 196);
      for (const s of sids) assert.equal(s.provider_sid, atProvider.get(s.phone), s.phone);
    } finally {
      await own.stop();
      await sql.end();
    }
  },
});

Deno.test({
  name: "callbacks lost while the functions server was down: the reconciliation job brings the message to delivered",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    const own = await ownServices("lost-callbacks");
    let dispatcher: FunctionsServer | null = null;
    let restarted: FunctionsServer | null = null;
    try {
      const callbacksUrl = own.stack.urls.functions;
      const env = { ...Deno.env.toObject(), ...own.stack.functionEnv(await localKeys()) };
      // The functions server Twilio calls back goes down; another one sends meanwhile.
      await stopServices(own.services.filter((s) => s.name === "functions"));
      const port = await firstFreePort(own.stack.ports.sandbox + 1);
      dispatcher = await startFunctionsServer(port, { ...env, HERALD_FUNCTIONS_URL: callbacksUrl }, `${ROOT}/.local/test-lost-callbacks-dispatcher.log`);

      const { owner, workspaceId } = await sendingWorkspace(sql);
      const to = phone();
      const [c] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${to}) returning id::text`;
      const [{ id }] = await asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, 'Your table is ready', category => 'transactional')::text as id`);
      await sql`select herald.queue_due_messages()`;
      await dispatch(dispatcher.url);

      // Twilio delivers; its callbacks find nobody and it gives up on them.
      const sandbox = createTwilioClient({ ...LOCAL_TWILIO, apiBase: own.stack.urls.sandbox });
      const [{ status: sentStatus, provider_sid: sid }] = await sql`select status, provider_sid from messages where id = ${id}`;
      assert.equal(sentStatus, "sent");
      await waitFor("Twilio to deliver it and give up on its callbacks", async () => {
        const res = await fetch(`${own.stack.urls.sandbox}/_sandbox/messages`);
        const snap = await res.json() as {
          messages: { sid: string; status: string; callbacks: { status: string; delivered: boolean; attempts: number }[] }[];
        };
        const m = snap.messages.find((x) => x.sid === sid);
        return m?.status === "delivered" && m.callbacks.some((cb) => cb.status === "delivered") &&
          m.callbacks.every((cb) => !cb.delivered && cb.attempts === 4);
      });
      assert.equal((await sandbox.messages(sid).fetch()).status, "delivered");
      assert.equal((await sql`select status from messages where id = ${id}`)[0].status, "sent", "Herald never heard");

      // The functions server is back; the job runs (its age setting shortened to a second) and
      // the next dispatch call looks the status up.
      restarted = await startFunctionsServer(own.stack.ports.functions, env, `${ROOT}/.local/test-lost-callbacks-functions.log`);
      await new Promise((r) => setTimeout(r, 1100));
      const [{ due }] = await sql`select herald.select_status_checks('1 second') as due`;
      assert.ok(due >= 1, "the job selected the message");
      const summary = await dispatch(restarted.url);
      assert.ok(summary.statuses_checked >= 1 && summary.statuses_updated >= 1, JSON.stringify(summary));

      const [m] = await sql`select status, delivered_at from messages where id = ${id}`;
      assert.equal(m.status, "delivered");
      assert.notEqual(m.delivered_at, null);
      const [last] = await sql`select from_status, to_status, reason, actor from message_events where message_id = ${id} order by id desc limit 1`;
      assert.deepEqual({ ...last }, { from_status: "sent", to_status: "delivered", reason: "provider_delivered", actor: "reconciliation" });
      const [check] = await sql`select count(*)::int as n from herald.status_checks s join message_attempts a on a.id = s.attempt_id
                                where a.message_id = ${id}`;
      assert.equal(check.n, 0, "nothing left to check");
    } finally {
      await dispatcher?.stop();
      await restarted?.stop();
      await own.stop();
      await sql.end();
    }
  },
});
