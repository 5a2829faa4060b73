// Sending bench: claiming and queueing in SQL, and the served pipeline end to end —
// dispatch through the Twilio sandbox, signed status callbacks, and a sender's mps held over 30 s.
//
// Every case loads its own workspace, set-based as postgres (Herald's insert triggers run, so
// every message has its ledger row), runs `analyze` as autovacuum would after a bulk load, and
// afterwards fails whatever it left pending, so no case claims, reaps or walks past what an
// earlier one left behind. The end-to-end cases run against a sandbox and a functions server
// started for this suite on free ports (bench/services.ts) and stopped at the end.

import postgres from "postgres";
import {
  backendPid,
  formatMs,
  type Line,
  loadAverage,
  median,
  type Member,
  cpuBetween,
  schedstats,
  type Sql,
  type Suite,
  type SuiteContext,
  timeCase,
  timed,
  timedOnBackend,
  type TimingLine,
  walPosition,
  walSince,
} from "./lib.ts";
import { Http1Connection } from "@herald/sandbox/http1.ts";
import {
  type BenchServices,
  callbackRequest,
  clusterCpuMs,
  dispatch,
  logTail,
  machineCpuMs,
  pool,
  processCpuMs,
  sandboxReset,
  sandboxSnapshot,
  signedStatusCallback,
  startBenchServices,
} from "./services.ts";

const MEMBER: Member = { userId: "00000000-0000-4000-8000-00000000be41", email: "bench-sending@herald.local" };

export const CLAIM_MESSAGES = 100_000;
const CLAIM_CONTACTS = 1_000;
const CLAIM_SENDERS = 10;
export const CLAIM_BATCH = 500;
export const CLAIMERS = 4;
const TARGET_CLAIM_PER_S = 10_000;

const QUEUE_MESSAGES = 100_000;

const E2E_MESSAGES = 6_000;
const E2E_SENDERS = 4;
const E2E_PARALLEL = 4;
const E2E_LIMIT = 250;
const TARGET_E2E_PER_S = 300;
/** Every message delivered (its three status callbacks applied) keeps pace with the sending. */
const TARGET_DELIVERED_PER_S = 900;

const CALLBACKS = 5_000;
const CALLBACK_CONCURRENCY = 32;
/**
 * The same callbacks with twice as many requests outstanding, report only. At 32 a batch is at
 * most what 32 connections have in flight (~16 while the other half waits for its answers), and
 * the run is bound by that round trip, not by CPU: the machine sits ~30% idle.
 */
const CALLBACK_CONCURRENCY_WIDE = 64;
const TARGET_CALLBACKS_PER_S = 3_000;

const MPS = 50;
const MPS_WINDOW_S = 30;
const MPS_TOLERANCE = 0.05;
const MPS_PARALLEL = 2;
const MPS_LIMIT = 100;

interface Workspace {
  id: string;
  senders: { id: string; phone: string }[];
}

export async function loadMember(sql: Sql) {
  await sql`
    insert into auth.users (id, aud, role, email)
    values (${MEMBER.userId}, 'authenticated', 'authenticated', ${MEMBER.email})
    on conflict (id) do nothing`;
}

/**
 * A workspace with quiet hours off (start = end) and its contacts in an early-afternoon zone (the
 * wall clock of the run never defers, legal hours included), its
 * senders (the first is the default; distinct numbers per workspace so the sandbox's record can
 * be told apart), and `contacts` contacts on ordinary numbers (delivered by the sandbox).
 */
async function loadWorkspace(
  sql: Sql,
  label: string,
  opts: { contacts: number; senders: number; mps: number; quietStart?: string; quietEnd?: string },
): Promise<Workspace> {
  return await sql.begin(async (tx) => {
    const [{ id }] = await tx`
      insert into public.workspaces (name, quiet_hours_start, quiet_hours_end)
      values (${"bench: " + label}, ${opts.quietStart ?? "00:00"}::time, ${opts.quietEnd ?? "00:00"}::time)
      returning id::text`;
    await tx`insert into public.workspace_members (workspace_id, user_id, role) values (${id}, ${MEMBER.userId}, 'owner')`;
    // Sender numbers from the workspace id, so two workspaces never share one.
    const base = parseInt(id.replaceAll("-", "").slice(0, 6), 16) % 900_000 + 100_000;
    const senders = await tx`
      insert into public.senders (workspace_id, channel, phone_number, status, mps, is_default)
      select ${id}, 'sms', '+1555' || ${base}::int || lpad(g::text, 2, '0'), 'connected', ${opts.mps}, g = 1
      from generate_series(1, ${opts.senders}::int) g
      returning id::text, phone_number as phone`;
    // In a zone where it is early afternoon now: marketing keeps to the legal hours (8 a.m. to
    // 9 p.m. where the recipient is), and +1 415 numbers are in Los Angeles, where a run late in
    // the UTC day would find it night and defer everything.
    await tx`
      insert into public.contacts (workspace_id, phone, first_name, last_name, timezone)
      select ${id}, '+1415' || lpad(g::text, 7, '0'), 'Lead', g::text,
             (select z.name from pg_catalog.pg_timezone_names z
              where z.name ~ '^Etc/GMT[+-][0-9]+$' and extract(hour from now() at time zone z.name) between 12 and 14
              order by z.name limit 1)
      from generate_series(1, ${opts.contacts}::int) g`;
    return { id, senders: senders.map((s) => ({ id: s.id as string, phone: s.phone as string })) };
  });
}

/**
 * `n` messages of the workspace, spread round-robin over its contacts and senders and
 * interleaved in the heap as messages scheduled over time are, with `status` and send_at
 * `sendAt` + i ms (a SQL expression of now()); marketing unless `category` says otherwise.
 */
