// npm run bench: boots a throwaway cluster, runs the benchmark suites and prints one table per
// suite with median, p95, target and PASS/FAIL. A missed target is reported, not fatal, unless
// --strict is given.
//
//   npm run bench                        every suite
//   npm run bench -- deletion            only the suites whose name contains "deletion"
//   npm run bench -- --runs 9 --strict   more runs per case; exit 1 on a missed target
//   npm run bench -- --list              the suite names
//   npm run bench -- --profile           re-run each missed case under auto_explain and print
//                                        the slowest statements, triggers' statements included
//   npm run bench -- --with fix.sql      apply fix.sql after the migrations (measure a proposal)
//   npm run bench -- --keep              leave the loaded cluster running for a look with psql
//   npm run bench -- --statements [N]    after each suite, its N (default 15) costliest statements
//                                        by pg_stat_statements, nested ones included
//   HERALD_BENCH_PEERS_JOBS=10000 npm run bench -- peers
//                                        the peers suite on a smaller drain (default 100,000)
//   HERALD_BENCH_SENDING=callbacks,e2e npm run bench -- sending
//                                        only those cases of the sending suite (claim, queue, e2e,
//                                        callbacks, mps; fanout for the sending-fanout suite)
//
// Adding a suite: export a Suite from bench/<topic>.ts and list it in SUITES below.

import { bootBenchCluster, loadAverage, printTable, resetStatements, statementsLine, type Suite } from "./lib.ts";
import { deletionSuite, purgeSuite } from "./deletion.ts";
import { fanoutSuite, sendingSuite } from "./sending.ts";
import { queueSuite } from "./queue.ts";
import { peersSuite } from "./peers.ts";
import { faultsSuite } from "./faults.ts";
import { firstFreePort } from "@herald/scripts/lib/proc.ts";

/** The first port a bench cluster tries; another checkout's bench may hold it, then the next free one. */
export const BENCH_PORT = 54362;

// faults last: it crashes and restarts the cluster the others measure.
export const SUITES: Suite[] = [deletionSuite, purgeSuite, sendingSuite, fanoutSuite, queueSuite, peersSuite, faultsSuite];

interface Options {
  filters: string[];
  strict: boolean;
  runs: number;
  list: boolean;
  profile: boolean;
  keep: boolean;
  extraSql: string[];
  /** Statements to list after each suite (--statements); 0 for none. */
  statements: number;
}

function parseArgs(args: string[]): Options {
  const o: Options = {
    filters: [],
    strict: false,
    runs: 5,
    list: false,
    profile: false,
    keep: false,
    extraSql: [],
    statements: 0,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--strict") o.strict = true;
    else if (a === "--list") o.list = true;
    else if (a === "--profile") o.profile = true;
    else if (a === "--keep") o.keep = true;
    else if (a === "--statements" || a.startsWith("--statements=")) {
      const v = a.includes("=") ? a.slice("--statements=".length) : /^\d+$/.test(args[i + 1] ?? "") ? args[++i] : "15";
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 200) {
        throw new Error(`--statements wants a whole number from 1 to 200, not ${v}`);
      }
      o.statements = n;
    }
    else if (a === "--with" || a.startsWith("--with=")) {
      const v = a.includes("=") ? a.slice("--with=".length) : args[++i];
      if (!v) throw new Error("--with wants a SQL file");
      o.extraSql.push(v.startsWith("/") ? v : `${Deno.cwd()}/${v}`);
    } else if (a === "--runs" || a.startsWith("--runs=")) {
      const v = a.includes("=") ? a.slice("--runs=".length) : args[++i];
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 100) {
        throw new Error(`--runs wants a whole number from 1 to 100, not ${v}`);
      }
      o.runs = n;
    } else if (a.startsWith("-")) {
      throw new Error(
        `unknown option ${a} (known: --runs N, --strict, --profile, --with FILE, --keep, --statements [N], --list)`,
      );
    } else o.filters.push(a);
  }
  return o;
}

async function main(): Promise<number> {
  const opts = parseArgs(Deno.args);
  if (opts.list) {
    for (const s of SUITES) console.log(`${s.name}\t${s.title}`);
    return 0;
  }
  const suites = opts.filters.length ? SUITES.filter((s) => opts.filters.some((f) => s.name.includes(f))) : SUITES;
  if (suites.length === 0) {
    console.error(`no suite matches ${opts.filters.join(", ")}; suites: ${SUITES.map((s) => s.name).join(", ")}`);
    return 2;
  }

  const log = (s: string) => console.log(`bench: ${s}`);
  const port = await firstFreePort(BENCH_PORT, 1, 10);
  log(`booting a throwaway PostgreSQL cluster on port ${port}`);
  const cluster = await bootBenchCluster(port, log, opts.extraSql, opts.statements > 0);
  let missed = 0;
  let errors = 0;
  try {
    const st = cluster.settings;
    console.log(
      `\ncluster: PostgreSQL ${st.server_version}, throwaway: fsync=${st.fsync}, synchronous_commit=${st.synchronous_commit}, ` +
        `full_page_writes=${st.full_page_writes} (durable commits would add fsync latency per commit; the ` +
        `single-transaction RPCs pay it once, the row-by-row naive runs once per row), shared_buffers=${st.shared_buffers}, ` +
        `work_mem=${st.work_mem}, jit=${st.jit}; ${navigator.hardwareConcurrency} CPU(s), load average ${loadAverage()}`,
    );
    if (opts.extraSql.length) console.log(`with, after the migrations: ${opts.extraSql.join(", ")}`);
    console.log(
      `runs: ${opts.runs} timed per case (heavy and naive cases: at most 3); a case that runs one warm-up first ` +
        "says so in its note, with that run's time, and the others count every run; " +
        "PASS = median wall time under target; p95 is nearest-rank; cpu = the server backend's CPU time and " +
        "cpu wait = its time runnable but waiting for a CPU (medians, from /proc/<pid>/schedstat; parallel workers not counted)",
    );
    for (const suite of suites) {
      if (opts.statements) await resetStatements(cluster.sql);
      const lines = await suite.run({ cluster, runs: opts.runs, profile: opts.profile, log });
      if (opts.statements) lines.push(await statementsLine(cluster.sql, suite.name, opts.statements));
      missed += printTable(`== ${suite.name}: ${suite.title}`, lines);
      errors += lines.filter((l) => l.kind === "timing" && l.error).length;
    }
  } finally {
    if (opts.keep) {
      await cluster.sql.end({ timeout: 1 });
      console.log(
        `\nkept: psql ${cluster.url}  (data in ${cluster.stack.cluster.dataDir}; remove with ` +
          `pg_ctl -D ${cluster.stack.cluster.dataDir} stop and rm -rf)`,
      );
    } else await cluster.destroy();
  }
  console.log(`\nload average at the end: ${loadAverage()} (other work on this machine skews the figures)`);
  console.log(
    `${missed ? `${missed} target(s) missed` : "all targets met"}${opts.strict ? "" : " (not failing: no --strict)"}`,
  );
  return errors ? 1 : opts.strict && missed ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
