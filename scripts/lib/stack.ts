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
import { firstFreePort, portInUse, waitForPort } from "./proc.ts";
import { signJwt } from "@herald/shared/jwt.ts";

export interface Keys {
  anon: string;
  serviceRole: string;
  demoUser: string;
}

/** The expiry of Supabase's local demo keys (2032-11-11). */
const DEMO_KEYS_EXP = 1983812996;

/**
 * The anon and service_role keys are fixed strings, as a project's are (and the same ones
 * `supabase start` prints): dispatch compares the service key as a whole, so every process that
 * calls it must hold the very string the functions were given.
 */
export async function localKeys(): Promise<Keys> {
  const iat = Math.floor(Date.now() / 1000);
  return {
    anon: await signJwt({ iss: "supabase-demo", role: "anon", exp: DEMO_KEYS_EXP }, LOCAL_JWT_SECRET),
    serviceRole: await signJwt({ iss: "supabase-demo", role: "service_role", exp: DEMO_KEYS_EXP }, LOCAL_JWT_SECRET),
    demoUser: await signJwt({
      iss: "supabase-demo",
      aud: "authenticated",
      role: "authenticated",
      sub: DEMO_USER.id,
      email: DEMO_USER.email,
      iat,
      exp: iat + 7 * 24 * 3600,
    }, LOCAL_JWT_SECRET),
  };
}

export interface ServiceProcess {
  name: string;
  child: Deno.ChildProcess;
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

  cronEnv(keys: Keys): Record<string, string> {
    return {
      HERALD_DISPATCH_URL: `${this.urls.functions}/dispatch`,
      SUPABASE_SERVICE_ROLE_KEY: keys.serviceRole,
      HERALD_DISPATCH_INTERVAL_MS: Deno.env.get("HERALD_DISPATCH_INTERVAL_MS") ?? "5000",
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

  /**
   * Starts the Twilio sandbox and the functions server as child processes; with `cron`, also the
   * stand-in for the pg_net dispatch job (not in tests, which dispatch when they choose).
   */
  async startServices(
    keys: Keys,
    opts: { logFile?: string; cron?: boolean; functionsOnly?: string[] } = {},
  ): Promise<ServiceProcess[]> {
    for (const [what, port] of [["sandbox", this.ports.sandbox], ["functions", this.ports.functions]] as const) {
      if (await portInUse(port)) throw new Error(`port ${port} (${what}) is taken by another process`);
    }
    // Tests send service output to a log file (printed on failure); `npm start` shows it live.
    const logFile = opts.logFile ? await openLog(opts.logFile) : undefined;
    const spawn = (name: string, script: string, env: Record<string, string>, flags: string[] = []) =>
      spawnDeno(name, script, env, flags, logFile);
    const services = [
      spawn("sandbox", `${ROOT}/sandbox/twilio-sandbox.ts`, {
        TWILIO_ACCOUNT_SID: LOCAL_TWILIO.accountSid,
        TWILIO_AUTH_TOKEN: LOCAL_TWILIO.authToken,
        SANDBOX_PORT: String(this.ports.sandbox),
        SANDBOX_INBOUND_URL: `${this.urls.functions}/twilio-inbound`,
      }),
      spawn("functions", `${ROOT}/scripts/functions-server.ts`, {
        ...this.functionEnv(keys),
        FUNCTIONS_PORT: String(this.ports.functions),
        ...(opts.functionsOnly ? { FUNCTIONS_ONLY: opts.functionsOnly.join(",") } : {}),
      }, [FUNCTIONS_V8_FLAGS]),
    ];
    try {
      await waitForPort(this.ports.sandbox, 60_000);
      await waitForPort(this.ports.functions, 60_000);
    } catch (err) {
      await stopServices(services);
      throw err;
    }
    if (opts.cron) {
      services.push(spawn("local-cron", `${ROOT}/scripts/local-cron.ts`, this.cronEnv(keys)));
    }
    return services;
  }
}

async function openLog(path: string): Promise<Deno.FsFile> {
  await Deno.mkdir(path.replace(/\/[^/]+$/, ""), { recursive: true });
  return await Deno.open(path, { create: true, write: true, truncate: true });
}

/**
 * One of the stack's Deno scripts as a child process, its output to `log` if given, else to ours;
 * with `clearEnv`, `env` is all it sees (nothing inherited from this process).
 */
function spawnDeno(
  name: string,
  script: string,
  env: Record<string, string>,
  flags: string[],
  log?: Deno.FsFile,
  clearEnv = false,
): ServiceProcess {
  const io = log ? "piped" : "inherit";
  const child = new Deno.Command(DENO_BIN, {
    // The new Request.signal behaviour: Herald's handlers never rely on the legacy abort.
    args: ["run", "-A", "--unstable-no-legacy-abort", ...flags, "--config", DENO_CONFIG, script],
    cwd: ROOT,
    env,
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
  return { url: functionsUrl(port), logFile, stop };
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
  await Promise.all(services.map(async ({ child }) => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 5_000);
    await child.status;
    clearTimeout(timer);
  }));
}
