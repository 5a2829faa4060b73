// The pieces of Herald's local stack (database, Twilio sandbox, functions) composed for the stack
// runner and the test harness alike; they differ only in ports, data directory and lifetime.

import { Cluster } from "./cluster.ts";
import { ensureDebianPackages, POSTGRES } from "./debian.ts";
import {
  DEMO_USER,
  DENO_BIN,
  DENO_CONFIG,
  functionsUrl,
  LOCAL_JWT_SECRET,
  LOCAL_TWILIO,
  ROOT,
  type StackPorts,
} from "./config.ts";
import { exists, firstFreePort, pause, portInUse, runToLog, stopChild, waitForPort } from "./proc.ts";
import { bold, childColourEnv } from "./output.ts";
import { describeExit, type Service, Supervisor, type SupervisorOptions } from "./supervisor.ts";
import { signJwt } from "@herald/shared/jwt.ts";

export interface Keys {
  anon: string;
  serviceRole: string;
  demoUser: string;
}

/** The expiry of Supabase's local demo keys (2032-11-11). */
const DEMO_KEYS_EXP = 1983812996;
const ONE_WEEK = 7 * 24 * 3600;

/**
 * A signed-in user's access token as the local Supabase issues it (HS256, the local secret):
 * what PostgREST and Herald's functions read (`sub`, `role`, `email`), valid for a week.
 */
export function userToken(user: { id: string; email: string }): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return signJwt({
    iss: "supabase-demo",
    aud: "authenticated",
    role: "authenticated",
    sub: user.id,
    email: user.email,
    iat,
    exp: iat + ONE_WEEK,
  }, LOCAL_JWT_SECRET);
}

/**
 * The anon and service_role keys are fixed strings, as a project's are (and the same ones
 * `supabase start` prints): dispatch compares the service key as a whole, so every process that
 * calls it must hold the very string the functions were given.
 */
export async function localKeys(): Promise<Keys> {
  return {
    anon: await signJwt({ iss: "supabase-demo", role: "anon", exp: DEMO_KEYS_EXP }, LOCAL_JWT_SECRET),
    serviceRole: await signJwt({ iss: "supabase-demo", role: "service_role", exp: DEMO_KEYS_EXP }, LOCAL_JWT_SECRET),
    demoUser: await userToken(DEMO_USER),
  };
}

/** What `npm start` prints once the stack is up. */
export function stackBanner(urls: Stack["urls"], keys: Keys, dataDir: string): string {
  return `
${bold("Herald is running.")}

  Database    ${urls.db}
  Functions   ${urls.functions}/<name>     (try: curl ${urls.functions}/health)
  Sandbox     ${urls.sandbox}               (Twilio stand-in; open it in a browser for the inbox)
  Data        ${dataDir}
              (this checkout's own; start clean with: npm run stack -- reset)

  JWT secret        ${LOCAL_JWT_SECRET}
  anon key          ${keys.anon}
  service_role key  ${keys.serviceRole}
  demo user token   ${keys.demoUser}
                    (demo@herald.local, owner of "Demo Workspace";
                     a token for anyone else: npm run stack -- user <email> --workspace <id>)
`;
}

export interface ServiceProcess {
  name: string;
  child: Deno.ChildProcess;
}

/** One of the stack's own programs, as it is started. */
interface ServiceSpec {
  name: string;
  script: string;
  env: Record<string, string>;
  flags: string[];
  /** The port it listens on, when it listens. */
  port: number | null;
}

export interface ServiceOptions {
  /** Also the stand-in for the pg_net dispatch job (not in tests, which dispatch when they choose). */
  cron?: boolean;
  /** How often the stand-in asks herald.dispatch_fanout; default HERALD_DISPATCH_INTERVAL_MS or 5 s. */
  cronIntervalMs?: number;
  /** Serve only these functions. */
  functionsOnly?: string[];
  /** Where the sandbox keeps its record across restarts; memory only without it. */
  sandboxRecord?: string;
}

export class Stack {
  readonly cluster: Cluster;

  constructor(readonly ports: StackPorts, dataDir: string, readonly throwaway: boolean) {
    this.cluster = new Cluster(dataDir, ports.db);
  }