async function loadMessages(
  sql: Sql,
  ws: Workspace,
  n: number,
  status: "queued" | "scheduled",
  sendAt: string,
  tag: string,
  category: "marketing" | "transactional" = "marketing",
) {
  // Arrays, not a join on row numbers: a join on `g % n` is a nested loop (n × contacts).
  const insert = (from: number, to: number) =>
    sql.unsafe(
      `with c as (select array_agg(id order by phone) as ids from public.contacts where workspace_id = $1),
            s as (select array_agg(id order by phone_number) as ids from public.senders where workspace_id = $1)
       insert into public.messages (workspace_id, contact_id, sender_id, channel, body, send_at, status, category)
       select $1, c.ids[1 + g % cardinality(c.ids)], s.ids[1 + g % cardinality(s.ids)], 'sms', $2 || ' ' || g,
              ${sendAt} + g * interval '1 millisecond', $3::public.message_status, $6::public.message_category
       from c, s, generate_series($4::int, $5::int) g
       order by g`,
      [ws.id, tag, status, from, to, category],
    );
  await insert(1, n);
}

/** What autovacuum would have done after a bulk load: fresh statistics (and a visibility map). */
async function settle(sql: Sql) {
  await sql.unsafe(`vacuum analyze public.messages, public.message_events, public.message_attempts, public.contacts,
                    public.senders, public.workspaces, herald.sender_slots, public.provider_events`);
}

/**
 * Ends what a case left pending (failed, as postgres, on a connection of its own), so no later
 * case claims, reaps or walks past it.
 */
async function finish(url: string, ws: Workspace) {
  const c = postgres(url, { max: 1, onnotice: () => {}, connection: { enable_nestloop: "off" } });
  try {
    await c`update public.messages
            set status = 'failed', failed_at = now(), lease_expires_at = null, last_error = 'bench: left over'
            where workspace_id = ${ws.id} and status in ('scheduled', 'queued', 'sending')`;
  } finally {
    await c.end({ timeout: 1 });
  }
}

async function statusCounts(sql: Sql, ws: Workspace): Promise<Record<string, number>> {
  const rows = await sql`select status::text, count(*)::int as n from public.messages where workspace_id = ${ws.id} group by 1`;
  return Object.fromEntries(rows.map((r) => [r.status as string, r.n as number]));
}

function rate(n: number, ms: number): string {
  return `${Math.round(n / (ms / 1000)).toLocaleString("en-US")}/s`;
}

function verdict(ok: boolean): string {
  return ok ? "PASS" : "FAIL";
}

function errorLine(label: string, err: unknown, extra: Partial<TimingLine> = {}): TimingLine {
  return {
    kind: "timing",
    label,
    samples: [],
    error: err instanceof Error ? err.message.split("\n")[0] : String(err),
    ...extra,
  };
}

// ---- claim_messages ---------------------------------------------------------------------------

/** What a claimer needs of each claimed message to confirm and record it. */
export interface ClaimedMessage {
  message_id: string;
  attempt_no: number;
}

export interface ClaimRunOptions {
  /** Names the run's workspace ("claim" by default). */
  label?: string;
  /** Due messages loaded for the run (CLAIM_MESSAGES by default). */
  messages?: number;
  /**
   * What each claimer does with a batch on its own connection before claiming the next (the
   * pre-send confirmation and the recording, say); nothing by default: claims only.
   */
  work?: (c: Sql, batch: ClaimedMessage[]) => Promise<void>;
  /** The status every message must end in: sending (claimed only, the default) or sent. */
  endStatus?: "sending" | "sent";
  /** Startup settings of the claimers' connections (track_functions, say). */
  connection?: Record<string, string>;
}

/**
 * One claim run on fresh data: a workspace with quiet hours off and CLAIM_SENDERS senders at mps
 * 1000 (their rate never limits the claim), `messages` due queued messages, and CLAIMERS
 * claimers, each on its own connection, claiming CLAIM_BATCH at a time (and doing `work` with
 * each batch) until a claim returns nothing. cpu and wait are the claimers' backends summed.
 */
export async function claimRun(ctx: SuiteContext, run: number, log: (s: string) => void, opts: ClaimRunOptions = {}) {
  const sql = ctx.cluster.sql;
  const total = opts.messages ?? CLAIM_MESSAGES;
  const label = opts.label ?? "claim";
  const ws = await loadWorkspace(sql, `${label} ${run}`, { contacts: CLAIM_CONTACTS, senders: CLAIM_SENDERS, mps: 1000 });
  await loadMessages(sql, ws, total, "queued", "now() - interval '1 hour'", `${label} ${run}`);
  await settle(sql);
  log(`${label} run ${run + 1}: ${total} queued loaded, ${CLAIMERS} claimers`);
  const claimers = Array.from(
    { length: CLAIMERS },
    () => postgres(ctx.cluster.url, { max: 1, onnotice: () => {}, connection: opts.connection }),
  );
  try {
    const pids = await Promise.all(claimers.map((c) => backendPid(c)));
    const before = schedstats(pids);
    const claimedBy: number[] = claimers.map(() => 0);
    const calls: number[] = claimers.map(() => 0);
    const wal = await walPosition(sql);
    const t = await timed(() =>
      Promise.all(claimers.map(async (c, k) => {
        for (;;) {
          const rows = await c<ClaimedMessage[]>`
            select * from herald.claim_messages(${CLAIM_BATCH}, interval '10 minutes')`;
          calls[k]++;
          if (rows.length === 0) return;
          claimedBy[k] += rows.length;
          await opts.work?.(c, rows);
        }
      }))
    );
    const used = cpuBetween(before, schedstats(pids));
    const walBytes = await walSince(sql, wal);
    const counts = await statusCounts(sql, ws);
    const claimed = claimedBy.reduce((a, b) => a + b, 0);
    const endStatus = opts.endStatus ?? "sending";
    if ((counts[endStatus] ?? 0) !== total || claimed < total) {
      throw new Error(`claimed ${claimed}; ${JSON.stringify(counts)}; expected ${total} ${endStatus}`);
    }
    log(
      `${label} run ${run + 1}: ${claimed} in ${formatMs(t.ms)} (${rate(claimed, t.ms)}), ` +
        `calls ${calls.join("/")}, per claimer ${claimedBy.join("/")}`,
    );
    await finish(ctx.cluster.url, ws);
    // Claims beyond the messages (e.g. of another suite's workspace) would overstate: count only ours.
    return { ms: t.ms * (total / claimed), cpuMs: used?.cpuMs, waitMs: used?.waitMs, walBytes, ws };
  } finally {
    await Promise.all(claimers.map((c) => c.end({ timeout: 1 })));
  }
}

