// Herald's local stack runner: what `supabase start` does, without Docker (see shared/STACK.md).
//
//   npm start                  everything in the foreground until Ctrl-C; a service that dies is
//                              restarted alone (with a log line and backoff)
//   npm run stack -- up        the same, in the background (its output in <data>/logs/stack.log)
//   npm run stack -- down      stops it, and the database
//   npm run stack -- reset     recreates the database from migrations and seed (like `supabase db
//                              reset`) and empties the sandbox's record; a running stack stays up
//   npm run stack -- status    what is running, where the data is, and the keys
//   npm run stack -- user <email> [--workspace <id>] [--role owner|admin|agent]
//                              a local user (and its membership), and its access token
//
// The data (database cluster, sandbox record, logs) is one directory per checkout: see devDataDir.

import { DEV_PORTS, devDataDir, DENO_BIN, DENO_CONFIG, PG_BIN, ROOT, stackFiles } from "./lib/config.ts";
import { installFunctionPackages, localKeys, missingFunctionPackages, Stack, stackBanner, userToken } from "./lib/stack.ts";
import { ensureDebianPackages, missingFiles, POSTGRES } from "./lib/debian.ts";
import { exists, portInUse, reserveStackPorts, run } from "./lib/proc.ts";
import { red, type Step, steps, stripAnsi, yellow } from "./lib/output.ts";
import type { Supervisor } from "./lib/supervisor.ts";

const dataDir = devDataDir();
const files = stackFiles(dataDir);
const stack = new Stack(DEV_PORTS, files.cluster, false);
const log = (s: string) => console.log(`herald: ${s}`);
const warn = (s: string) => console.error(yellow(`herald: ${s}`));
/** Set for the runner `stack up` detaches: it tells how to stop it, not "Ctrl-C". */
const DETACHED = "HERALD_STACK_DETACHED";
/** Where every checkout's dev cluster used to be. */
const LEGACY_CLUSTER = "/var/tmp/herald/pg-54322";
const READY_LINE = /^(Press Ctrl-C to stop\.|Stop it with: npm run stack -- down)$/m;

// ---- the runner's own record: which process runs this data directory's stack ----------------

interface RunnerRecord {
  pid: number;
  services: Record<string, number>;
}

/** Whether `pid` is a live Deno process running in this checkout (not a recycled pid). */
async function ours(pid: number): Promise<boolean> {
  const cwd = await Deno.readLink(`/proc/${pid}/cwd`).catch(() => null);
  const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => "");
  return cwd === ROOT && cmdline.includes("deno");
}

/** The runner of this data directory's stack, if one is alive. */
async function liveRunner(): Promise<RunnerRecord | null> {
  const text = await Deno.readTextFile(files.runnerPid).catch(() => null);
  if (text === null) return null;
  const record = JSON.parse(text) as RunnerRecord;
  return await ours(record.pid) ? record : null;
}

function writeRunner(services: Record<string, number>): void {
  Deno.writeTextFileSync(files.runnerPid, JSON.stringify({ pid: Deno.pid, services } satisfies RunnerRecord));
}

// ---- first run: what is missing, installed step by step, its output in a log ---------------

/** Installs what is missing and brings the database up, saying what and how far on a first run. */
async function prepare(): Promise<void> {
  await Deno.mkdir(files.logs, { recursive: true });
  const installLog = `${files.logs}/install.log`;
  const todo: { what: string; run: (step: Step) => Promise<void> }[] = [];
  if ((await missingFiles(POSTGRES)).length) {
    todo.push({
      what: `installing ${POSTGRES.what} from Debian`,
      run: (step) => ensureDebianPackages(POSTGRES, log, { logFile: installLog, step }),
    });
  }
  if ((await missingFunctionPackages()).length) {
    todo.push({ what: "fetching the functions' npm packages", run: () => installFunctionPackages(installLog) });
  }
  const created = !(await stack.cluster.initialized());
  if (created && await exists(`${LEGACY_CLUSTER}/PG_VERSION`)) {
    log(`note: ${LEGACY_CLUSTER} is the cluster every checkout shared before; this one now has its own. ` +
      `Stop it if it runs (runuser -u postgres -- ${PG_BIN}/pg_ctl -D ${LEGACY_CLUSTER} stop) and remove it when done.`);
  }
  if (created) {
    todo.push({
      what: `creating the database in ${files.cluster} (Supabase's roles, migrations, seed)`,
      run: () => stack.upDatabase(() => {}).then(() => {}),
    });
  }
  if (todo.length) log(`first run: ${todo.length} thing${todo.length === 1 ? "" : "s"} to set up (details in ${installLog})`);
  const step = steps(todo.length);
  for (const t of todo) {
    const s = step(t.what);
    await t.run(s).catch((err) => {
      s.failed();
      throw err;
    });
    s.done();
  }
  if (!created) await stack.upDatabase(log); // pending migrations, and a start if it is stopped
}

