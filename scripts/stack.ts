// Herald's local stack runner: what `supabase start` does, without Docker (see shared/STACK.md).
//
//   npm start                    everything in the foreground until Ctrl-C, then stops what it started
//   npm run stack -- up          database + sandbox + functions in the background
//   npm run stack -- down        stops all of it
//   npm run stack -- reset       recreates the database from migrations and seed (like `supabase db reset`)
//   npm run stack -- status      what is running

import { DEV_PORTS, devDataDir, DENO_BIN, DENO_CONFIG, ROOT } from "./lib/config.ts";
import { FUNCTIONS_V8_FLAGS, localKeys, type Keys, Stack, stopServices } from "./lib/stack.ts";
import { portInUse, run, waitForPort } from "./lib/proc.ts";

const stack = new Stack(DEV_PORTS, devDataDir(), false);
const stateDir = devDataDir().replace(/\/[^/]+$/, "");
const pidFile = `${stateDir}/services.json`;
const log = (s: string) => console.log(`herald: ${s}`);

function banner(keys: Keys) {
  const u = stack.urls;
  console.log(`
Herald is running.

  Database    ${u.db}
  Functions   ${u.functions}/<name>     (try: curl ${u.functions}/health)
  Sandbox     ${u.sandbox}               (Twilio stand-in; open it in a browser for the inbox)

  JWT secret        super-secret-jwt-token-with-at-least-32-characters-long
  anon key          ${keys.anon}
  service_role key  ${keys.serviceRole}
  demo user token   ${keys.demoUser}
                    (demo@herald.local, owner of "Demo Workspace")
`);
}

async function start() {
  const { startedCluster } = await stack.upDatabase(log);
  const keys = await localKeys();
  const services = await stack.startServices(keys, { cron: true });
  banner(keys);
  console.log("Press Ctrl-C to stop.");
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    log("stopping");
    await stopServices(services);
    if (startedCluster) await stack.cluster.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", shutdown);
  Deno.addSignalListener("SIGTERM", shutdown);
  // A service that dies on its own takes the stack down with it: a half-running stack misleads.
  const first = await Promise.race(services.map(async (s) => ({ s, status: await s.child.status })));
  if (!stopping) {
    console.error(`herald: ${first.s.name} exited with code ${first.status.code}; stopping the stack`);
    await shutdown();
  }
}

async function up() {
  await stack.upDatabase(log);
  if (await portInUse(DEV_PORTS.functions)) {
    log("services already running");
    return;
  }
  const keys = await localKeys();
  const env = stack.functionEnv(keys);
  const pids: Record<string, number> = {};
  const spawnDetached = (name: string, script: string, extra: Record<string, string>, flags = "") => {
    const logPath = `${stateDir}/${name}.log`;
    const child = new Deno.Command("setsid", {
      args: [
        "sh",
        "-c",
        `exec "$0" run -A --unstable-no-legacy-abort ${flags} --config "$1" "$2" >>"$3" 2>&1`,
        DENO_BIN,
        DENO_CONFIG,
        script,
        logPath,
      ],
      cwd: ROOT,
      env: { ...env, ...extra },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.unref();
    pids[name] = child.pid;
  };
  spawnDetached("sandbox", `${ROOT}/sandbox/twilio-sandbox.ts`, {
    SANDBOX_PORT: String(DEV_PORTS.sandbox),
    SANDBOX_INBOUND_URL: `${stack.urls.functions}/twilio-inbound`,
  });
  spawnDetached("functions", `${ROOT}/scripts/functions-server.ts`, { FUNCTIONS_PORT: String(DEV_PORTS.functions) },
    FUNCTIONS_V8_FLAGS);
  await Deno.writeTextFile(pidFile, JSON.stringify(pids));
  await waitForPort(DEV_PORTS.sandbox, 60_000);
  await waitForPort(DEV_PORTS.functions, 60_000);
  spawnDetached("local-cron", `${ROOT}/scripts/local-cron.ts`, stack.cronEnv(keys));
  await Deno.writeTextFile(pidFile, JSON.stringify(pids));
  banner(keys);
  log(`logs in ${stateDir}/*.log; stop with: npm run stack -- down`);
}

async function down() {
  try {
    const pids = JSON.parse(await Deno.readTextFile(pidFile)) as Record<string, number>;
    for (const [name, pid] of Object.entries(pids)) {
      try {
        Deno.kill(pid, "SIGTERM");
        log(`stopped ${name}`);
      } catch { /* already gone */ }
    }
    await Deno.remove(pidFile);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await stack.cluster.stop();
  log("database stopped");
}

async function reset() {
  const wasRunning = await stack.cluster.running();
  await stack.cluster.destroy();
  await stack.upDatabase(log);
  if (!wasRunning) await stack.cluster.stop();
  log("database recreated from supabase/migrations and supabase/seed.sql");
}

async function status() {
  const db = await stack.cluster.running();
  const fns = await portInUse(DEV_PORTS.functions);
  const sandbox = await portInUse(DEV_PORTS.sandbox);
  const u = stack.urls;
  console.log(`database   ${db ? "running" : "stopped"}  ${u.db}`);
  console.log(`functions  ${fns ? "running" : "stopped"}  ${u.functions}`);
  console.log(`sandbox    ${sandbox ? "running" : "stopped"}  ${u.sandbox}`);
  if (db) {
    const r = await run("psql", ["-X", "-t", "-A", "-d", u.db, "-c", "select count(*) from supabase_migrations.schema_migrations"], { check: false });
    console.log(`migrations applied: ${r.stdout.trim()}`);
  }
  const keys = await localKeys();
  console.log(`\nSERVICE_ROLE_KEY=${keys.serviceRole}\nDEMO_USER_TOKEN=${keys.demoUser}`);
}

const commands: Record<string, () => Promise<void>> = { start, up, down, reset, status };
const cmd = Deno.args[0] ?? "start";
if (!commands[cmd]) {
  console.error(`usage: npm run stack -- ${Object.keys(commands).join("|")}`);
  Deno.exit(2);
}
try {
  await commands[cmd]();
} catch (err) {
  console.error(`herald: ${err instanceof Error ? err.message : String(err)}`);
  Deno.exit(1);
}