// ---- queue_due_messages -------------------------------------------------------------------------

async function queueDueRun(ctx: SuiteContext, run: number, log: (s: string) => void) {
  const sql = ctx.cluster.sql;
  // Quiet hours on (21:00–08:00 UTC), evaluated for every message at a clock outside them:
  // tomorrow 12:00 UTC. The messages are due by that clock only, so pg_cron's own run of
  // queue_due_messages() (every minute, on the real clock) never takes them first.
  const ws = await loadWorkspace(sql, `queue ${run}`, {
    contacts: CLAIM_CONTACTS,
    senders: 2,
    mps: 100,
    quietStart: "21:00",
    quietEnd: "08:00",
  });
  await sql`update public.contacts set timezone = (array['UTC', 'Europe/Lisbon', 'Europe/London', 'Atlantic/Reykjavik'])[1 + (right(phone, 1)::int % 4)]
            where workspace_id = ${ws.id}`;
  await loadMessages(sql, ws, QUEUE_MESSAGES, "scheduled", "now() + interval '1 hour'", `Queue ${run}`);
  await settle(sql);
  const [{ at }] = await sql`select (date_trunc('day', now()) + interval '36 hours')::timestamptz as at`;
  log(`sending: queue_due_messages run ${run + 1}: ${QUEUE_MESSAGES} scheduled loaded`);
  const pid = await backendPid(sql);
  let calls = 0;
  const t = await timedOnBackend(pid, async () => {
    let total = 0;
    for (;;) {
      const [{ r }] = await sql`select herald.queue_due_messages(20000, ${at}::timestamptz) as r`;
      calls++;
      const got = r as Record<string, number>;
      const n = Object.values(got).reduce((a, b) => a + b, 0);
      if (n === 0) return total;
      total += n;
    }
  });
  const counts = await statusCounts(sql, ws);
  if ((counts.queued ?? 0) !== QUEUE_MESSAGES) {
    throw new Error(`queue_due_messages left ${JSON.stringify(counts)}; expected ${QUEUE_MESSAGES} queued`);
  }
  log(`sending: queue_due_messages run ${run + 1}: ${calls} calls, ${formatMs(t.ms)} (${rate(QUEUE_MESSAGES, t.ms)})`);
  await finish(ctx.cluster.url, ws);
  return t;
}

// ---- end to end ----------------------------------------------------------------------------------

/** Until `check` is true or `timeoutMs` passes; returns whether it became true. */
async function until(check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function e2eRun(ctx: SuiteContext, services: BenchServices, run: number, log: (s: string) => void) {
  const sql = ctx.cluster.sql;
  const ws = await loadWorkspace(sql, `e2e ${run}`, { contacts: CLAIM_CONTACTS, senders: E2E_SENDERS, mps: 1000 });
  const tag = `E2E ${run} ${ws.id.slice(0, 8)}`;
  const name = runName(run);
  await loadMessages(sql, ws, E2E_MESSAGES, "queued", "now() - interval '1 minute'", tag);
  await settle(sql);
  await sandboxReset(services);
  log(`sending: e2e ${name}: ${E2E_MESSAGES} queued, ${E2E_PARALLEL} dispatch loops of limit ${E2E_LIMIT}`);
  let posts = 0;
  const before = cpuNow(ctx, services);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: E2E_PARALLEL }, async () => {
    for (;;) {
      const r = await dispatch(services, E2E_LIMIT);
      posts++;
      if (r.claimed === 0) return;
    }
  }));
  const ms = performance.now() - t0;
  const counts = await statusCounts(sql, ws);
  const sent = (counts.sent ?? 0) + (counts.delivered ?? 0);
  if (sent !== E2E_MESSAGES) {
    throw new Error(`dispatch loops ended with ${JSON.stringify(counts)} of ${E2E_MESSAGES}\n${await logTail(services)}`);
  }
  // The callbacks (queued, sent, delivered per message) keep arriving after the last send.
  const delivered = await until(async () => {
    const [{ n }] = await sql`select count(*)::int as n from public.messages
                              where workspace_id = ${ws.id} and status = 'delivered'`;
    return n === E2E_MESSAGES;
  }, 180_000, 250);
  const deliveredMs = performance.now() - t0;
  const cpu = cpuSince(ctx, services, before);
  // The sandbox's record is the witness: each message created exactly once.
  const snap = await sandboxSnapshot(services);
  const ours = snap.messages.filter((m) => ws.senders.some((s) => s.phone === m.from));
  const createdOk = snap.create_requests.filter((c) => c.http_status === 201).length;
  if (ours.length !== E2E_MESSAGES) {
    throw new Error(`the sandbox holds ${ours.length} messages from this run's senders, expected ${E2E_MESSAGES}`);
  }
  await finish(ctx.cluster.url, ws);
  log(
    `sending: e2e ${name}: all sent in ${formatMs(ms)} (${rate(E2E_MESSAGES, ms)}), ${posts} POSTs; ` +
      `${delivered ? "all delivered" : "NOT all delivered"} after ${formatMs(deliveredMs)}; sandbox ${createdOk} creates; ` +
      `CPU per message until delivered: PostgreSQL ${perMessage(cpu.postgres)}, functions ${perMessage(cpu.functions)}, ` +
      `sandbox ${perMessage(cpu.sandbox)}, machine busy ${perMessage(cpu.machineBusy)} of ${perMessage(cpu.machineTotal)}`,
  );
  return { ms, deliveredMs: delivered ? deliveredMs : NaN };
}

