// Shared pieces of `npm run bench`: a throwaway cluster, acting as a workspace member the way
// PostgREST does, timing helpers and the results table. Each suite (bench/<topic>.ts) exports a
// Suite; bench/run.ts runs the ones asked for against one cluster.

import postgres from "postgres";
import { Stack } from "@herald/scripts/lib/stack.ts";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

export interface BenchCluster {
  stack: Stack;
  url: string;
  /** One connection, so plan caches warm up as they would on a pooled PostgREST connection. */
  sql: Sql;
  /** What the numbers were measured on, printed above the table. */
  settings: Record<string, string>;
  destroy(): Promise<void>;
}

/**
 * Boots a migrated throwaway cluster (fsync off: see settings) on its own port and data dir.
 * `extraSql` files are applied after the migrations: a way to measure a proposed migration
 * before it is written into supabase/migrations. With `statements`, the cluster is restarted
 * with pg_stat_statements loaded (every statement, nested ones included, and its planning), for
 * statementsLine.
 */
export async function bootBenchCluster(
  port: number,
  log: (s: string) => void,
  extraSql: string[] = [],
  statements = false,
): Promise<BenchCluster> {
  const stack = new Stack({ db: port, functions: 0, sandbox: 0 }, `/var/tmp/herald/bench-${Deno.pid}`, true);
  try {
    await stack.upDatabase(log);
    for (const file of extraSql) {
      log(`applying ${file}`);
      await stack.cluster.psqlFile(file);
    }
    if (statements) {
      log("restarting the cluster with pg_stat_statements (--statements)");
      // In the file, as Cluster.init writes the rest: ALTER SYSTEM refuses a library's settings
      // before the library is loaded. The libraries already preloaded (pg_cron) stay.
      const preloaded = await stack.cluster.psql("show shared_preload_libraries");
      await stack.cluster.appendSettings("bench --statements", [
        `shared_preload_libraries = '${preloaded ? `${preloaded},` : ""}pg_stat_statements'`,
        "pg_stat_statements.track = all",
        "pg_stat_statements.track_planning = on",
      ]);
      await stack.cluster.stop();
      await stack.cluster.start();
      await stack.cluster.psql("create extension if not exists pg_stat_statements with schema extensions");
    }
  } catch (err) {
    await stack.cluster.destroy();
    throw err;
  }
  const sql = postgres(stack.cluster.url, { max: 1, onnotice: () => {}, prepare: true });
  const settings: Record<string, string> = {};
  for (
    const name of [
      "server_version",
      "fsync",
      "synchronous_commit",
      "full_page_writes",
      "shared_buffers",
      "work_mem",
      "jit",
    ]
  ) {
    const [row] = await sql`select current_setting(${name}) as v`;
    settings[name] = row.v;
  }
  return {
    stack,
    url: stack.cluster.url,
    sql,
    settings,
    destroy: async () => {
      await sql.end({ timeout: 1 });
      await stack.cluster.destroy();
    },
  };
}

export interface Member {
  userId: string;
  email: string;
}

/** The claims PostgREST would set for a signed-in member. */
export function memberClaims(m: Member): string {
  return JSON.stringify({ sub: m.userId, role: "authenticated", aud: "authenticated", email: m.email });
}

class Rollback extends Error {}

/** Runs fn in a transaction that is always rolled back, and returns fn's result. */
export async function rolledBack<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  let result: T | undefined;
  try {
    await sql.begin(async (tx) => {
      result = await fn(tx);
      throw new Rollback();
    });
  } catch (err) {
    if (!(err instanceof Rollback)) throw err;
  }
  return result as T;
}

/** Takes on a member inside tx exactly as PostgREST does: role authenticated plus the JWT claims. */
export async function actAs(tx: TransactionSql, m: Member): Promise<void> {
  await tx.unsafe("set local role authenticated");
  await tx`select set_config('request.jwt.claims', ${memberClaims(m)}, true)`;
}

/** Milliseconds fn takes, measured on the client, round trips included. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = performance.now();
  const result = await fn();
  return { ms: performance.now() - t0, result };
}

/** The server process behind a connection (or transaction). */
export async function backendPid(sql: Sql | TransactionSql): Promise<number> {
  const [row] = await sql`select pg_backend_pid() as pid`;
  return Number(row.pid);
}

/**
 * A process's time on a CPU and time spent runnable but waiting for one, in ns, from
 * /proc/<pid>/schedstat; null where the kernel does not provide it. On a shared machine the wait
 * says how much of a wall-clock figure was other people's work.
 */