  get urls() {
    return {
      db: this.cluster.url,
      functions: functionsUrl(this.ports.functions),
      sandbox: `http://127.0.0.1:${this.ports.sandbox}`,
    };
  }

  /** Creates or reuses the cluster, starts it, and brings its schema up to date. */
  async upDatabase(log: (s: string) => void): Promise<{ startedCluster: boolean }> {
    await ensureDebianPackages(POSTGRES, log);
    if (!(await this.cluster.initialized())) {
      log(`creating a PostgreSQL 15 cluster in ${this.cluster.dataDir}`);
      await this.cluster.init({ throwaway: this.throwaway });
    }
    const wasRunning = await this.cluster.running();
    if (!wasRunning) {
      if (await portInUse(this.ports.db)) {
        throw new Error(`port ${this.ports.db} is taken by another process; stop it or choose another port`);
      }
      await this.cluster.start();
    }
    try {
      await this.cluster.bootstrap();
      await this.cluster.migrate();
      await this.cluster.seed();
    } catch (err) {
      // Leave nothing running that this call started: a failed start is a stopped stack.
      if (!wasRunning) await this.cluster.stop();
      throw err;
    }
    return { startedCluster: !wasRunning };
  }

  cronEnv(keys: Keys, intervalMs?: number): Record<string, string> {
    return {
      HERALD_DISPATCH_URL: `${this.urls.functions}/dispatch`,
      SUPABASE_SERVICE_ROLE_KEY: keys.serviceRole,
      HERALD_DB_URL: this.cluster.url,
      HERALD_DISPATCH_INTERVAL_MS: String(intervalMs ?? Deno.env.get("HERALD_DISPATCH_INTERVAL_MS") ?? "5000"),
    };
  }

  functionEnv(keys: Keys): Record<string, string> {
    return {
      SUPABASE_URL: `http://127.0.0.1:${this.ports.functions}`,
      SUPABASE_DB_URL: this.cluster.url,
      SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET,
      SUPABASE_ANON_KEY: keys.anon,
      SUPABASE_SERVICE_ROLE_KEY: keys.serviceRole,
      TWILIO_ACCOUNT_SID: LOCAL_TWILIO.accountSid,
      TWILIO_AUTH_TOKEN: LOCAL_TWILIO.authToken,
      TWILIO_API_BASE: this.urls.sandbox,
      HERALD_FUNCTIONS_URL: this.urls.functions,
    };
  }