async function callbackRun(
  ctx: SuiteContext,
  services: BenchServices,
  run: number,
  concurrency: number,
  log: (s: string) => void,
) {
  const sql = ctx.cluster.sql;
  const ws = await loadWorkspace(sql, `callbacks ${run}`, { contacts: CLAIM_CONTACTS, senders: 1, mps: 100 });
  // Sent messages with their attempt and sid, as dispatch leaves them.
  await sql`
    insert into public.messages (workspace_id, contact_id, sender_id, channel, body, send_at, status, attempts,
                                 provider_sid, sent_at)
    select ${ws.id}, c.ids[1 + g % cardinality(c.ids)], ${ws.senders[0].id}, 'sms', 'Callback ' || g, now() - interval '1 minute', 'sent', 1,
           'SM' || md5(${ws.id}::text || g), now() - interval '1 minute'
    from generate_series(1, ${CALLBACKS}::int) g,
         (select array_agg(id order by phone) as ids from public.contacts where workspace_id = ${ws.id}) c
    order by g`;
  await sql`
    insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_sid, provider_status,
                                         requested_at, responded_at)
    select m.workspace_id, m.id, 1, m.provider_sid, 'sent', m.sent_at, m.sent_at
    from public.messages m where m.workspace_id = ${ws.id}`;
  await settle(sql);
  const sids = (await sql`select provider_sid from public.messages where workspace_id = ${ws.id} order by random()`)
    .map((r) => r.provider_sid as string);
  const requests = sids.map((sid) => callbackRequest(services.functionsUrl, signedStatusCallback(services.functionsUrl, sid, "delivered")));
  log(`sending: callbacks ${runName(run)}: ${requests.length} signed 'delivered' callbacks, concurrency ${concurrency}`);
  const statuses = new Map<number, number>();
  const connections = await Promise.all(Array.from({ length: concurrency }, () => Http1Connection.open(services.functionsUrl)));
  const before = cpuNow(ctx, services);
  const t = await timed(() =>
    pool(requests.length, concurrency, async (i, slot) => {
      const { status: s } = await connections[slot].send(requests[i]);
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
    })
  ).finally(() => connections.forEach((c) => c.close()));
  const cpu = cpuSince(ctx, services, before);
  const counts = await statusCounts(sql, ws);
  if (statuses.get(200) !== CALLBACKS || counts.delivered !== CALLBACKS) {
    throw new Error(
      `answers ${JSON.stringify(Object.fromEntries(statuses))}, messages ${JSON.stringify(counts)}\n${await logTail(services)}`,
    );
  }
  await finish(ctx.cluster.url, ws);
  log(`sending: callbacks ${runName(run)}: ${formatMs(t.ms)} (${rate(CALLBACKS, t.ms)}); CPU per callback: ` +
    `PostgreSQL ${perCallback(cpu.postgres)}, functions ${perCallback(cpu.functions)}, this client ` +
    `${perCallback(cpu.client)}, machine busy ${perCallback(cpu.machineBusy)} of ${perCallback(cpu.machineTotal)}`);
  return { ms: t.ms, cpu };
}

/**
 * The callbacks case at `concurrency` outstanding requests: its timing line and its throughput.
 * `targeted`: held to the 3,000/s target; the other is report only.
 */
async function callbackCase(
  ctx: SuiteContext,
  services: BenchServices,
  concurrency: number,
  runs: number,
  targeted: boolean,
): Promise<Line[]> {
  ctx.log(`sending: status callbacks at concurrency ${concurrency}, ${runs} run(s)`);
  const line = await timeCase(
    `twilio-status: ${CALLBACKS / 1000}k signed callbacks, concurrency ${concurrency}`,
    runs,
    (i) => callbackRun(ctx, services, i, concurrency, ctx.log),
    {
      warmUp: true,
      line: targeted
        ? {
          targetMs: (CALLBACKS / TARGET_CALLBACKS_PER_S) * 1000,
          note: "each a 'delivered' for an existing sent message's sid, form-encoded with X-Twilio-Signature and an " +
            `idempotency token (signed before the clock starts); target = ${TARGET_CALLBACKS_PER_S} callbacks/s`,
        }
        : {
          note: `the same callbacks with ${concurrency} requests outstanding (Twilio caps none): larger batches; report only`,
        },
    },
  );
  if (!line.samples.length) return [line];
  const perS = CALLBACKS / (median(line.samples) / 1000);
  return [line, {
    kind: "figure",
    label: targeted ? "webhook throughput (median run)" : `webhook throughput at ${concurrency} (median run)`,
    value: targeted
      ? `${Math.round(perS)}/s (>= ${TARGET_CALLBACKS_PER_S}: ${verdict(perS >= TARGET_CALLBACKS_PER_S)})`
      : `${Math.round(perS)}/s`,
  }];
}

/**
 * A served case's run as its log lines name it: timeCase's warm-up is run 0 (a fresh functions
 * server and sandbox: Deno compiling the handlers, the pool's first connections, each backend's
 * first plans), and the timed runs count from 1.
 */
const runName = (run: number) => run === 0 ? "warm-up" : `run ${run}`;

const perMessage = (ms: number) => `${Math.round((ms * 1000) / E2E_MESSAGES)} µs`;
const perCallback = (ms: number) => `${Math.round((ms * 1000) / CALLBACKS)} µs`;

/** CPU so far (ms) of the cluster, the functions server, this bench process and the machine. */
function cpuNow(ctx: SuiteContext, services: BenchServices) {
  const machine = machineCpuMs();
  return {
    postgres: clusterCpuMs(ctx.cluster.stack.cluster.dataDir),
    functions: processCpuMs(services.functionsPid),
    sandbox: processCpuMs(services.sandboxPid),
    client: processCpuMs(Deno.pid),
    machineBusy: machine.busy,
    machineTotal: machine.total,
  };
}

