// The peers' half of `npm run bench -- peers`: pg-boss or graphile-worker draining due jobs, run
// by Node 22 (node_modules/.bin/node, from the `node` dev dependency: both libraries need Node
// >= 22) and driven by bench/peers.ts over stdin and stdout, one line each way per step:
//
//   -> {"event":"ready"}   the jobs are loaded through the library's own bulk insert, and every
//                          connection the run uses is open (so the bench reads their CPU first)
//   <- go
//   -> {"event":"done","ms":…,"jobs":…,"fetches":…}
//   <- stop                (once the bench has read the connections' CPU again)
//
// The argument is a JSON PeerConfig. Each library is used the way its authors run it fast: pg-boss
// through fetch({ batchSize }) and complete(ids) in a loop per worker; graphile-worker through its
// own worker pools with batching on (localQueue, completeJobBatchDelay: 0), the configuration of
// its published performance figures. Types are checked (by `deno check`) against the versions
// package.json pins; Node erases the type imports and loads the installed packages.

// Inline npm: specifiers, for types only: Node cannot resolve them (it never sees them: type
// imports are erased) and the import map in supabase/functions/deno.json does not list the peers.
// deno-lint-ignore no-import-prefix
import type * as PgBossModule from "npm:pg-boss@12.38.0";
// deno-lint-ignore no-import-prefix
import type * as GraphileWorkerModule from "npm:graphile-worker@0.18.0";
// deno-lint-ignore no-import-prefix
import type * as PgModule from "npm:pg@8.23.1";
import { EventEmitter } from "node:events";
import process from "node:process";
import { createInterface } from "node:readline";

export interface PeerConfig {
  system: "pg-boss" | "graphile-worker";
  url: string;
  /** Every connection the run opens carries it, so the bench finds their backends. */
  applicationName: string;
  /** pg-boss's queue, graphile-worker's task identifier: one per run. */
  queue: string;
  jobs: number;
  workers: number;
  batch: number;
}

export type PeerMessage =
  | { event: "ready" }
  | { event: "done"; ms: number; jobs: number; fetches: number }
  | { event: "error"; message: string };

interface Drain {
  /** Drains every job; returns how many ran and how many fetches it took. */
  run(): Promise<{ jobs: number; fetches: number }>;
  close(): Promise<void>;
}

/** Jobs are inserted this many at a time (one statement each, as both libraries do a batch). */
const INSERT_CHUNK = 10_000;
/** graphile-worker's published high-throughput setting: jobs run at once per worker pool. */
const GRAPHILE_CONCURRENCY = 24;
/** Connections per graphile-worker pool: its LISTEN, a fetch and a completion in flight at once. */
const GRAPHILE_POOL = 3;

// A specifier in a variable: Deno does not resolve it (it checks the npm: types above); Node
// loads the package from node_modules.
function load<T>(specifier: string): Promise<T> {
  return import(specifier) as Promise<T>;
}

function chunks(n: number): { from: number; to: number }[] {
  const out = [];
  for (let from = 0; from < n; from += INSERT_CHUNK) out.push({ from, to: Math.min(n, from + INSERT_CHUNK) });
  return out;
}

async function pgBoss(cfg: PeerConfig): Promise<Drain> {
  const { PgBoss } = await load<typeof PgBossModule>("pg-boss");
  // No maintenance, cron or instance registry: their timers would run queries of their own.
  const boss = new PgBoss({
    connectionString: cfg.url,
    application_name: cfg.applicationName,
    max: cfg.workers,
    supervise: false,
    schedule: false,
    registerInstance: false,
  });
  boss.on("error", (err) => fail(err));
  await boss.start();
  await boss.createQueue(cfg.queue);
  for (const { from, to } of chunks(cfg.jobs)) {
    await boss.insert(cfg.queue, Array.from({ length: to - from }, (_, k) => ({ data: { n: from + k } })));
  }
  // One statement per connection at once, so the pool opens all of them now.
  await Promise.all(Array.from({ length: cfg.workers }, () => boss.getDb().executeSql("select pg_sleep(0.05)")));
  return {
    run: async () => {
      let jobs = 0;
      let fetches = 0;
      await Promise.all(Array.from({ length: cfg.workers }, async () => {
        for (;;) {
          const batch = await boss.fetch(cfg.queue, { batchSize: cfg.batch });
          fetches++;
          if (batch.length === 0) return;
          await boss.complete(cfg.queue, batch.map((j) => j.id));
          jobs += batch.length;
        }
      }));
      return { jobs, fetches };
    },
    close: () => boss.stop({ graceful: false }),
  };
}

