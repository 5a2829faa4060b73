// Fault scenarios: the served pipeline (dispatch over HTTP, the Twilio sandbox, signed callbacks)
// put through the failures a job queue is tested against, each scenario counted against the
// sandbox's own record:
//
//   sent               messages the provider accepted
//   sent twice         messages it accepted more than once
//   lost               messages Herald holds a provider sid for that the provider does not have
//   stuck              messages still scheduled, queued or sending when recovery gave up
//   ledger mismatches  a status other than the provider's (delivered there, sent here…), a
//                      message the provider has that Herald says was never sent (a deleted
//                      contact's included), or a ledger whose events do not chain to the status
//   recovery           from the end of the fault until every message is settled and agrees
//
// During recovery pg_cron's functions run every second (queue_due_messages, reap_expired_leases
// and select_status_checks with a 5 s age: every minute and 10 minutes in production), with a
// dispatch call after each round. Each scenario has a workspace of its own, resets the sandbox,
// and pauses its workspace at the end, so no later one claims what it left.

import postgres from "postgres";
import type { Cluster } from "@herald/scripts/lib/cluster.ts";
import { firstFreePort } from "@herald/scripts/lib/proc.ts";
import { type FunctionsServer, localKeys, Stack, startFunctionsServer } from "@herald/scripts/lib/stack.ts";
import { type Line, type Sql, type Suite, type SuiteContext, type TimingLine } from "./lib.ts";
import {
  type BenchServices,
  logTail,
  pool,
  postCallback,
  sandboxReset,
  sandboxSnapshot,
  signedStatusCallback,
  startBenchServices,
} from "./services.ts";

const MEMBER = { userId: "00000000-0000-4000-8000-00000000fa17", email: "bench-faults@herald.local" };
const RECONCILE_AFTER = "5 seconds";
const RECOVERY_LIMIT_MS = 240_000;
const TARGET_RECOVERY_MS = 120_000;

interface Counts {
  messages: number;
  sent: number;
  twice: number;
  lost: number;
  stuck: number;
  mismatches: number;
}

interface Outcome extends Counts {
  /** null: not recovered within RECOVERY_LIMIT_MS. */
  recoveryMs: number | null;
  note?: string;
}

interface Harness {
  sql: Sql;
  cluster: Cluster;
  services: BenchServices;
  /** The functions server Twilio calls back (and dispatch is called on), as it is now. */
  functionsUrl: string;
  log: (s: string) => void;
  killFunctions(): Promise<void>;
  startFunctions(env?: Record<string, string>): Promise<FunctionsServer>;
}

interface Workspace {
  id: string;
  phones: string[];
  /** Numbers whose contact was deleted during the fault: nothing may reach them. */
  deleted: Set<string>;
}

/** A workspace with a default sender at `mps`, no quiet hours, and one message to each of `n` new numbers. */
async function loadWorkspace(h: Harness, label: string, n: number, opts: { mps: number; retryBaseSeconds: number; to?: string }) {
  return await h.sql.begin(async (tx) => {
    const [{ id }] = await tx`
      insert into public.workspaces (name, quiet_hours_start, quiet_hours_end, retry_base_seconds)
      values (${"bench faults: " + label}, '00:00', '00:00', ${opts.retryBaseSeconds}) returning id::text`;
    await tx`insert into public.workspace_members (workspace_id, user_id, role) values (${id}, ${MEMBER.userId}, 'owner')`;
    const tag = parseInt(id.replaceAll("-", "").slice(0, 5), 16) % 90_000 + 10_000;
    await tx`insert into public.senders (workspace_id, channel, phone_number, status, mps, is_default)
             values (${id}, 'sms', ${"+1555" + tag + "00"}, 'connected', ${opts.mps}, true)`;
    const phones = opts.to ? [opts.to] : Array.from({ length: n }, (_, i) => `+1416${tag}${String(i).padStart(4, "0")}`);
    await tx`insert into public.contacts (workspace_id, phone) select ${id}, p from unnest(${phones}::text[]) p`;
    await tx`
      insert into public.messages (workspace_id, contact_id, channel, body, send_at, status, category)
      select ${id}, c.id, 'sms', 'Fault drill ' || g, now() - interval '1 minute' + g * interval '1 millisecond', 'queued', 'transactional'
      from generate_series(1, ${n}::int) g
      join public.contacts c on c.workspace_id = ${id} and c.phone = (${phones}::text[])[1 + (g - 1) % ${phones.length}::int]`;
    return { id, phones, deleted: new Set<string>() } as Workspace;
  });
}