// ---- commands ---------------------------------------------------------------------------------

async function start() {
  await reserveStackPorts();
  const other = await liveRunner();
  if (other) throw new Error(`this stack is already running (pid ${other.pid}); stop it with: npm run stack -- down`);
  let supervisor: Supervisor | null = null;
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    if (!supervisor) Deno.exit(130);
    log("stopping");
    await supervisor.stop();
    await stack.cluster.stop();
    await Deno.remove(files.runnerPid).catch(() => {});
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", shutdown);
  Deno.addSignalListener("SIGTERM", shutdown);

  await prepare();
  writeRunner({});
  const keys = await localKeys();
  supervisor = stack.supervise(keys, {
    cron: true,
    sandboxRecord: files.sandboxRecord,
    database: { resetLock: files.resetLock },
    log: warn,
    onChange: () => writeRunner(supervisor!.pids()),
  });
  try {
    await supervisor.start();
  } catch (err) {
    await stack.cluster.stop();
    await Deno.remove(files.runnerPid).catch(() => {});
    throw err;
  }
  console.log(stackBanner(stack.urls, keys, dataDir));
  console.log(Deno.env.get(DETACHED) ? "Stop it with: npm run stack -- down" : "Press Ctrl-C to stop.");
}

async function up() {
  const other = await liveRunner();
  if (other) {
    log(`already running (pid ${other.pid}); its output is in ${files.logs}/stack.log`);
    return;
  }
  await Deno.mkdir(files.logs, { recursive: true });
  const logFile = `${files.logs}/stack.log`;
  await Deno.writeTextFile(logFile, `\n--- ${new Date().toISOString()} npm run stack -- up\n`, { append: true });
  const from = (await Deno.stat(logFile)).size;
  // The runner itself, in a session of its own, supervising the services as `npm start` does.
  const child = new Deno.Command("setsid", {
    args: ["sh", "-c", 'exec "$0" run -A --config "$1" "$2" start >>"$3" 2>&1', DENO_BIN, DENO_CONFIG, `${ROOT}/scripts/stack.ts`, logFile],
    cwd: ROOT,
    env: { HERALD_DATA_DIR: dataDir, [DETACHED]: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  const ended: { status: Deno.CommandStatus | null } = { status: null };
  child.status.then((s) => ended.status = s);
  // Show what the runner prints (first-run steps, then the banner) until it is up, or has failed.
  const file = await Deno.open(logFile);
  await file.seek(from, Deno.SeekMode.Start);
  const decoder = new TextDecoder();
  let seen = "";
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await file.read(buf);
    if (n) {
      const text = decoder.decode(buf.subarray(0, n), { stream: true });
      Deno.stdout.writeSync(new TextEncoder().encode(text));
      seen += text;
      if (READY_LINE.test(seen)) break;
      continue;
    }
    if (ended.status) {
      file.close();
      throw new Error(`the stack did not start (exit ${ended.status.code}); its output is in ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  file.close();
  log(`running in the background; its output goes to ${logFile}`);
}

async function down() {
  const runner = await liveRunner();
  const record = runner ?? JSON.parse(await Deno.readTextFile(files.runnerPid).catch(() => '{"pid":0,"services":{}}'));
  if (runner) {
    Deno.kill(runner.pid, "SIGTERM");
    const deadline = Date.now() + 15_000;
    while (await ours(runner.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    log(`stopped the stack (pid ${runner.pid})`);
  }
  // Services a runner killed with SIGKILL left behind.
  for (const [name, pid] of Object.entries(record.services as Record<string, number>)) {
    if (await ours(pid)) {
      Deno.kill(pid, "SIGTERM");
      log(`stopped ${name} (pid ${pid}), left behind by a runner that did not stop it`);
    }
  }
  await Deno.remove(files.runnerPid).catch(() => {});
  if (await stack.cluster.running()) {
    await stack.cluster.stop();
    log("database stopped");
  } else if (!runner) {
    log(`nothing of this checkout's stack was running (${dataDir})`);
  }
}

async function reset() {
  await Deno.mkdir(dataDir, { recursive: true });
  // While this file exists, a running stack does not restart the database it sees stop.
  await Deno.writeTextFile(files.resetLock, String(Deno.pid));
  try {
    const wasRunning = await stack.cluster.running();
    await stack.cluster.destroy();
    const runner = await liveRunner();
    if (runner && await portInUse(DEV_PORTS.sandbox)) {
      // The running sandbox empties its memory and its file (it holds the file open).
      const res = await fetch(`${stack.urls.sandbox}/_sandbox/reset`, { method: "POST" });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`the sandbox refused the reset: HTTP ${res.status}`);
    } else {
      await Deno.remove(files.sandboxRecord).catch(() => {});
    }
    await stack.upDatabase(log);
    if (!wasRunning && !runner) await stack.cluster.stop();
  } finally {
    await Deno.remove(files.resetLock).catch(() => {});
  }
  log(`database recreated from supabase/migrations and supabase/seed.sql, sandbox record emptied (${dataDir})`);
}

async function status() {
  const runner = await liveRunner();
  const db = await stack.cluster.running();
  const fns = await portInUse(DEV_PORTS.functions);
  const sandbox = await portInUse(DEV_PORTS.sandbox);
  const u = stack.urls;
  console.log(`runner     ${runner ? `running (pid ${runner.pid})` : "stopped"}`);
  console.log(`database   ${db ? "running" : "stopped"}  ${u.db}`);
  console.log(`functions  ${fns ? "running" : "stopped"}  ${u.functions}`);
  console.log(`sandbox    ${sandbox ? "running" : "stopped"}  ${u.sandbox}`);
  console.log(`data       ${dataDir}`);
  if (db) {
    const r = await run("psql", ["-X", "-t", "-A", "-d", u.db, "-c", "select count(*) from supabase_migrations.schema_migrations"], { check: false });
    console.log(`migrations applied: ${r.stdout.trim()}`);
  }
  const keys = await localKeys();
  console.log(`\nSERVICE_ROLE_KEY=${keys.serviceRole}\nDEMO_USER_TOKEN=${keys.demoUser}`);
}

/** Prints the token alone on stdout (for `$(…)`), and what was done on stderr. */
async function user() {
  // Loaded only here, by a URL Deno cannot see ahead: its npm import (postgres) would otherwise
  // make Deno set up every npm package before `npm start` can say what it is fetching.
  const users: typeof import("./lib/users.ts") = await import(new URL("./lib/users.ts", import.meta.url).href);
  const { ensureLocalUser, parseUserArgs } = users;
  const req = parseUserArgs(Deno.args.slice(1));
  // This checkout's stack by default, or whatever answers on its port (`supabase start` too).
  const dbUrl = req.dbUrl ?? stack.cluster.url;
  const u = await ensureLocalUser(dbUrl, req).catch((err) => {
    if ((err as { code?: string }).code !== "ECONNREFUSED") throw err;
    throw new Error(`nothing answers at ${dbUrl}: start the stack first (npm start, or npm run stack -- up)`);
  });
  const m = u.membership;
  const what = m
    ? m.previousRole === m.role
      ? `, already ${m.role} of "${m.workspaceName}"`
      : m.previousRole
      ? `, now ${m.role} (was ${m.previousRole}) of "${m.workspaceName}"`
      : `, added to "${m.workspaceName}" as ${m.role}`
    : "";
  console.error(`herald: ${u.created ? "created" : "found"} user ${u.email} (id ${u.id})${what}; its access token (valid 7 days):`);
  console.log(await userToken(u));
}

const commands: Record<string, () => Promise<void>> = { start, up, down, reset, status, user };
if (import.meta.main) {
  const cmd = Deno.args[0] ?? "start";
  if (!commands[cmd]) {
    console.error(`usage: npm run stack -- ${Object.keys(commands).join("|")}`);
    Deno.exit(2);
  }
  try {
    await commands[cmd]();
  } catch (err) {
    // A database error's hint says what to do about it.
    const hint = (err as { hint?: string }).hint;
    const message = `${err instanceof Error ? err.message : String(err)}${hint ? ` (${hint})` : ""}`;
    console.error(red(`herald: ${stripAnsi(message)}`));
    Deno.exit(1);
  }
}