export function schedstat(pid: number): { cpuNs: number; waitNs: number } | null {
  try {
    const [cpu, wait] = Deno.readTextFileSync(`/proc/${pid}/schedstat`).trim().split(/\s+/).map(Number);
    return Number.isFinite(cpu) && Number.isFinite(wait) ? { cpuNs: cpu, waitNs: wait } : null;
  } catch {
    return null;
  }
}

/** schedstat readings of several processes (null where /proc gave none), by pid. */
export type Schedstats = Map<number, { cpuNs: number; waitNs: number } | null>;

export function schedstats(pids: number[]): Schedstats {
  return new Map(pids.map((pid) => [pid, schedstat(pid)]));
}

/**
 * CPU and run-queue wait, in ms, that a set of processes used between two readings, summed. A
 * process first read in `after` (a backend that connected meanwhile) counts from its start.
 * Undefined when a reading is missing or a process of `before` is gone: its share is unknown.
 */
export function cpuBetween(before: Schedstats, after: Schedstats): { cpuMs: number; waitMs: number } | undefined {
  let cpuNs = 0;
  let waitNs = 0;
  for (const [pid, b] of before) if (!b || !after.get(pid)) return undefined;
  for (const [pid, a] of after) {
    if (!a) return undefined;
    const b = before.get(pid);
    cpuNs += a.cpuNs - (b?.cpuNs ?? 0);
    waitNs += a.waitNs - (b?.waitNs ?? 0);
  }
  return { cpuMs: cpuNs / 1e6, waitMs: waitNs / 1e6 };
}

/** The cluster's current WAL position, to measure the WAL a span of work writes (walSince). */
export async function walPosition(sql: Sql): Promise<string> {
  const [row] = await sql`select pg_current_wal_lsn()::text as lsn`;
  return row.lsn as string;
}

/** Bytes of WAL the whole cluster wrote since `lsn`. */
export async function walSince(sql: Sql, lsn: string): Promise<number> {
  const [row] = await sql`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${lsn}::pg_lsn)::float8 as bytes`;
  return Number(row.bytes);
}

export interface BackendTiming<T> {
  ms: number;
  /** CPU time of the backend (parallel workers not included), when /proc allows. */
  cpuMs?: number;
  /** Time the backend was runnable but waiting for a CPU. */
  waitMs?: number;
  result: T;
}

