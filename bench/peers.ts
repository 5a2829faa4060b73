// Herald against the peers: the same drain of due jobs on the same cluster by Herald, pg-boss and
// graphile-worker — 100,000 due jobs, 4 workers, batches of 500, fetch then complete — in
// interleaved runs (Herald's rows, pg-boss, graphile-worker, Herald's rows again, …), each on
// freshly loaded and analyzed data, and one table of jobs/s, server CPU per 1,000 jobs and the
// ratios. Then where a Herald message's server time goes: one more run of Herald's cycle with
// track_functions = all, per function.
//
// Herald's rows reuse the sending suite's claim run (bench/sending.ts: a workspace with quiet
// hours off and 10 senders at mps 1000, so no rate limits the claim) with what a dispatcher does
// between claims. pg-boss and graphile-worker run in Node 22 (bench/peers-node.ts). A smaller
// drain while developing: HERALD_BENCH_PEERS_JOBS=10000 npm run bench -- peers

import { ROOT } from "@herald/scripts/lib/config.ts";
import {
  cpuBetween,
  formatMs,
  type Line,
  loadAverage,
  median,
  type Sample,
  schedstats,
  type Sql,
  type Suite,
  type SuiteContext,
  type TimingLine,
  walPosition,
  walSince,
} from "./lib.ts";
import { CLAIM_BATCH, CLAIM_MESSAGES, CLAIMERS, type ClaimedMessage, claimRun, loadMember } from "./sending.ts";
import type { PeerConfig, PeerMessage } from "./peers-node.ts";

const NODE = `${ROOT}/node_modules/.bin/node`;
const PEERS_DRIVER = `${ROOT}/bench/peers-node.ts`;
/** How long a peer may take to load, or to drain, before the run is called failed. */
const PEER_STEP_TIMEOUT_MS = 600_000;
/** Messages of the extra, untimed Herald run whose server time is split by function. */
const BREAKDOWN_MESSAGES = 20_000;
/** The lease and provider-call timeout the dispatcher passes by default. */
const CALL_TIMEOUT_S = 15;

function jobsToDrain(): number {
  const v = Deno.env.get("HERALD_BENCH_PEERS_JOBS");
  if (v === undefined || v === "") return CLAIM_MESSAGES;
  const n = Number(v);
  if (!Number.isInteger(n) || n < CLAIMERS * CLAIM_BATCH || n > 1_000_000) {
    throw new Error(`HERALD_BENCH_PEERS_JOBS wants a whole number from ${CLAIMERS * CLAIM_BATCH} to 1000000, not ${v}`);
  }
  return n;
}

type PeerSample = Sample & { walBytes?: number };

interface System {
  label: string;
  /** Short name in the ratio columns; set for the peers. */
  peer?: string;
  note: string;
  once(run: number): Promise<PeerSample>;
}

// ---- Herald's rows ----------------------------------------------------------------------------

/** A sid as Twilio's: SM and 32 hex digits. */
function sid(): string {
  return "SM" + crypto.randomUUID().replaceAll("-", "");
}

function expectSend(verdicts: { verdict: string }[], n: number) {
  const other = verdicts.filter((v) => v.verdict !== "send");
  if (verdicts.length !== n || other.length) {
    throw new Error(`confirm_send answered ${JSON.stringify(other.slice(0, 3))} (${verdicts.length} of ${n})`);
  }
}

/**
 * Herald's cycle for a claimed batch, each step once for the whole batch, as a busy dispatcher
 * makes it: one confirm_send and one record_send_results for the batch.
 */
async function confirmAndRecordBatch(c: Sql, batch: ClaimedMessage[]) {
  const ids = batch.map((m) => m.message_id);
  const attempts = batch.map((m) => m.attempt_no);
  const verdicts = await c<{ verdict: string }[]>`
    select verdict from herald.confirm_send(${ids}::uuid[], ${attempts}::integer[],
                                            make_interval(secs => ${CALL_TIMEOUT_S}))`;
  expectSend(verdicts, batch.length);
  const sids = batch.map(() => sid());
  await c`
    select count(*) from herald.record_send_results(${ids}::uuid[], ${attempts}::integer[],
                                                   ${batch.map(() => "sent")}::text[], ${sids}::text[],
                                                   ${batch.map(() => "queued")}::text[])`;
}

