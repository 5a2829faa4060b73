// The served half of the stack for the end-to-end bench cases: the Twilio sandbox and the
// functions server, started exactly as the stack starts them (Stack.startServices, same env as
// Stack.functionEnv gives) against the bench cluster, on ports nothing else listens on. Also the
// helpers those cases share: the process memory of the functions server, signed Twilio webhooks,
// and the sandbox's own record of what it received.

import twilio from "twilio";
import { type Keys, localKeys, type ServiceProcess, Stack, stopServices } from "@herald/scripts/lib/stack.ts";
import { LOCAL_JWT_SECRET, LOCAL_TWILIO } from "@herald/scripts/lib/config.ts";
import { firstFreePort } from "@herald/scripts/lib/proc.ts";
import { signJwt } from "@herald/shared/jwt.ts";
import { statusCallbackParams } from "@herald/sandbox/webhooks.ts";
import { Http1Connection } from "@herald/sandbox/http1.ts";
import type { BenchCluster, Member } from "./lib.ts";

export interface BenchServices {
  /** …/functions/v1, also the public URL Twilio signatures are computed over. */
  functionsUrl: string;
  sandboxUrl: string;
  keys: Keys;
  /** The functions server's process id (the deno process itself), for /proc sampling. */
  functionsPid: number;
  sandboxPid: number;
  /** The stack runner's dispatch stand-in (scripts/local-cron.ts), when started. */
  cronPid: number | null;
  /** Where both services' output goes (printed by the caller on failure). */
  logFile: string;
  stop(): Promise<void>;
}

/** First port at or above `from` that nothing listens on and that is not in `taken`. */
async function freePort(from: number, taken: number[]): Promise<number> {
  let port = from;
  for (;;) {
    port = await firstFreePort(port);
    if (!taken.includes(port)) return port;
    port++;
  }
}

/**
 * Starts the sandbox and the functions server against the bench cluster. The functions server
 * gets what `npm start` gives it (Stack.functionEnv: this cluster's URL, the local JWT secret
 * and keys, the sandbox as TWILIO_API_BASE, its own URL as the public functions URL).
 */
export async function startBenchServices(
  cluster: BenchCluster,
  log: (s: string) => void,
  /** `cronIntervalMs`: also the stack runner's dispatch stand-in, asking on that cadence. */
  opts: { functionsOnly?: string[]; cronIntervalMs?: number } = {},
): Promise<BenchServices> {
  const db = cluster.stack.ports.db;
  const functions = await freePort(54380, [db]);
  const sandbox = await freePort(functions + 1, [db, functions]);
  const stack = new Stack({ db, functions, sandbox }, cluster.stack.cluster.dataDir, true);
  const keys = await localKeys();
  const logFile = `/var/tmp/herald/bench-${Deno.pid}-services-${functions}.log`;
  log(`starting the Twilio sandbox on ${sandbox} and the functions server on ${functions} (log: ${logFile})`);
  const cron = opts.cronIntervalMs !== undefined;
  const services: ServiceProcess[] = await stack.startServices(keys, {
    logFile,
    functionsOnly: opts.functionsOnly,
    cron,
    cronIntervalMs: opts.cronIntervalMs,
  });
  const pid = (name: string) => services.find((s) => s.name === name)!.child.pid;
  // The functions server opens its port before its first database connection: one cheap call
  // through it, so the first timed request does not pay for connecting. (A server limited to
  // other functions answers 404 here; the cases' untimed warm-up run connects it instead.)
  const health = await fetch(`${stack.urls.functions}/health`).catch(() => null);
  await health?.body?.cancel();
  let stopped = false;
  return {
    functionsUrl: stack.urls.functions,
    sandboxUrl: stack.urls.sandbox,
    keys,
    functionsPid: pid("functions"),
    sandboxPid: pid("sandbox"),
    cronPid: cron ? pid("local-cron") : null,
    logFile,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await stopServices(services);
    },
  };
}

/** The last lines of the services' log, for an error message. */
export async function logTail(services: BenchServices, lines = 20): Promise<string> {
  try {
    return (await Deno.readTextFile(services.logFile)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** A signed-in user's JWT as the local gateway accepts it. */
export async function userToken(m: Member): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return await signJwt(
    { sub: m.userId, role: "authenticated", aud: "authenticated", email: m.email, iat, exp: iat + 3600 },
    LOCAL_JWT_SECRET,
  );
}

/** VmRSS and VmHWM (peak RSS over the process's life) in kB, from /proc/<pid>/status. */
export function processMemory(pid: number): { rssKb: number; hwmKb: number } | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    const rssKb = field("VmRSS");
    const hwmKb = field("VmHWM");
    return Number.isFinite(rssKb) && Number.isFinite(hwmKb) ? { rssKb, hwmKb } : null;
  } catch {
    return null;
  }
}