function cpuSince(ctx: SuiteContext, services: BenchServices, before: ReturnType<typeof cpuNow>) {
  const now = cpuNow(ctx, services);
  return {
    postgres: now.postgres - before.postgres,
    functions: now.functions - before.functions,
    sandbox: now.sandbox - before.sandbox,
    client: now.client - before.client,
    machineBusy: now.machineBusy - before.machineBusy,
    machineTotal: now.machineTotal - before.machineTotal,
  };
}

async function mpsRun(ctx: SuiteContext, services: BenchServices, log: (s: string) => void) {
  const sql = ctx.cluster.sql;
  const ws = await loadWorkspace(sql, "mps", { contacts: CLAIM_CONTACTS, senders: 1, mps: MPS });
  const n = Math.ceil(MPS * (MPS_WINDOW_S + 10) * 1.25);
  await loadMessages(sql, ws, n, "queued", "now() - interval '1 minute'", "Rate");
  await settle(sql);
  await sandboxReset(services);
  log(`sending: mps: sender at mps ${MPS}, ${n} queued, ${MPS_PARALLEL} dispatch loops (limit ${MPS_LIMIT}) for ${MPS_WINDOW_S + 3} s`);
  const end = Date.now() + (MPS_WINDOW_S + 3) * 1000;
  let posts = 0;
  await Promise.all(Array.from({ length: MPS_PARALLEL }, async () => {
    while (Date.now() < end) {
      await dispatch(services, MPS_LIMIT);
      posts++;
    }
  }));
  const snap = await sandboxSnapshot(services);
  const at = snap.messages.filter((m) => m.from === ws.senders[0].phone).map((m) => m.received_at_ms).sort((a, b) =>
    a - b
  );
  await finish(ctx.cluster.url, ws);
  if (at.length < MPS * MPS_WINDOW_S * 0.5) throw new Error(`only ${at.length} messages reached the sandbox`);
  const t0 = at[0];
  const inWindow = at.filter((x) => x >= t0 && x < t0 + MPS_WINDOW_S * 1000).length;
  const achieved = inWindow / MPS_WINDOW_S;
  const deviation = achieved / MPS - 1;
  // The busiest second anywhere in the record, and the overall rate first to last.
  let busiest = 0;
  for (let i = 0, j = 0; i < at.length; i++) {
    while (at[i] - at[j] >= 1000) j++;
    busiest = Math.max(busiest, i - j + 1);
  }
  const overall = (at.length - 1) / ((at[at.length - 1] - at[0]) / 1000);
  log(
    `sending: mps: ${inWindow} in the first ${MPS_WINDOW_S} s = ${achieved.toFixed(2)}/s (${(deviation * 100).toFixed(2)}%); ` +
      `${at.length} in all, overall ${overall.toFixed(2)}/s, busiest second ${busiest}; ${posts} POSTs`,
  );
  return { achieved, deviation, inWindow, total: at.length, overall, busiest };
}

/**
 * The cases to run: all, or those HERALD_BENCH_SENDING names while developing (claim, queue, e2e,
 * callbacks, mps of the sending suite; fanout, the sending-fanout suite).
 */
const SENDING_CASES = ["claim", "queue", "e2e", "callbacks", "mps", "fanout"];
function sendingCases(): Set<string> {
  const v = Deno.env.get("HERALD_BENCH_SENDING");
  if (v === undefined || v === "") return new Set(SENDING_CASES);
  const names = v.split(",").map((x) => x.trim());
  const unknown = names.filter((x) => !SENDING_CASES.includes(x));
  if (unknown.length) throw new Error(`HERALD_BENCH_SENDING names ${SENDING_CASES.join(", ")}, not ${unknown.join(", ")}`);
  return new Set(names);
}