/**
 * Herald's cycle with nothing to batch (a dispatcher with one message in flight at a time): per
 * message, its confirm_send and its record_send_result, one round trip each.
 */
async function confirmAndRecordEach(c: Sql, batch: ClaimedMessage[]) {
  for (const m of batch) {
    const verdicts = await c<{ verdict: string }[]>`
      select verdict, reason from herald.confirm_send(${[m.message_id]}::uuid[], ${[m.attempt_no]}::integer[],
                                                      make_interval(secs => ${CALL_TIMEOUT_S}))`;
    expectSend(verdicts, 1);
    await c`
      select herald.record_send_result(${m.message_id}::uuid, ${m.attempt_no}, ${"sent"}, ${sid()}, ${"queued"},
                                       ${null}::integer, ${null}) as status`;
  }
}

function heraldSystems(ctx: SuiteContext, jobs: number): System[] {
  const log = (s: string) => ctx.log(`peers: Herald ${s}`);
  return [
    {
      label: "Herald: claim only",
      note: `herald.claim_messages(${CLAIM_BATCH}) until empty; messages left sending`,
      once: (run) => claimRun(ctx, run, log, { label: "claim only", messages: jobs }),
    },
    {
      label: "Herald: claim + confirm + record, batched",
      note: "claim_messages, then one confirm_send and one record_send_results for the batch, as dispatch.ts " +
        "batches them under load: the real cycle (ledger, enrollments' trigger)",
      once: (run) =>
        claimRun(ctx, run, log, { label: "cycle", messages: jobs, work: confirmAndRecordBatch, endStatus: "sent" }),
    },
    {
      label: "Herald: claim + per-message confirm + record",
      note: "claim_messages, then per message confirm_send and record_send_result, one round trip each: " +
        "what a message costs when there is nothing to batch it with",
      once: (run) =>
        claimRun(ctx, run, log, { label: "per message", messages: jobs, work: confirmAndRecordEach, endStatus: "sent" }),
    },
  ];
}

// ---- the peers --------------------------------------------------------------------------------

/** The peer driver's messages, one JSON object a line. */
async function* peerMessages(stream: ReadableStream<Uint8Array>): AsyncGenerator<PeerMessage> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) yield JSON.parse(line) as PeerMessage;
    }
  }
}

async function backendsOf(sql: Sql, applicationName: string): Promise<number[]> {
  const rows = await sql`select pid from pg_stat_activity where application_name = ${applicationName}`;
  return rows.map((r) => Number(r.pid));
}

/**
 * One drain by a peer: the Node driver loads the jobs and opens its connections; the table is
 * analyzed as autovacuum would; the clock, the CPU of the peer's backends and the WAL run from
 * "go" to "done".
 */