/** Like timed(), plus the CPU and run-queue wait of backend `pid` over the same span. */
export async function timedOnBackend<T>(pid: number, fn: () => Promise<T>): Promise<BackendTiming<T>> {
  const before = schedstat(pid);
  const { ms, result } = await timed(fn);
  const after = schedstat(pid);
  if (!before || !after) return { ms, result };
  return { ms, cpuMs: (after.cpuNs - before.cpuNs) / 1e6, waitMs: (after.waitNs - before.waitNs) / 1e6, result };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Nearest-rank percentile: with 5 samples p95 is the slowest run. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function formatMs(ms: number): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(1)} ms`;
}

/** One statement auto_explain reported during a profiled run: nested statements included. */
export interface ProfiledStatement {
  ms: number;
  query: string;
  plan: string[];
}

/**
 * Runs fn on its own connection with auto_explain (ANALYZE, nested statements, reported to the
 * client as NOTICEs) and returns every statement that took at least minMs, slowest first. The
 * times of nested statements are included in their callers': the deepest slow one is the culprit.
 */
export async function profiled(
  url: string,
  fn: (sql: Sql) => Promise<void>,
  minMs = 5,
): Promise<ProfiledStatement[]> {
  const notices: string[] = [];
  const sql = postgres(url, { max: 1, onnotice: (n) => void notices.push(String(n.message ?? "")) });
  try {
    await sql.unsafe("load 'auto_explain'");
    for (
      const set of [
        `auto_explain.log_min_duration = ${Math.max(0, Math.round(minMs))}`,
        "auto_explain.log_analyze = on",
        "auto_explain.log_buffers = off",
        "auto_explain.log_nested_statements = on",
        "auto_explain.log_level = notice",
        "client_min_messages = notice",
      ]
    ) await sql.unsafe(`set ${set}`);
    await fn(sql);
  } finally {
    await sql.end({ timeout: 1 });
  }
  const out: ProfiledStatement[] = [];
  for (const n of notices) {
    const m = /^duration: ([\d.]+) ms\s+plan:\n([\s\S]*)$/.exec(n);
    if (!m) continue;
    const lines = m[2].split("\n");
    const planAt = lines.findIndex((l) => /\(cost=\d/.test(l));
    const queryLines = (planAt > 0 ? lines.slice(0, planAt) : lines.slice(0, 1)).join(" ");
    out.push({
      ms: Number(m[1]),
      query: queryLines.replace(/^Query Text:\s*/, "").replace(/\s+/g, " ").trim(),
      plan: planAt >= 0 ? lines.slice(planAt) : [],
    });
  }
  return out.sort((a, b) => b.ms - a.ms);
}

/** One line of the results table: a timed case (samples in ms, maybe a target) or a derived figure. */
export type Line =
  | {
    kind: "timing";
    label: string;
    samples: number[];
    /** Backend CPU ms and run-queue wait ms per sample, where measured. */
    cpu?: number[];
    wait?: number[];
    targetMs?: number;
    note?: string;
    error?: string;
    profile?: ProfiledStatement[];
  }
  | { kind: "figure"; label: string; value: string; note?: string }
  /** A table of its own, printed under the suite's: figures derived from several cases. */
  | { kind: "table"; label: string; header: string[]; rows: string[][]; notes?: string[] };

export type TimingLine = Extract<Line, { kind: "timing" }>;

/** One timed run: wall ms, and the backend's CPU and run-queue wait where measured. */
export type Sample = { ms: number; cpuMs?: number; waitMs?: number };

/**
 * Times a case: an untimed warm-up if asked, then `runs` samples, each after `before` (a vacuum,
 * say, outside the timing). The line's note says that a warm-up ran and what it took, so a cold
 * first run left out of the median is never hidden. A warm-up slower than `slowMs` is the only
 * sample: repeating a run far past its target would only cost time. An error ends the case and is
 * shown on its line.
 */
export async function timeCase(
  label: string,
  runs: number,
  once: (i: number) => Promise<Sample>,
  opts: { warmUp?: boolean; before?: () => Promise<void>; slowMs?: number; line?: Partial<TimingLine> } = {},
): Promise<TimingLine> {
  const line: TimingLine = { kind: "timing", label, samples: [], cpu: [], wait: [], ...opts.line };
  const push = (s: Sample) => {
    line.samples.push(s.ms);
    if (s.cpuMs !== undefined) line.cpu!.push(s.cpuMs);
    if (s.waitMs !== undefined) line.wait!.push(s.waitMs);
  };
  try {
    let i = 0;
    if (opts.warmUp) {
      await opts.before?.();
      const s = await once(i++);
      if (opts.slowMs !== undefined && s.ms > opts.slowMs) {
        push(s);
        line.note = `${line.note ? line.note + "; " : ""}1 run only: the first took over ${formatMs(opts.slowMs)}`;
        return line;
      }
      line.note = `${line.note ? line.note + "; " : ""}after 1 warm-up run, not counted (${formatMs(s.ms)})`;
    }
    for (let k = 0; k < runs; k++) {
      await opts.before?.();
      push(await once(i++));
    }
  } catch (err) {
    line.error = err instanceof Error ? err.message.split("\n")[0] : String(err);
  }
  return line;
}

/** The 1, 5 and 15 minute load averages, for the record: other work on the machine skews figures. */
export function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

export function passed(line: Line): boolean | undefined {
  if (line.kind !== "timing") return undefined;
  if (line.error) return false;
  if (line.targetMs === undefined) return undefined;
  // The median decides; p95 is printed beside it so a noisy run is visible, not hidden.
  return median(line.samples) < line.targetMs;
}

export interface SuiteContext {
  cluster: BenchCluster;
  /** Timed runs per case (after one untimed warm-up where the case allows it). */
  runs: number;
  /** Profile a case that missed its target with one more run under auto_explain. */
  profile: boolean;
  log: (s: string) => void;
}

export interface Suite {
  name: string;
  title: string;
  run(ctx: SuiteContext): Promise<Line[]>;
}

function pad(s: string, n: number, right = false): string {
  const len = [...s].length;
  return len >= n ? s : right ? " ".repeat(n - len) + s : s + " ".repeat(n - len);
}

/** Rows as aligned text: the first column left-aligned, those `right` says right-aligned. */
function formatRows(header: string[], rows: string[][], right: (i: number) => boolean): string[] {
  const widths = header.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...r[i]].length)));
  const fmt = (r: string[]) => r.map((c, i) => pad(c, widths[i], i > 0 && right(i))).join("  ").trimEnd();
  return [fmt(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(fmt)];
}

/** Forgets the statements counted so far (--statements: each suite's table starts from zero). */
export async function resetStatements(sql: Sql): Promise<void> {
  await sql`select extensions.pg_stat_statements_reset()`;
}

/**
 * The `top` statements by time (execution plus planning) since resetStatements, as a table line:
 * what a suite's time went to, statements run inside functions and triggers included. Each has its
 * share of the time of the statements clients sent; a nested one's time is also inside its
 * caller's, so shares overlap and are not meant to add up.
 */
export async function statementsLine(sql: Sql, suite: string, top: number): Promise<Line> {
  const rows = await sql<
    {
      toplevel: boolean;
      calls: string;
      total_ms: number;
      plan_ms: number;
      plans: string;
      rows: string;
      share: number;
      query: string;
    }[]
  >`
    with s as (
      select toplevel, calls, total_exec_time + total_plan_time as total_ms, total_plan_time as plan_ms, plans, rows,
             regexp_replace(query, '\\s+', ' ', 'g') as query
      from extensions.pg_stat_statements
      where dbid = (select oid from pg_database where datname = current_database())
        and query !~* 'pg_stat_statements'
    )
    select toplevel, calls::text, total_ms, plan_ms, plans::text, rows::text,
           100 * total_ms / nullif(sum(total_ms) filter (where toplevel) over (), 0) as share, query
    from s
    order by total_ms desc
    limit ${top}`;
  return {
    kind: "table",
    label: `statements of ${suite} by time (pg_stat_statements, --statements ${top}):`,
    header: ["total", "share", "calls", "mean", "planning", "plans", "rows", "statement (> nested)"],
    rows: rows.map((r) => [
      formatMs(r.total_ms),
      `${(r.share ?? 0).toFixed(1)}%`,
      r.calls,
      Number(r.calls) ? `${Math.round((r.total_ms * 1000) / Number(r.calls))} µs` : "-",
      formatMs(r.plan_ms),
      r.plans,
      r.rows,
      (r.toplevel ? "" : "> ") + (r.query.length > 110 ? r.query.slice(0, 107) + "..." : r.query),
    ]),
    notes: [
      "share: of the time of the statements clients sent (top level) in this suite; a nested statement (marked >, " +
      "run by a function or trigger) is also inside its caller's time; mean: per call, planning included",
    ],
  };
}

/** Prints a plain-text table; returns the number of lines that missed their target. */
export function printTable(title: string, lines: Line[], print: (s: string) => void = console.log): number {
  const header = ["case", "runs", "median", "p95", "cpu", "cpu wait", "target", "result"];
  const med = (xs?: number[]) => (xs && xs.length ? formatMs(median(xs)) : "-");
  const rows = lines.flatMap((l) => {
    if (l.kind === "table") return [];
    if (l.kind === "figure") return [[l.label, "", l.value, "", "", "", "", ""]];
    const ok = passed(l);
    return [[
      l.label,
      String(l.samples.length),
      l.samples.length ? formatMs(median(l.samples)) : "-",
      l.samples.length ? formatMs(percentile(l.samples, 95)) : "-",
      med(l.cpu),
      med(l.wait),
      l.targetMs === undefined ? "-" : `< ${formatMs(l.targetMs)}`,
      l.error ? "ERROR" : ok === undefined ? "-" : ok ? "PASS" : "FAIL",
    ]];
  });
  print(`\n${title}`);
  for (const r of formatRows(header, rows, (i) => i < 7)) print(r);
  const notes = lines.filter((l) => l.kind !== "table" && (l.note || (l.kind === "timing" && l.error)));
  if (notes.length) print("");
  for (const l of notes) {
    if (l.kind === "table") continue;
    if (l.note) print(`  ${l.label}: ${l.note}`);
    if (l.kind === "timing" && l.error) print(`  ${l.label}: ERROR ${l.error}`);
  }
  for (const l of lines) {
    if (l.kind !== "timing" || !l.profile) continue;
    print(`\n  profile of one more run of "${l.label}" (auto_explain, slowest first; callers include callees):`);
    for (const st of l.profile.slice(0, 8)) {
      print(`  ${pad(formatMs(st.ms), 9, true)}  ${st.query.length > 150 ? st.query.slice(0, 147) + "..." : st.query}`);
      for (const pl of st.plan.slice(0, 6)) print(`             ${pl}`);
    }
  }
  for (const l of lines) {
    if (l.kind !== "table") continue;
    print(`\n${l.label}`);
    for (const r of formatRows(l.header, l.rows, () => true)) print(r);
    if (l.notes?.length) print("");
    for (const n of l.notes ?? []) print(`  ${n}`);
  }
  return lines.filter((l) => passed(l) === false).length;
}