export const sendingSuite: Suite = {
  name: "sending",
  title: "Sending: claim and queue in SQL; dispatch, callbacks and mps through the sandbox",
  async run(ctx: SuiteContext): Promise<Line[]> {
    const { cluster, log } = ctx;
    const sql = cluster.sql;
    const lines: Line[] = [];
    const heavyRuns = Math.min(ctx.runs, 3);
    const cases = sendingCases();
    const wanted = (name: string) => cases.has(name);
    lines.push({ kind: "figure", label: "load average at start (1/5/15 min)", value: loadAverage() });
    await loadMember(sql);

    if (wanted("claim")) {
      // -- claim_messages -----------------------------------------------------------------------
      log(`sending: claim_messages, ${heavyRuns} run(s) on fresh data`);
      const claim = await timeCase(
        `claim_messages(${CLAIM_BATCH}) x ${CLAIMERS} claimers: ${CLAIM_MESSAGES / 1000}k due queued`,
        heavyRuns,
        (i) => claimRun(ctx, i, (s) => log(`sending: ${s}`)),
        { line: {
            targetMs: (CLAIM_MESSAGES / TARGET_CLAIM_PER_S) * 1000,
            note: `${CLAIM_CONTACTS} contacts, ${CLAIM_SENDERS} senders at mps 1000, lease 10 min; each claimer its own ` +
              `connection, autocommit, until it gets nothing; cpu = the ${CLAIMERS} backends summed; target = ` +
              `${TARGET_CLAIM_PER_S.toLocaleString("en-US")} msg/s`,
        } },
      );
      lines.push(claim);
      if (claim.samples.length) {
        const perS = CLAIM_MESSAGES / (median(claim.samples) / 1000);
        lines.push({
          kind: "figure",
          label: "claim throughput (median run)",
          value: `${Math.round(perS).toLocaleString("en-US")} msg/s (>= ${TARGET_CLAIM_PER_S.toLocaleString("en-US")}: ${
            verdict(perS >= TARGET_CLAIM_PER_S)
          })`,
        });
      }
    }

    if (wanted("queue")) {
      // -- queue_due_messages --------------------------------------------------------------------
      log(`sending: queue_due_messages, ${heavyRuns} run(s) on fresh data`);
      const queue = await timeCase(
        `queue_due_messages(20000): ${QUEUE_MESSAGES / 1000}k due scheduled`,
        heavyRuns,
        (i) => queueDueRun(ctx, i, log),
        { line: {
            note: "called as pg_cron does (default limit 20,000) until nothing is left; quiet hours 21:00-08:00 evaluated " +
              "for every message (4 zones) at a clock outside them; report only",
        } },
      );
      lines.push(queue);
      if (queue.samples.length) {
        lines.push({
          kind: "figure",
          label: "queue_due_messages throughput (median run)",
          value: rate(QUEUE_MESSAGES, median(queue.samples)).replace("/s", " msg/s"),
        });
      }
    }

    // -- served: dispatch, callbacks, mps -------------------------------------------------------
    if (!["e2e", "callbacks", "mps"].some(wanted)) {
      lines.push({ kind: "figure", label: "load average at end (1/5/15 min)", value: loadAverage() });
      return lines;
    }
    let services: BenchServices | undefined;
    try {
      services = await startBenchServices(cluster, log);
    } catch (err) {
      const label = "end-to-end cases";
      lines.push(errorLine(label, err));
      return lines;
    }
    try {
      if (wanted("e2e")) {
        log(`sending: dispatch end to end, ${heavyRuns} run(s)`);
        const delivered: number[] = [];
        let warmUpDeliveredMs = NaN;
        const e2e = await timeCase(
          `dispatch e2e: ${E2E_MESSAGES / 1000}k msgs, ${E2E_PARALLEL} parallel POSTs`,
          heavyRuns,
          async (i) => {
            const r = await e2eRun(ctx, services!, i, log);
            if (i === 0) warmUpDeliveredMs = r.deliveredMs;
            else delivered.push(r.deliveredMs);
            return { ms: r.ms };
          },
          { warmUp: true, line: {
              targetMs: (E2E_MESSAGES / TARGET_E2E_PER_S) * 1000,
              note: `POST dispatch {limit: ${E2E_LIMIT}} with the service role key in ${E2E_PARALLEL} loops until one ` +
                `claims nothing; ${E2E_SENDERS} senders at mps 1000; time until every message is sent (the sandbox's ` +
                `status callbacks, 3 per message, arrive meanwhile and after); target = ${TARGET_E2E_PER_S} msg/s`,
          } },
        );
        lines.push(e2e);
        if (e2e.samples.length) {
          const perS = E2E_MESSAGES / (median(e2e.samples) / 1000);
          lines.push({
            kind: "figure",
            label: "dispatch e2e throughput (median run)",
            value: `${Math.round(perS)} msg/s (>= ${TARGET_E2E_PER_S}: ${verdict(perS >= TARGET_E2E_PER_S)})`,
          });
          const d = delivered.filter((x) => Number.isFinite(x));
          if (d.length) {
            const deliveredMs = median(d);
            lines.push({
              kind: "figure",
              label: "dispatch e2e: until all delivered (median)",
              value: `${formatMs(deliveredMs)} (${rate(E2E_MESSAGES, deliveredMs)} incl. the callbacks; ` +
                `>= ${TARGET_DELIVERED_PER_S}: ${verdict(E2E_MESSAGES / (deliveredMs / 1000) >= TARGET_DELIVERED_PER_S)})`,
              note: `the warm-up run: ${Number.isFinite(warmUpDeliveredMs) ? formatMs(warmUpDeliveredMs) : "not all delivered"}`,
            });
          }
        }
      }

      if (wanted("callbacks")) {
        lines.push(...await callbackCase(ctx, services, CALLBACK_CONCURRENCY, Math.min(ctx.runs, 5), true));
        lines.push(...await callbackCase(ctx, services, CALLBACK_CONCURRENCY_WIDE, Math.min(ctx.runs, 3), false));
      }

      if (wanted("mps")) {
        log("sending: per-sender mps");
        try {
          const m = await mpsRun(ctx, services, log);
          lines.push({
            kind: "figure",
            label: `sender mps ${MPS} over ${MPS_WINDOW_S} s (sandbox receive times)`,
            value: `${m.achieved.toFixed(2)} msg/s, ${m.deviation >= 0 ? "+" : ""}${(m.deviation * 100).toFixed(2)}% ` +
              `(within ${MPS_TOLERANCE * 100}%: ${verdict(Math.abs(m.deviation) <= MPS_TOLERANCE)})`,
            note: `${m.inWindow} create requests in the ${MPS_WINDOW_S} s from the first; ${m.total} in all at ` +
              `${m.overall.toFixed(2)}/s first to last; busiest 1-s window ${m.busiest}; ${MPS_PARALLEL} dispatch loops ` +
              `(limit ${MPS_LIMIT}) running for ${MPS_WINDOW_S + 3} s`,
          });
        } catch (err) {
          lines.push(errorLine(`sender mps ${MPS} over ${MPS_WINDOW_S} s`, err));
        }
      }
    } finally {
      await services.stop();
    }
    lines.push({ kind: "figure", label: "load average at end (1/5/15 min)", value: loadAverage() });
    return lines;
  },
};

// ---- the scheduled path: dispatch sized by the work ---------------------------------------------

const FANOUT_MESSAGES = 100_000;
const FANOUT_SENDERS = 50;
const FANOUT_MPS = 20;
/** pg_cron's cadence for herald-dispatch on Supabase; the stack runner asks as often here. */
const FANOUT_EVERY_MS = 10_000;
const TARGET_FANOUT_PER_S = 900;
const FANOUT_TOLERANCE = 0.05;