async function peerRun(ctx: SuiteContext, system: PeerConfig["system"], jobs: number, run: number): Promise<PeerSample> {
  const sql = ctx.cluster.sql;
  const cfg: PeerConfig = {
    system,
    url: ctx.cluster.url,
    applicationName: `herald bench ${system} ${run}`,
    queue: `bench_peers_${run}`,
    jobs,
    workers: CLAIMERS,
    batch: CLAIM_BATCH,
  };
  // NO_LOG_SUCCESS: graphile-worker's switch for its per-job log line, as its performance tests set it.
  const child = new Deno.Command(NODE, {
    args: [PEERS_DRIVER, JSON.stringify(cfg)],
    env: { NO_LOG_SUCCESS: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const messages = peerMessages(child.stdout);
  const stdin = child.stdin.getWriter();
  const say = (word: string) => stdin.write(new TextEncoder().encode(word + "\n"));
  const next = async <E extends PeerMessage["event"]>(event: E): Promise<Extract<PeerMessage, { event: E }>> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${system} sent no "${event}" in ${formatMs(PEER_STEP_TIMEOUT_MS)}`)), PEER_STEP_TIMEOUT_MS);
    });
    try {
      const { value, done } = await Promise.race([messages.next(), timeout]);
      if (done || value.event !== event) {
        const got = done ? "nothing" : value.event === "error" ? value.message : JSON.stringify(value);
        throw new Error(`${system}: expected "${event}", got ${got} ${(await stderr).trim().split("\n").slice(-3).join(" | ")}`);
      }
      return value as Extract<PeerMessage, { event: E }>;
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    ctx.log(`peers: ${system} run ${run + 1}: loading ${jobs} jobs`);
    await next("ready");
    await sql.unsafe(system === "pg-boss" ? "vacuum analyze pgboss.job" : "vacuum analyze graphile_worker._private_jobs");
    const pids = await backendsOf(sql, cfg.applicationName);
    const before = schedstats(pids);
    const wal = await walPosition(sql);
    await say("go");
    const done = await next("done");
    const used = cpuBetween(before, schedstats(await backendsOf(sql, cfg.applicationName)));
    const walBytes = await walSince(sql, wal);
    await say("stop");
    const status = await child.status;
    if (!status.success) throw new Error(`${system} exited ${status.code}: ${(await stderr).trim().slice(-500)}`);
    const [{ n }] = system === "pg-boss"
      ? await sql`select count(*)::int as n from pgboss.job where name = ${cfg.queue} and state = 'completed'`
      : await sql`select ${jobs}::int - count(*)::int as n from graphile_worker.jobs where task_identifier = ${cfg.queue}`;
    if (done.jobs !== jobs || n !== jobs) {
      throw new Error(`${system} ran ${done.jobs} jobs and the database shows ${n} done, of ${jobs}`);
    }
    ctx.log(
      `peers: ${system} run ${run + 1}: ${jobs} in ${formatMs(done.ms)} (${Math.round(jobs / (done.ms / 1000))}/s), ` +
        `${done.fetches} fetches over ${pids.length} connections`,
    );
    return { ms: done.ms, cpuMs: used?.cpuMs, waitMs: used?.waitMs, walBytes };
  } finally {
    await stdin.close().catch(() => {});
    try {
      child.kill();
    } catch {
      // already exited
    }
    await child.status;
    await stderr.catch(() => "");
  }
}

/** The installed version of a package, as its package.json says. */
async function installed(name: string): Promise<string> {
  const pkg = JSON.parse(await Deno.readTextFile(`${ROOT}/node_modules/${name}/package.json`));
  return String(pkg.version);
}

async function peerSystems(ctx: SuiteContext, jobs: number): Promise<System[]> {
  return [
    {
      label: `pg-boss ${await installed("pg-boss")}: fetch + complete`,
      peer: "pg-boss",
      note: `one PgBoss (pool of ${CLAIMERS}), ${CLAIMERS} loops of fetch(queue, { batchSize: ${CLAIM_BATCH} }) then ` +
        "complete(queue, ids); jobs inserted with insert(); maintenance, cron and instance registry off",
      once: (run) => peerRun(ctx, "pg-boss", jobs, run),
    },
    {
      label: `graphile-worker ${await installed("graphile-worker")}: batched fetch + complete`,
      peer: "graphile-worker",
      note: `${CLAIMERS} worker pools (run()), each localQueue.size ${CLAIM_BATCH}, concurrency 24, ` +
        "completeJobBatchDelay 0, a no-op task; jobs added with addJobs(); NO_LOG_SUCCESS as its perf test sets",
      once: (run) => peerRun(ctx, "graphile-worker", jobs, run),
    },
  ];
}

// ---- where Herald's time goes -------------------------------------------------------------------

interface FunctionStat {
  name: string;
  calls: number;
  totalMs: number;
  selfMs: number;
}

async function functionStats(sql: Sql): Promise<Map<string, FunctionStat>> {
  const rows = await sql`
    select funcid::text as id, schemaname || '.' || funcname as name, calls::float8 as calls,
           total_time::float8 as total_ms, self_time::float8 as self_ms
    from pg_stat_user_functions`;
  return new Map(rows.map((r) => [r.id as string, {
    name: r.name as string,
    calls: r.calls as number,
    totalMs: r.total_ms as number,
    selfMs: r.self_ms as number,
  }]));
}

/**
 * One more run of Herald's batched cycle with track_functions = all on the claimers'
 * connections, and each function's calls and server time per message (self: its own statements,
 * not the functions it calls; a trigger's statements are the trigger function's).
 */
async function breakdown(ctx: SuiteContext, jobs: number): Promise<Line> {
  const sql = ctx.cluster.sql;
  const n = Math.min(jobs, BREAKDOWN_MESSAGES);
  const before = await functionStats(sql);
  await claimRun(ctx, 0, (s) => ctx.log(`peers: Herald ${s}`), {
    label: "function breakdown",
    messages: n,
    work: confirmAndRecordBatch,
    endStatus: "sent",
    connection: { track_functions: "all" },
  });
  // The claimers' counts reach the statistics as their backends exit: wait for all of them.
  let after = await functionStats(sql);
  const recorded = (m: Map<string, FunctionStat>) =>
    [...m.values()].find((f) => f.name === "herald.record_send_results")?.calls ?? 0;
  for (let i = 0; i < 50 && recorded(after) - recorded(before) < Math.ceil(n / CLAIM_BATCH); i++) {
    await new Promise((r) => setTimeout(r, 100));
    await sql`select pg_stat_clear_snapshot()`;
    after = await functionStats(sql);
  }
  const deltas = [...after].map(([id, a]) => {
    const b = before.get(id);
    return {
      name: a.name,
      calls: a.calls - (b?.calls ?? 0),
      totalMs: a.totalMs - (b?.totalMs ?? 0),
      selfMs: a.selfMs - (b?.selfMs ?? 0),
    };
  }).filter((d) => d.calls > 0).sort((x, y) => y.selfMs - x.selfMs);
  const us = (ms: number) => `${((ms * 1000) / n).toFixed(1)} µs`;
  // A batched call is made once per batch: "1 in 500" says more than 0.00.
  const perMessage = (calls: number) => calls / n >= 0.1 ? (calls / n).toFixed(2) : `1 in ${Math.round(n / calls)}`;
  const selfSum = deltas.reduce((s, d) => s + d.selfMs, 0);
  const share = (ms: number) => `${((100 * ms) / selfSum).toFixed(1)}%`;
  return {
    kind: "table",
    label: `== peers: where a message's server time goes in Herald's batched cycle (${n.toLocaleString("en-US")} ` +
      "messages, track_functions = all; largest self time first)",
    header: ["function", "calls / msg", "self / msg", "share", "total / msg"],
    rows: [
      ...deltas.slice(0, 14).map((d) => [d.name, perMessage(d.calls), us(d.selfMs), share(d.selfMs), us(d.totalMs)]),
      ["all functions", "", us(selfSum), "100%", ""],
    ],
    notes: [
      "self: the function's own statements (a trigger function's: its trigger's work; index upkeep and foreign-key " +
        "checks count to the statement that causes them); total adds the functions it calls",
      "times are elapsed time inside each function (track_functions), so on a busy machine they include waits for " +
        "a CPU: read the shares, and the cpu above for the absolute cost",
    ],
  };
}

// ---- the suite ----------------------------------------------------------------------------------

function perSecond(jobs: number, ms: number): number {
  return jobs / (ms / 1000);
}

function comparison(systems: System[], lines: TimingLine[], wal: number[][], jobs: number): Line {
  const rate = (i: number) => (lines[i].samples.length ? perSecond(jobs, median(lines[i].samples)) : undefined);
  const peers = systems.map((s, i) => ({ name: s.peer, i })).filter((p) => p.name);
  const rows = systems.map((s, i) => {
    const r = rate(i);
    const cpu = lines[i].cpu ?? [];
    return [
      s.label,
      r === undefined ? lines[i].error ? "ERROR" : "-" : Math.round(r).toLocaleString("en-US"),
      cpu.length ? formatMs(median(cpu) / (jobs / 1000)) : "-",
      wal[i].length ? `${(median(wal[i]) / jobs / 1024).toFixed(1)} kB` : "-",
      ...peers.map((p) => {
        const pr = rate(p.i);
        return r === undefined || pr === undefined ? "-" : `${(r / pr).toFixed(2)}×`;
      }),
    ];
  });
  return {
    kind: "table",
    label: `== peers: ${jobs.toLocaleString("en-US")} due jobs, ${CLAIMERS} workers, batches of ${CLAIM_BATCH}, ` +
      `median of ${Math.max(...lines.map((l) => l.samples.length))} interleaved runs`,
    header: ["drain", "jobs/s", "server CPU / 1,000 jobs", "WAL / job", ...peers.map((p) => `× ${p.name}`)],
    rows,
    notes: [
      "jobs/s: the median run's; server CPU: the workers' backends (autovacuum, WAL writer and checkpointer not " +
        "counted); WAL: the whole cluster's over the run",
      "× peer: this row's jobs/s over the peer's (Herald/pg-boss, Herald/graphile-worker)",
      "clients: Herald's rows from Deno with postgres.js, as its dispatcher; the peers from Node 22 with pg, as they ship",
    ],
  };
}

export const peersSuite: Suite = {
  name: "peers",
  title: "Herald against pg-boss and graphile-worker: due jobs drained on the same cluster",
  async run(ctx: SuiteContext): Promise<Line[]> {
    const jobs = jobsToDrain();
    const version = await new Deno.Command(NODE, { args: ["--version"] }).output().catch(() => null);
    const nodeVersion = version?.success ? new TextDecoder().decode(version.stdout).trim() : "";
    if (!/^v(2[2-9]|[3-9]\d)\./.test(nodeVersion)) {
      throw new Error(`the peers need Node >= 22 at ${NODE} (found ${nodeVersion || "none"}): run npm install`);
    }
    await loadMember(ctx.cluster.sql);
    const systems = [...heraldSystems(ctx, jobs), ...await peerSystems(ctx, jobs)];
    const lines: TimingLine[] = systems.map((s) => ({
      kind: "timing",
      label: s.label,
      samples: [],
      cpu: [],
      wait: [],
      note: s.note,
    }));
    const wal: number[][] = systems.map(() => []);
    const start = loadAverage();
    ctx.log(`peers: ${jobs} jobs a run, ${ctx.runs} interleaved run(s); peers on Node ${nodeVersion}`);
    for (let run = 0; run < ctx.runs; run++) {
      for (const [i, s] of systems.entries()) {
        if (lines[i].error) continue;
        try {
          const r = await s.once(run);
          lines[i].samples.push(r.ms);
          if (r.cpuMs !== undefined) lines[i].cpu!.push(r.cpuMs);
          if (r.waitMs !== undefined) lines[i].wait!.push(r.waitMs);
          if (r.walBytes !== undefined) wal[i].push(r.walBytes);
        } catch (err) {
          lines[i].error = err instanceof Error ? err.message.split("\n")[0] : String(err);
        }
      }
    }
    const out: Line[] = [
      { kind: "figure", label: "load average at start (1/5/15 min)", value: start },
      ...lines,
      { kind: "figure", label: "load average at end (1/5/15 min)", value: loadAverage() },
      comparison(systems, lines, wal, jobs),
    ];
    try {
      out.push(await breakdown(ctx, jobs));
    } catch (err) {
      out.push({
        kind: "timing",
        label: "function breakdown",
        samples: [],
        error: err instanceof Error ? err.message.split("\n")[0] : String(err),
      });
    }
    return out;
  },
};