async function dispatch(h: Harness, limit = 200, functionsUrl = h.functionsUrl): Promise<Record<string, number> | null> {
  try {
    const res = await fetch(`${functionsUrl}/dispatch`, {
      method: "POST",
      headers: { authorization: `Bearer ${h.services.keys.serviceRole}`, "content-type": "application/json" },
      body: JSON.stringify({ limit }),
    });
    const text = await res.text();
    return res.status === 200 ? JSON.parse(text) : null;
  } catch {
    return null; // the server is down: that is the fault
  }
}

/** One round of what pg_cron runs, then a dispatch call. Errors (a database restarting) wait for the next round. */
async function cronRound(h: Harness) {
  try {
    await h.sql`select herald.queue_due_messages()`;
    await h.sql`select herald.reap_expired_leases()`;
    await h.sql`select herald.select_status_checks(${RECONCILE_AFTER}::interval)`;
  } catch { /* next round */ }
  await dispatch(h);
}

/** Polls `check` until it holds or `timeoutMs` passes. */
async function until(check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function attemptsWithSid(h: Harness, ws: Workspace): Promise<number> {
  const [{ n }] = await h.sql`select count(*)::int as n from public.message_attempts where workspace_id = ${ws.id} and provider_sid is not null`;
  return n;
}

/** Herald's record of the workspace's messages (one per number) against the sandbox's. */
async function measure(h: Harness, ws: Workspace): Promise<Counts> {
  const snap = await sandboxSnapshot(h.services);
  const ours = new Set(ws.phones);
  const accepted = new Map<string, number>();
  for (const r of snap.create_requests) {
    if (r.to && ours.has(r.to) && r.http_status === 201) accepted.set(r.to, (accepted.get(r.to) ?? 0) + 1);
  }
  const atProvider = new Map(snap.messages.filter((m) => ours.has(m.to)).map((m) => [m.sid, m.status]));
  const rows = await h.sql<{ phone: string; status: string; provider_sid: string | null; chained: boolean }[]>`
    select c.phone, m.status::text, m.provider_sid,
           coalesce((select bool_and(e.from_status is not distinct from e.prev) and (array_agg(e.to_status order by e.id desc))[1] = m.status
                     from (select x.id, x.from_status, x.to_status, lag(x.to_status) over (order by x.id) as prev
                           from public.message_events x where x.message_id = m.id) e), false) as chained
    from public.messages m join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
    where m.workspace_id = ${ws.id}`;
  const byPhone = new Map(rows.map((r) => [r.phone, r]));
  let lost = 0, stuck = 0, mismatches = 0;
  for (const r of rows) {
    if (["scheduled", "queued", "sending"].includes(r.status)) stuck++;
    if (!r.chained) mismatches++;
    if (r.provider_sid !== null) {
      const there = atProvider.get(r.provider_sid);
      if (there === undefined) lost++;
      else if (["sent", "delivered", "undelivered", "failed"].includes(there) && there !== r.status) mismatches++;
    } else if ((accepted.get(r.phone) ?? 0) > 0) {
      mismatches++; // the provider has it; Herald says it never went
    }
  }
  // A hard-deleted contact's message is gone from Herald: the provider must not have it either.
  for (const phone of ws.deleted) if (!byPhone.has(phone) && (accepted.get(phone) ?? 0) > 0) mismatches++;
  return {
    messages: ws.phones.length,
    sent: accepted.size,
    twice: [...accepted.values()].filter((n) => n > 1).length,
    lost,
    stuck,
    mismatches,
  };
}

/**
 * Cron and dispatch until every message is settled and agrees with the provider; then the
 * workspace is paused, so no later scenario claims what this one left.
 */
async function recover(h: Harness, ws: Workspace, measureFn: () => Promise<Counts> = () => measure(h, ws)): Promise<Outcome> {
  const t0 = Date.now();
  let counts = await measureFn();
  let recoveryMs: number | null = null;
  for (;;) {
    if (counts.stuck + counts.mismatches + counts.lost === 0) {
      recoveryMs = Date.now() - t0;
      break;
    }
    if (Date.now() - t0 > RECOVERY_LIMIT_MS) break;
    await cronRound(h);
    await new Promise((r) => setTimeout(r, 1000));
    counts = await measureFn().catch(() => counts);
  }
  await h.sql`update public.workspaces set automation_enabled = false where id = ${ws.id}`;
  return { ...counts, recoveryMs };
}

/** 200 messages on a 50-mps sender, and a dispatch call under way until `sent` of them are at the provider. */
async function dispatchUnderWay(h: Harness, label: string, sent: number) {
  const ws = await loadWorkspace(h, label, 200, { mps: 50, retryBaseSeconds: 10 });
  const first = dispatch(h);
  await until(async () => (await attemptsWithSid(h, ws)) >= sent, 30_000);
  return { ws, first };
}

// ---- the scenarios -------------------------------------------------------------------------------

interface Scenario {
  name: string;
  run(h: Harness): Promise<Outcome>;
}

const stalledProvider: Scenario = {
  name: "provider stalled 20 s mid-dispatch (SIGSTOP), 4 contacts deleted meanwhile",
  async run(h) {
    const { ws, first } = await dispatchUnderWay(h, "stall", 40);
    Deno.kill(h.services.sandboxPid, "SIGSTOP");
    const stalledAt = Date.now();
    try {
      // Once every worker hangs on the provider, delete contacts whose message still waits its turn.
      let confirmed = -1;
      await until(async () => {
        const [{ n }] = await h.sql`select count(*)::int as n from public.message_attempts where workspace_id = ${ws.id} and confirmed_at is not null`;
        const settled = n === confirmed;
        confirmed = n;
        return settled;
      }, 15_000, 500);
      const waiting = await h.sql<{ id: string; phone: string }[]>`
        select c.id::text, c.phone from public.messages m
        join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
        left join public.message_attempts a on a.message_id = m.id and a.attempt_no = m.attempts
        where m.workspace_id = ${ws.id} and a.confirmed_at is null
        order by m.send_at desc, m.id desc limit 4`;
      for (const [i, w] of waiting.entries()) {
        await h.sql.begin(async (tx) => {
          await tx.unsafe("set local role authenticated");
          await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: MEMBER.userId, role: "authenticated" })}, true)`;
          await tx`select public.delete_contact(${w.id}::uuid, ${i === 0})`;
        });
        ws.deleted.add(w.phone);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, 20_000 - (Date.now() - stalledAt))));
    } finally {
      Deno.kill(h.services.sandboxPid, "SIGCONT");
    }
    const summary = await first;
    const outcome = await recover(h, ws);
    return { ...outcome, note: `first dispatch call: ${summary?.unknown ?? "?"} calls with no answer, looked up before any resend` };
  },
};

const lostCallbacks: Scenario = {
  name: "status callbacks lost (the functions server Twilio calls back is down)",
  async run(h) {
    const ws = await loadWorkspace(h, "callbacks", 100, { mps: 100, retryBaseSeconds: 10 });
    // Another server sends meanwhile, naming the stopped one in its StatusCallback.
    await h.killFunctions();
    const port = await firstFreePort(Number(new URL(h.functionsUrl).port) + 1);
    const sender = await h.startFunctions({ FUNCTIONS_PORT: String(port), HERALD_FUNCTIONS_URL: h.functionsUrl });
    try {
      await dispatch(h, 200, sender.url);
      // Twilio delivers and gives up on every callback.
      await until(async () => {
        const snap = await sandboxSnapshot(h.services);
        const ours = snap.messages.filter((m) => ws.phones.includes(m.to));
        return ours.length === 100 && ours.every((m) => m.status === "delivered");
      }, 60_000, 250);
      await new Promise((r) => setTimeout(r, 1000)); // its callback retries run out
    } finally {
      await sender.stop();
    }
    await h.startFunctions();
    const outcome = await recover(h, ws);
    return outcome;
  },
};

const killedFunctions: Scenario = {
  name: "functions server killed mid-batch (SIGKILL), restarted",
  async run(h) {
    const { ws, first } = await dispatchUnderWay(h, "killed", 60);
    await h.killFunctions();
    await first;
    await h.startFunctions();
    const outcome = await recover(h, ws);
    return { ...outcome, note: "its claims come back when their leases expire (60 s), each looked up first" };
  },
};

const alwaysFailing: Scenario = {
  name: "300 sends to a number that always answers 500",
  async run(h) {
    const ws = await loadWorkspace(h, "500", 300, { mps: 100, retryBaseSeconds: 1, to: "+15005550013" });
    const maxAttempts = 3;
    await h.sql`update public.messages set max_attempts = ${maxAttempts} where workspace_id = ${ws.id}`;
    const t0 = Date.now();
    // One number, many messages: counted by calls rather than by number.
    const measure500 = async (): Promise<Counts> => {
      const snap = await sandboxSnapshot(h.services);
      const calls = snap.create_requests.filter((r) => r.to === "+15005550013");
      const [r] = await h.sql`
        select count(*) filter (where status in ('scheduled', 'queued', 'sending'))::int as stuck,
               count(*) filter (where status = 'failed' and attempts <> ${maxAttempts})::int as short,
               count(*) filter (where provider_sid is not null)::int as with_sid
        from public.messages where workspace_id = ${ws.id}`;
      const settled = r.stuck === 0;
      return {
        messages: 300,
        sent: calls.filter((c) => c.http_status === 201).length,
        twice: 0,
        lost: r.with_sid,
        stuck: r.stuck,
        // Settled, every message has made exactly its max_attempts calls, no more.
        mismatches: r.short + (settled && calls.length !== 300 * maxAttempts ? Math.abs(calls.length - 300 * maxAttempts) : 0),
      };
    };
    const outcome = await recover(h, ws, measure500);
    return { ...outcome, recoveryMs: outcome.recoveryMs === null ? null : Date.now() - t0, note: `each failed after ${maxAttempts} calls` };
  },
};

const callbackStorm: Scenario = {
  name: "5,000 shuffled and duplicated signed callbacks on 500 messages",
  async run(h) {
    const ws = await loadWorkspace(h, "storm", 500, { mps: 1000, retryBaseSeconds: 10 });
    while (((await dispatch(h, 500))?.claimed ?? 0) > 0) { /* until all are sent */ }
    const sids = (await h.sql`select provider_sid from public.messages where workspace_id = ${ws.id} and provider_sid is not null`)
      .map((r) => r.provider_sid as string);
    const statuses = ["queued", "sent", "delivered", "sent", "delivered"];
    const storm = Array.from({ length: 5_000 }, (_, i) => signedStatusCallback(h.functionsUrl, sids[i % sids.length], statuses[i % statuses.length]));
    for (let i = storm.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [storm[i], storm[j]] = [storm[j], storm[i]];
    }
    let refused = 0;
    await pool(storm.length, 32, async (i) => {
      if ((await postCallback(h.functionsUrl, storm[i])) !== 200) refused++;
    });
    const outcome = await recover(h, ws);
    return { ...outcome, note: `${refused} of 5,000 storm callbacks refused` };
  },
};

const crashedDatabase: Scenario = {
  name: "PostgreSQL crashed mid-dispatch (immediate shutdown), restarted",
  async run(h) {
    const { ws, first } = await dispatchUnderWay(h, "db crash", 60);
    const cluster = h.cluster;
    const pid = Number((await Deno.readTextFile(`${cluster.dataDir}/postmaster.pid`)).split("\n")[0]);
    Deno.kill(pid, "SIGQUIT"); // what pg_ctl -m immediate sends: every backend gone, no checkpoint
    await until(async () => !(await cluster.postmasterAlive()), 30_000);
    await new Promise((r) => setTimeout(r, 2000));
    await cluster.start();
    await first;
    const outcome = await recover(h, ws);
    return { ...outcome, note: "answers lost with the database are found at the provider after the leases expire" };
  },
};

export const SCENARIOS: Scenario[] = [stalledProvider, lostCallbacks, killedFunctions, alwaysFailing, callbackStorm, crashedDatabase];

// ---- the suite -------------------------------------------------------------------------------------

function table(rows: { name: string; o: Outcome }[]): string[] {
  const header = ["scenario", "messages", "sent", "sent twice", "lost", "stuck", "ledger mismatches", "recovery"];
  const cells = rows.map(({ name, o }) => [
    name,
    String(o.messages),
    String(o.sent),
    String(o.twice),
    String(o.lost),
    String(o.stuck),
    String(o.mismatches),
    o.recoveryMs === null ? `not within ${RECOVERY_LIMIT_MS / 1000} s` : `${(o.recoveryMs / 1000).toFixed(1)} s`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [fmt(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(fmt)];
}

async function run(ctx: SuiteContext): Promise<Line[]> {
  const { cluster, log } = ctx;
  await cluster.sql`insert into auth.users (id, aud, role, email) values (${MEMBER.userId}, 'authenticated', 'authenticated', ${MEMBER.email})
                    on conflict (id) do nothing`;
  const services = await startBenchServices(cluster, log);
  const sql = postgres(cluster.url, { max: 4, onnotice: () => {} });
  const keys = await localKeys();
  const stack = new Stack(
    { db: cluster.stack.ports.db, functions: Number(new URL(services.functionsUrl).port), sandbox: Number(new URL(services.sandboxUrl).port) },
    cluster.stack.cluster.dataDir,
    true,
  );
  const env = { ...Deno.env.toObject(), ...stack.functionEnv(keys) };
  let functionsPid: number | null = services.functionsPid;
  let restarted: FunctionsServer | null = null;
  const h: Harness = {
    sql,
    cluster: cluster.stack.cluster,
    services,
    functionsUrl: services.functionsUrl,
    log,
    async killFunctions() {
      // SIGKILL: a SIGTERM would let the server finish the requests it is serving.
      const pid = restarted?.pid ?? functionsPid;
      if (pid !== null) Deno.kill(pid, "SIGKILL");
      await restarted?.stop(); // reaps it and closes its log
      restarted = null;
      functionsPid = null;
      // Down once nothing answers on its port.
      await until(async () => {
        const res = await fetch(`${services.functionsUrl}/health`).catch(() => null);
        await res?.body?.cancel();
        return res === null;
      }, 10_000);
    },
    async startFunctions(extra = {}) {
      const port = Number(extra.FUNCTIONS_PORT ?? stack.ports.functions);
      const server = await startFunctionsServer(port, { ...env, ...extra }, `/var/tmp/herald/bench-${Deno.pid}-faults-functions-${port}.log`);
      if (!extra.FUNCTIONS_PORT) restarted = server;
      return server;
    },
  };
  const rows: { name: string; o: Outcome }[] = [];
  const lines: Line[] = [];
  try {
    for (const scenario of SCENARIOS) {
      log(`faults: ${scenario.name}`);
      await sandboxReset(services);
      const t0 = Date.now();
      let o: Outcome;
      try {
        o = await scenario.run(h);
      } catch (err) {
        lines.push({ kind: "timing", label: scenario.name, samples: [], error: `${err instanceof Error ? err.message : err}\n${await logTail(services)}` });
        continue;
      }
      log(`faults: ${scenario.name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      rows.push({ name: scenario.name, o });
      const bad = [["sent twice", o.twice], ["lost", o.lost], ["stuck", o.stuck], ["ledger mismatches", o.mismatches]]
        .filter(([, n]) => Number(n) > 0).map(([what, n]) => `${n} ${what}`);
      const line: TimingLine = {
        kind: "timing",
        label: `${scenario.name}: recovery`,
        samples: o.recoveryMs === null ? [] : [o.recoveryMs],
        targetMs: TARGET_RECOVERY_MS,
        note: o.note,
      };
      if (bad.length || o.recoveryMs === null) line.error = bad.length ? bad.join(", ") : "not recovered";
      lines.push(line);
    }
  } finally {
    await sql.end({ timeout: 1 });
    await (restarted as FunctionsServer | null)?.stop();
    await services.stop();
  }
  console.log("\n== faults: per scenario (the sandbox's record is the witness)");
  for (const l of table(rows)) console.log(l);
  return lines;
}

export const faultsSuite: Suite = {
  name: "faults",
  title: "fault scenarios: sent, sent twice, lost, stuck, ledger mismatches, recovery time",
  run,
};