/** Samples a process's VmRSS every `everyMs` until stopped; returns the highest sample seen. */
export function sampleRss(pid: number, everyMs = 5): { stop(): { peakKb: number; samples: number } } {
  let peakKb = processMemory(pid)?.rssKb ?? 0;
  let samples = 1;
  const timer = setInterval(() => {
    const m = processMemory(pid);
    if (m) {
      peakKb = Math.max(peakKb, m.rssKb);
      samples++;
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const m = processMemory(pid);
      if (m) peakKb = Math.max(peakKb, m.rssKb);
      return { peakKb, samples };
    },
  };
}

/** Fields 3 onwards of /proc/<pid>/stat (the command name, which may hold spaces, cut off). */
function statFields(pid: number): string[] {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** Linux reports process times in USER_HZ ticks, 100 a second. */
const TICK_MS = 10;

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat; with
 * `reaped`, also that of the children it has waited for.
 */
export function processCpuMs(pid: number, reaped = false): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0)) * TICK_MS;
}

/** CPU time of a PostgreSQL cluster so far: the postmaster, the backends it has reaped, and those alive. */
export function clusterCpuMs(dataDir: string): number {
  const postmaster = Number(Deno.readTextFileSync(`${dataDir}/postmaster.pid`).split("\n")[0]);
  let ms = processCpuMs(postmaster, true);
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Number(statFields(Number(e.name))[1]) === postmaster) ms += processCpuMs(Number(e.name));
    } catch { /* gone meanwhile */ }
  }
  return ms;
}

/** The whole machine's CPU time so far, busy and in all, in ms summed over its CPUs (/proc/stat). */
export function machineCpuMs(): { busy: number; total: number } {
  const cpu = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  // idle and iowait are the 4th and 5th.
  return { busy: (total - cpu[3] - cpu[4]) * TICK_MS, total: total * TICK_MS };
}

export function mb(kb: number): string {
  return `${(kb / 1024).toFixed(1)} MB`;
}

/** A status callback as the sandbox (and Twilio) posts it: form body, signature, idempotency token. */
export interface SignedCallback {
  body: string;
  signature: string;
  token: string;
}

export function signedStatusCallback(functionsUrl: string, sid: string, status: string): SignedCallback {
  const params = statusCallbackParams({
    sid,
    accountSid: LOCAL_TWILIO.accountSid,
    from: "+15005550006",
    to: "+14155550100",
    status,
  });
  return {
    body: new URLSearchParams(params).toString(),
    signature: twilio.getExpectedTwilioSignature(LOCAL_TWILIO.authToken, `${functionsUrl}/twilio-status`, params),
    token: `${sid}-${status}`,
  };
}

export async function postCallback(functionsUrl: string, cb: SignedCallback): Promise<number> {
  const res = await fetch(`${functionsUrl}/twilio-status`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": cb.signature,
      "i-twilio-idempotency-token": cb.token,
    },
    body: cb.body,
  });
  await res.body?.cancel();
  return res.status;
}

/**
 * A signed status callback as the bytes a kept-alive connection writes (the sandbox's
 * Http1Connection): built before the clock, so the callbacks case pays a load generator's cost
 * per request rather than fetch's. The client shares the machine's two cores with the functions
 * server and PostgreSQL, and fetch spent ~100 µs of them on each callback, which Twilio's own
 * machines spend in production.
 */
export function callbackRequest(functionsUrl: string, cb: SignedCallback): Uint8Array {
  return Http1Connection.post(`${functionsUrl}/twilio-status`, {
    "content-type": "application/x-www-form-urlencoded",
    "x-twilio-signature": cb.signature,
    "i-twilio-idempotency-token": cb.token,
  }, cb.body);
}

/**
 * Runs `worker(i, slot)` for i in 0..n-1 with at most `concurrency` at once; `slot` (0 to
 * concurrency - 1) says which of the concurrent lanes runs it, for a resource each lane keeps.
 */
export async function pool(
  n: number,
  concurrency: number,
  worker: (i: number, slot: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, async (_, slot) => {
    while (next < n) await worker(next++, slot);
  }));
}

export interface DispatchAnswer {
  claimed: number;
  sent: number;
  retried: number;
  failed: number;
  deferred: number;
}

/** POST dispatch with the service role key, as the stack runner (or pg_net) does. */
export async function dispatch(services: BenchServices, limit: number): Promise<DispatchAnswer> {
  const res = await fetch(`${services.functionsUrl}/dispatch`, {
    method: "POST",
    headers: { authorization: `Bearer ${services.keys.serviceRole}`, "content-type": "application/json" },
    body: JSON.stringify({ limit }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`dispatch answered ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text) as DispatchAnswer;
}

export interface SandboxSnapshot {
  messages: {
    sid: string;
    to: string;
    from: string | null;
    body: string;
    num_segments: string;
    status: string;
    received_at_ms: number;
  }[];
  create_requests: { to: string | null; received_at_ms: number; http_status: number; sid: string | null }[];
}

/** The sandbox's own record (messages with received_at_ms, every create request). */
export async function sandboxSnapshot(services: BenchServices): Promise<SandboxSnapshot> {
  const res = await fetch(`${services.sandboxUrl}/_sandbox/messages`);
  if (res.status !== 200) throw new Error(`sandbox answered ${res.status}`);
  return await res.json() as SandboxSnapshot;
}

export async function sandboxReset(services: BenchServices): Promise<void> {
  const res = await fetch(`${services.sandboxUrl}/_sandbox/reset`, { method: "POST" });
  await res.body?.cancel();
}