interface FanoutResult {
  /** Messages sent, ended otherwise (failed: retries exhausted), and attempted more than once. */
  outcome: { sent: number; ended: number; reattempted: number };
  /** First to last create request of the backlog at the sandbox. */
  sendMs: number;
  /** From the stack runner's start to the last create request. */
  totalMs: number;
  plan: { sendable: number; needed: number; calls: number };
  settings: { budget_s: number; call_rate: number; max_calls: number };
  /** Calls the stack runner started at each tick that started any. */
  posted: number[];
  answered: number;
  /** Per sender: segments per second, first to last create request. */
  rates: number[];
  created: number;
  distinctBodies: number;
  distinctSids: number;
  sentInDb: number;
  cpu: { postgres: number; functions: number; sandbox: number; cron: number; machineBusy: number; machineTotal: number };
}

async function fanoutRun(ctx: SuiteContext, log: (s: string) => void): Promise<FanoutResult> {
  const sql = ctx.cluster.sql;
  const dataDir = ctx.cluster.stack.cluster.dataDir;
  const ws = await loadWorkspace(sql, "fan-out", { contacts: CLAIM_CONTACTS, senders: FANOUT_SENDERS, mps: FANOUT_MPS });
  // Transactional, so the legal hours for marketing at the contacts' numbers never defer them.
  await loadMessages(sql, ws, FANOUT_MESSAGES, "queued", "now() - interval '1 minute'", `Fan-out ${ws.id.slice(0, 8)}`, "transactional");
  await settle(sql);
  const [plan] = await sql`select sendable, needed, calls from herald.dispatch_fanout(make_interval(secs => ${FANOUT_EVERY_MS / 1000}))`;
  const [settings] = await sql`select extract(epoch from call_budget)::int as budget_s, call_rate::float8 as call_rate, max_calls
                               from herald.dispatch_settings`;
  log(
    `sending: fan-out: ${FANOUT_MESSAGES} queued over ${FANOUT_SENDERS} senders at ${FANOUT_MPS} mps; herald.dispatch_fanout ` +
      `asks for ${plan.calls} call(s) (${plan.sendable} sendable within a ${settings.budget_s} s budget)`,
  );

  const pg0 = clusterCpuMs(dataDir);
  const machine0 = machineCpuMs();
  const started = Date.now();
  const services = await startBenchServices(ctx.cluster, log, { cronIntervalMs: FANOUT_EVERY_MS });
  try {
    const counts = async () => {
      const [c] = await sql`
        select count(*) filter (where status in ('sent', 'delivered'))::int as sent,
               count(*) filter (where status in ('failed', 'undelivered', 'cancelled'))::int as ended,
               count(*) filter (where attempts > 1)::int as reattempted
        from public.messages where workspace_id = ${ws.id}`;
      return c as { sent: number; ended: number; reattempted: number };
    };
    // Until every message has ended one way or the other, or nothing has moved for two minutes
    // (retries wait for pg_cron's queueing, every minute).
    let c = await counts();
    let [progressAt, lastDone, logAt, loggedSent] = [Date.now(), 0, Date.now(), 0];
    while (c.sent + c.ended < FANOUT_MESSAGES && Date.now() - progressAt < 120_000) {
      await new Promise((r) => setTimeout(r, 1000));
      c = await counts();
      if (c.sent + c.ended !== lastDone) [lastDone, progressAt] = [c.sent + c.ended, Date.now()];
      if (Date.now() - logAt >= 15_000) {
        log(`sending: fan-out: ${c.sent} sent, ${c.ended} failed after ${formatMs(Date.now() - started)} ` +
          `(${rate(c.sent - loggedSent, Date.now() - logAt)} lately)`);
        [logAt, loggedSent] = [Date.now(), c.sent];
      }
    }
    const cpu = {
      postgres: clusterCpuMs(dataDir) - pg0,
      functions: processCpuMs(services.functionsPid),
      sandbox: processCpuMs(services.sandboxPid),
      cron: services.cronPid === null ? 0 : processCpuMs(services.cronPid),
      machineBusy: machineCpuMs().busy - machine0.busy,
      machineTotal: machineCpuMs().total - machine0.total,
    };

    // The sandbox's record is the witness: who sent what, when, and how often.
    const snap = await sandboxSnapshot(services);
    const phones = new Set(ws.senders.map((s) => s.phone));
    const ours = snap.messages.filter((m) => m.from !== null && phones.has(m.from));
    // A reduce, not Math.min(...): 100,000 arguments overflow the stack.
    const first = ours.reduce((a, m) => Math.min(a, m.received_at_ms), Infinity);
    const lastAt = ours.reduce((a, m) => Math.max(a, m.received_at_ms), -Infinity);
    const rates = ws.senders.map((s) => {
      const mine = ours.filter((m) => m.from === s.phone).sort((a, b) => a.received_at_ms - b.received_at_ms);
      if (mine.length < 2) return 0;
      const segments = mine.reduce((a, m) => a + Number(m.num_segments), 0) - Number(mine[0].num_segments);
      return segments / ((mine[mine.length - 1].received_at_ms - mine[0].received_at_ms) / 1000);
    });
    const [db] = await sql`select count(*)::int as sent, count(distinct provider_sid)::int as sids from public.messages
                           where workspace_id = ${ws.id} and status in ('sent', 'delivered') and provider_sid is not null`;
    const runnerLog = (await Deno.readTextFile(services.logFile)).split("\n");
    const posted = runnerLog.map((l) => /local-cron: (\d+) dispatch call\(s\) at once/.exec(l)).filter((m) => m !== null)
      .map((m) => Number(m![1]));
    return {
      outcome: c,
      sendMs: lastAt - first,
      totalMs: lastAt - started,
      plan: { sendable: plan.sendable, needed: plan.needed, calls: plan.calls },
      settings: { budget_s: settings.budget_s, call_rate: settings.call_rate, max_calls: settings.max_calls },
      posted,
      answered: runnerLog.filter((l) => l.startsWith("local-cron: dispatch {")).length,
      rates,
      created: ours.length,
      distinctBodies: new Set(ours.map((m) => m.body)).size,
      distinctSids: db.sids,
      sentInDb: db.sent,
      cpu,
    };
  } finally {
    await services.stop();
    await finish(ctx.cluster.url, ws);
  }
}