  #specs(keys: Keys, opts: ServiceOptions): ServiceSpec[] {
    const specs: ServiceSpec[] = [
      {
        name: "sandbox",
        script: `${ROOT}/sandbox/twilio-sandbox.ts`,
        env: {
          TWILIO_ACCOUNT_SID: LOCAL_TWILIO.accountSid,
          TWILIO_AUTH_TOKEN: LOCAL_TWILIO.authToken,
          SANDBOX_PORT: String(this.ports.sandbox),
          SANDBOX_INBOUND_URL: `${this.urls.functions}/twilio-inbound`,
          ...(opts.sandboxRecord ? { SANDBOX_RECORD: opts.sandboxRecord } : {}),
        },
        flags: [],
        port: this.ports.sandbox,
      },
      {
        name: "functions",
        script: `${ROOT}/scripts/functions-server.ts`,
        env: {
          ...this.functionEnv(keys),
          FUNCTIONS_PORT: String(this.ports.functions),
          ...(opts.functionsOnly ? { FUNCTIONS_ONLY: opts.functionsOnly.join(",") } : {}),
        },
        flags: [FUNCTIONS_V8_FLAGS],
        port: this.ports.functions,
      },
    ];
    if (opts.cron) {
      specs.push({ name: "local-cron", script: `${ROOT}/scripts/local-cron.ts`, env: this.cronEnv(keys, opts.cronIntervalMs), flags: [], port: null });
    }
    return specs;
  }

  async #portsFree(specs: ServiceSpec[]): Promise<void> {
    for (const { name, port } of specs) {
      if (port !== null && await portInUse(port)) {
        throw new Error(`port ${port} (${name}) is taken by another process (another checkout's stack? stop it there)`);
      }
    }
  }

  /**
   * Starts the Twilio sandbox and the functions server as child processes (and the cron stand-in
   * with `cron`), for as long as the caller keeps them: what the tests and benchmarks use.
   */
  async startServices(keys: Keys, opts: ServiceOptions & { logFile?: string } = {}): Promise<ServiceProcess[]> {
    const specs = this.#specs(keys, opts);
    await this.#portsFree(specs);
    // Tests send service output to a log file (printed on failure); otherwise it is shown live.
    const logFile = opts.logFile ? await openLog(opts.logFile) : undefined;
    const spawn = (spec: ServiceSpec) => spawnDeno(spec.name, spec.script, spec.env, spec.flags, logFile);
    const listening = specs.filter((s) => s.port !== null);
    const services = listening.map(spawn);
    try {
      for (const s of listening) await waitForPort(s.port!, 60_000);
    } catch (err) {
      await stopServices(services);
      throw err;
    }
    for (const s of specs.filter((s) => s.port === null)) services.push(spawn(s));
    return services;
  }

  /**
   * The stack under watch, as `npm start` runs it: PostgreSQL, the sandbox, the functions server
   * and (with `cron`) the dispatch stand-in, each restarted alone if it dies. Services run in
   * sessions of their own (setsid), so a Ctrl-C reaches the runner, which stops them in order,
   * rather than every process at once. With `database`, a PostgreSQL that stops is started again,
   * except while `resetLock` exists (`stack reset` is recreating it).
   */
  supervise(
    keys: Keys,
    opts: ServiceOptions & SupervisorOptions & { database?: { resetLock: string } },
  ): Supervisor {
    const specs = this.#specs(keys, opts);
    const services: Service[] = specs.map((spec) => ({
      name: spec.name,
      start: async () => {
        await this.#portsFree([spec]);
        const { child } = spawnDeno(spec.name, spec.script, spec.env, spec.flags, undefined, false, true);
        const exited = child.status.then(describeExit);
        if (spec.port !== null) {
          const gaveUp = new AbortController();
          const ready = await Promise.race([
            waitForPort(spec.port, 60_000, "127.0.0.1", gaveUp.signal).then(() => true),
            exited.then(() => false),
          ]).finally(() => gaveUp.abort()).catch(async (err) => {
            await stopChild(child);
            throw err;
          });
          if (!ready) throw new Error(`it ${await exited} before listening on port ${spec.port}`);
        }
        return { pid: child.pid, exited, stop: () => stopChild(child).then(() => {}) };
      },
    }));
    if (opts.database) services.unshift(this.#databaseService(opts.database.resetLock));
    return new Supervisor(services, opts);
  }

  /** PostgreSQL as a supervised service: started if it is not running, watched every 2 s. */
  #databaseService(resetLock: string): Service {
    const cluster = this.cluster;
    return {
      name: "database",
      start: async () => {
        await cluster.start();
        const watching = new AbortController();
        const exited = (async () => {
          while (await pause(2_000, watching.signal)) {
            if (await exists(resetLock)) continue;
            if (!(await cluster.postmasterAlive())) return "stopped (PostgreSQL is not running)";
          }
          return "is no longer watched";
        })();
        // The runner decides whether to stop PostgreSQL itself (only if it started it).
        return { pid: null, exited, stop: () => (watching.abort(), exited.then(() => {})) };
      },
    };
  }
}

/** The functions' npm packages that are not in supabase/functions/node_modules yet. */
export async function missingFunctionPackages(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(DENO_CONFIG)) as { imports: Record<string, string> };
  const names = Object.values(config.imports).filter((v) => v.startsWith("npm:")).map((v) => v.slice(4).replace(/(.)@.*$/, "$1"));
  const missing = [];
  for (const name of names) if (!(await exists(`${ROOT}/supabase/functions/node_modules/${name}`))) missing.push(name);
  return missing;
}

/**
 * Fetches what the functions, the sandbox and the runner's services import, once, with the
 * output in `logFile`; otherwise each service would fetch on its own first start and print
 * every package it downloads.
 */
export async function installFunctionPackages(logFile: string): Promise<void> {
  const entrypoints = [`${ROOT}/scripts/functions-server.ts`, `${ROOT}/sandbox/twilio-sandbox.ts`, `${ROOT}/scripts/local-cron.ts`];
  for await (const e of Deno.readDir(`${ROOT}/supabase/functions`)) {
    if (e.isDirectory && !/^[_.]|^node_modules$/.test(e.name) && await exists(`${ROOT}/supabase/functions/${e.name}/index.ts`)) {
      entrypoints.push(`${ROOT}/supabase/functions/${e.name}/index.ts`);
    }
  }
  await runToLog(DENO_BIN, ["install", "--config", DENO_CONFIG, "--entrypoint", ...entrypoints], logFile, {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  });
}