async function graphileWorker(cfg: PeerConfig): Promise<Drain> {
  const worker = await load<typeof GraphileWorkerModule>("graphile-worker");
  const { default: pg } = await load<{ default: typeof PgModule }>("pg");
  const quiet = new worker.Logger(() => () => {});
  await worker.runMigrations({ connectionString: cfg.url, logger: quiet });
  const utils = await worker.makeWorkerUtils({ connectionString: cfg.url, logger: quiet });
  try {
    for (const { from, to } of chunks(cfg.jobs)) {
      await utils.addJobs(Array.from({ length: to - from }, (_, k) => ({ identifier: cfg.queue, payload: { n: from + k } })));
    }
  } finally {
    await utils.release();
  }
  // Pools of our own (a pool passed in is not closed by the worker), opened in full up front and
  // never closing an idle connection, so every backend of the run is there before and after it.
  const pools = Array.from({ length: cfg.workers }, () =>
    new pg.Pool({
      connectionString: cfg.url,
      application_name: cfg.applicationName,
      max: GRAPHILE_POOL,
      idleTimeoutMillis: 0,
    }));
  for (const pool of pools) {
    const clients = await Promise.all(Array.from({ length: GRAPHILE_POOL }, () => pool.connect()));
    for (const c of clients) c.release();
  }
  return {
    run: async () => {
      let jobs = 0;
      let fetches = 0;
      let allDone: () => void = () => {};
      const finished = new Promise<void>((resolve) => (allDone = resolve));
      const events: GraphileWorkerModule.WorkerEvents = new EventEmitter();
      events.on("job:success", () => {
        if (++jobs === cfg.jobs) allDone();
      });
      events.on("localQueue:getJobs:complete", () => void fetches++);
      const runners = await Promise.all(pools.map((pgPool) =>
        worker.run({
          pgPool,
          logger: quiet,
          events,
          noHandleSignals: true,
          concurrency: GRAPHILE_CONCURRENCY,
          taskList: { [cfg.queue]: async () => {} },
          preset: {
            worker: { localQueue: { size: cfg.batch }, completeJobBatchDelay: 0, failJobBatchDelay: 0 },
          },
        })
      ));
      await finished;
      // A graceful stop releases the last completion batches: the run ends when they are in.
      await Promise.all(runners.map((r) => r.stop()));
      return { jobs, fetches };
    },
    close: async () => {
      await Promise.all(pools.map((p) => p.end()));
    },
  };
}

function send(m: PeerMessage) {
  process.stdout.write(JSON.stringify(m) + "\n");
}

function fail(err: unknown): never {
  send({ event: "error", message: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}

async function main() {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as PeerConfig;
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const expect = async (word: string) => {
    const { value, done } = await lines.next();
    if (done || value.trim() !== word) throw new Error(`expected "${word}" from the bench, got ${done ? "end of input" : value}`);
  };
  const drain = cfg.system === "pg-boss" ? await pgBoss(cfg) : await graphileWorker(cfg);
  send({ event: "ready" });
  await expect("go");
  const t0 = performance.now();
  const r = await drain.run();
  send({ event: "done", ms: performance.now() - t0, ...r });
  await expect("stop");
  await drain.close();
  process.exit(0);
}

main().catch(fail);