/**
 * The scheduled path at scale, as a hosted project runs it: herald.dispatch_fanout sizes the
 * fan-out and the stack runner (standing in for pg_cron and pg_net) starts that many dispatch
 * calls every 10 s; each keeps claiming until its budget or the work runs out. Its own suite, so
 * it can run alone (`npm run bench -- fanout`); `npm run bench -- sending` runs it too.
 */
export const fanoutSuite: Suite = {
  name: "sending-fanout",
  title: `Sending at scale: ${FANOUT_MESSAGES / 1000}k due over ${FANOUT_SENDERS} senders, drained by the SQL-sized fan-out`,
  async run(ctx: SuiteContext): Promise<Line[]> {
    const { log } = ctx;
    const lines: Line[] = [{ kind: "figure", label: "load average at start (1/5/15 min)", value: loadAverage() }];
    if (!sendingCases().has("fanout")) {
      log("sending-fanout: not among HERALD_BENCH_SENDING's cases");
      return lines;
    }
    await loadMember(ctx.cluster.sql);
    const label = `fan-out: ${FANOUT_MESSAGES / 1000}k msgs, ${FANOUT_SENDERS} senders at ${FANOUT_MPS} mps`;
    let r: FanoutResult;
    try {
      r = await fanoutRun(ctx, log);
    } catch (err) {
      lines.push(errorLine(label, err));
      return lines;
    }
    const drained = r.outcome.sent === FANOUT_MESSAGES;
    const perS = r.created / (r.sendMs / 1000);
    const ceiling = FANOUT_SENDERS * FANOUT_MPS;
    lines.push({
      kind: "timing",
      label,
      samples: [r.sendMs],
      ...(drained ? {} : { error: `${r.outcome.sent} sent, ${r.outcome.ended} failed: not drained` }),
      targetMs: (FANOUT_MESSAGES / TARGET_FANOUT_PER_S) * 1000,
      note: `one run: first to last create request at the sandbox; the stack runner asks herald.dispatch_fanout every ` +
        `${FANOUT_EVERY_MS / 1000} s (pg_cron's cadence on Supabase) and POSTs dispatch that many times at once; ` +
        `call budget ${r.settings.budget_s} s, calls sized for ${r.settings.call_rate} msg/s, at most ${r.settings.max_calls}; ` +
        `the senders' ceiling is ${ceiling} msg/s; target = ${TARGET_FANOUT_PER_S} msg/s`,
    });
    lines.push({
      kind: "figure",
      label: "fan-out throughput to the sandbox",
      value: `${Math.round(perS)} msg/s (>= ${TARGET_FANOUT_PER_S}: ${verdict(drained && perS >= TARGET_FANOUT_PER_S)})`,
      note: `${r.created} creates first to last; ${formatMs(r.totalMs)} from the runner's start to the last send ` +
        `(${rate(r.created, r.totalMs)} with the wait for the first tick and the first claims); ` +
        `${r.outcome.reattempted} message(s) claimed more than once (a lost lease or a transient error)`,
    });
    lines.push({
      kind: "figure",
      label: "calls started (herald.dispatch_fanout)",
      value: `${r.posted.join(", ") || "none"}; ${r.answered} answered`,
      note: `at the load: ${r.plan.sendable} sendable within one budget, ${r.plan.needed} calls needed, ${r.plan.calls} to start; ` +
        "each later tick starts what the backlog needs less the calls still claiming at the next one",
    });
    const worst = Math.max(...r.rates.map((x) => Math.abs(x / FANOUT_MPS - 1)));
    const within = r.rates.filter((x) => Math.abs(x / FANOUT_MPS - 1) <= FANOUT_TOLERANCE).length;
    lines.push({
      kind: "figure",
      label: `sender rates (segments/s, within ${FANOUT_TOLERANCE * 100}% of ${FANOUT_MPS})`,
      value: `${within}/${r.rates.length} within; ${Math.min(...r.rates).toFixed(2)}–${Math.max(...r.rates).toFixed(2)}, ` +
        `worst ${(worst * 100).toFixed(2)}% (${verdict(within === r.rates.length)})`,
      note: "each sender's segments over its first to last create request at the sandbox (every body here is one segment)",
    });
    // Nothing created twice, and every create is a sent message with its own sid.
    const once = r.created === r.distinctBodies && r.created === r.sentInDb && r.sentInDb === r.distinctSids;
    lines.push({
      kind: "figure",
      label: "each message sent once",
      value: `${verdict(once)}: sandbox ${r.created} creates, ${r.distinctBodies} distinct bodies; database ${r.sentInDb} sent, ` +
        `${r.distinctSids} distinct sids`,
    });
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const ours = r.cpu.postgres + r.cpu.functions + r.cpu.sandbox + r.cpu.cron;
    lines.push({
      kind: "figure",
      label: "where the CPU went (runner start to drained)",
      value: `PostgreSQL ${s(r.cpu.postgres)}, functions ${s(r.cpu.functions)}, sandbox ${s(r.cpu.sandbox)}, runner ` +
        `${s(r.cpu.cron)}; machine busy ${s(r.cpu.machineBusy)} of ${s(r.cpu.machineTotal)} (${
          Math.round((100 * r.cpu.machineBusy) / r.cpu.machineTotal)
        }%), others ${s(Math.max(0, r.cpu.machineBusy - ours))}`,
      note: "the functions server also answers the sandbox's status callbacks (3 per message), as twilio-status does on Supabase",
    });
    lines.push({ kind: "figure", label: "load average at end (1/5/15 min)", value: loadAverage() });
    return lines;
  },
};