async function openLog(path: string): Promise<Deno.FsFile> {
  await Deno.mkdir(path.replace(/\/[^/]+$/, ""), { recursive: true });
  return await Deno.open(path, { create: true, write: true, truncate: true });
}

/**
 * One of the stack's Deno scripts as a child process, its output to `log` if given, else to ours
 * (uncoloured unless ours goes to a terminal); with `clearEnv`, `env` is all it sees (nothing
 * inherited from this process); with `ownSession`, a Ctrl-C at the terminal does not reach it.
 */
function spawnDeno(
  name: string,
  script: string,
  env: Record<string, string>,
  flags: string[],
  log?: Deno.FsFile,
  clearEnv = false,
  ownSession = false,
): ServiceProcess {
  const io = log ? "piped" : "inherit";
  // The new Request.signal behaviour: Herald's handlers never rely on the legacy abort.
  const deno = [DENO_BIN, "run", "-A", "--unstable-no-legacy-abort", ...flags, "--config", DENO_CONFIG, script];
  // setsid execs the program in place (it is not a group leader), so the pid is Deno's own.
  const [cmd, ...args] = ownSession ? ["setsid", ...deno] : deno;
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    env: { ...env, ...(log ? { NO_COLOR: "1" } : childColourEnv()) },
    clearEnv,
    stdin: "null",
    stdout: io,
    stderr: io,
  }).spawn();
  if (log) {
    for (const stream of [child.stdout, child.stderr]) {
      stream.pipeTo(new WritableStream({ write: (chunk) => void log.writeSync(chunk) })).catch(() => {});
    }
  }
  return { name, child };
}

export interface FunctionsServer {
  url: string;
  logFile: string;
  /** The server's own process (the deno process itself). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * A functions server of its own on `port`, with exactly `env` (plus its port): tests run one in
 * another configuration than the stack's (JWKS mode, through a pooler) beside it.
 */
export async function startFunctionsServer(port: number, env: Record<string, string>, logFile: string): Promise<FunctionsServer> {
  if (await portInUse(port)) throw new Error(`port ${port} (functions) is taken by another process`);
  const log = await openLog(logFile);
  const server = spawnDeno("functions", `${ROOT}/scripts/functions-server.ts`, { ...env, FUNCTIONS_PORT: String(port) }, [FUNCTIONS_V8_FLAGS], log, true);
  const stop = async () => {
    await stopServices([server]);
    log.close();
  };
  try {
    await waitForPort(port, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: functionsUrl(port), logFile, pid: server.child.pid, stop };
}

/**
 * Runs `fn` against a database freshly migrated on a throwaway cluster of its own (a free port
 * from `firstPort` up), then removes the cluster: what the generators (`npm run types`,
 * `npm run schema`) need, with no running stack.
 */
export async function withMigratedDatabase<T>(name: string, firstPort: number, fn: (dbUrl: string) => Promise<T>): Promise<T> {
  const stack = new Stack({ db: await firstFreePort(firstPort), functions: 0, sandbox: 0 }, `/var/tmp/herald/${name}-${Deno.pid}`, true);
  try {
    await stack.upDatabase(() => {});
    return await fn(stack.cluster.url);
  } finally {
    await stack.cluster.destroy();
  }
}

/**
 * The functions server runs like an edge worker: memory-bound (Supabase gives a function 256 MB)
 * rather than tuned for peak allocation speed. V8's young generation otherwise grows to 3 × 16 MB
 * semi-spaces and keeps them: a function streaming 100,000 rows (export-queue) peaked at 190 MB
 * of RSS with the default and at 140 MB with 2 MB semi-spaces, at the same speed.
 */
export const FUNCTIONS_V8_FLAGS = "--v8-flags=--max-semi-space-size=2";

export async function stopServices(services: ServiceProcess[]): Promise<void> {
  await Promise.all(services.map(({ child }) => stopChild(child)));
}
