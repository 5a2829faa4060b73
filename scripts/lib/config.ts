// Every name, port and secret of the local stack, in one place. The dev stack uses Supabase's own
// local ports (so the same URLs work under `supabase start`); the test harness uses its own ports
// and a throwaway cluster so a running dev stack is never touched.

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

/** Where the dev cluster lives: outside the checkout, because the postgres user must reach it. */
export function devDataDir(): string {
  return `${Deno.env.get("HERALD_DATA_DIR") ?? "/var/tmp/herald"}/pg-${DEV_PORTS.db}`;
}

export const SUPABASE_BIN = `${ROOT}/node_modules/.bin/supabase`;
export const DENO_BIN = `${ROOT}/node_modules/.bin/deno`;
export const DENO_CONFIG = `${ROOT}/supabase/functions/deno.json`;
