// Every name, port and secret of the local stack, in one place. The dev stack uses Supabase's own
// local ports (so the same URLs work under `supabase start`); the test harness uses its own ports
// and a throwaway cluster so a running dev stack is never touched.

import { resolve } from "node:path";

export const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** Supabase's published local JWT secret: local tokens only, never a deployed project's. */
export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

/** Local Twilio credentials, only ever valid against the sandbox. */
export const LOCAL_TWILIO = {
  accountSid: "ACdeadbeefdeadbeefdeadbeefdeadbeef",
  authToken: "herald-local-twilio-auth-token",
};

export const DEMO_USER = {
  id: "00000000-0000-4000-8000-00000000d3e0",
  email: "demo@herald.local",
};

export interface StackPorts {
  db: number;
  functions: number;
  sandbox: number;
}

export const DEV_PORTS: StackPorts = { db: 54322, functions: 54321, sandbox: 54330 };
export const TEST_PORTS: StackPorts = { db: 54342, functions: 54341, sandbox: 54340 };

export const PG_BIN = "/usr/lib/postgresql/15/bin";

export function dbUrl(port: number): string {
  return `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
}

export function functionsUrl(port: number): string {
  return `http://127.0.0.1:${port}/functions/v1`;
}

/**
 * The dev stack's data directory: its database cluster, the sandbox's record and the logs.
 * HERALD_DATA_DIR when set; else one per checkout, so a second clone never finds the first one's
 * data: `<checkout>/.local/stack`, or, where the postgres user cannot reach the checkout (a home
 * directory such as /root), `/var/tmp/herald/<checkout name>-<hash of its path>`.
 */
export function devDataDir(): string {
  const fromEnv = Deno.env.get("HERALD_DATA_DIR");
  if (fromEnv) return resolve(fromEnv);
  // PostgreSQL runs as the postgres user only when the runner is root (initdb refuses root).
  if (Deno.uid() !== 0 || traversableByAll(ROOT)) return `${ROOT}/.local/stack`;
  return `/var/tmp/herald/${ROOT.split("/").pop()}-${fnv1a(ROOT)}`;
}

/** Whether every directory from / down to `path` lets any user through (o+x). */
function traversableByAll(path: string): boolean {
  const parts = path.split("/").filter(Boolean);
  for (let depth = 0; depth <= parts.length; depth++) {
    const mode = Deno.statSync(`/${parts.slice(0, depth).join("/")}`).mode;
    if (mode === null || (mode & 0o001) === 0) return false;
  }
  return true;
}

/** A short, stable name for a path (FNV-1a, 32 bits). */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(s)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** What the dev stack keeps in its data directory. */
export function stackFiles(dataDir: string) {
  return {
    cluster: `${dataDir}/pg`,
    /** The sandbox's messages, one JSON line per change: it survives restarts as Twilio does. */
    sandboxRecord: `${dataDir}/sandbox/messages.jsonl`,
    logs: `${dataDir}/logs`,
    /** The pid of the runner (`npm start`, or the one `stack up` detaches), for `down` and `reset`. */
    runnerPid: `${dataDir}/runner.pid`,
    /** Present while `stack reset` recreates the database, so the runner does not restart it meanwhile. */
    resetLock: `${dataDir}/reset.lock`,
  };
}

export const SUPABASE_BIN = `${ROOT}/node_modules/.bin/supabase`;
export const DENO_BIN = `${ROOT}/node_modules/.bin/deno`;
export const DENO_CONFIG = `${ROOT}/supabase/functions/deno.json`;
