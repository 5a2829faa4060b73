// Shared by the Deno tests that run against the served stack `npm test` starts: database access
// as postgres and as users, users with real signed JWTs, and calls to functions over HTTP.

import postgres from "postgres";
import { signJwt } from "../supabase/functions/_shared/jwt.ts";
import { LOCAL_JWT_SECRET, LOCAL_TWILIO } from "../scripts/lib/config.ts";
import { createTwilioClient } from "../supabase/functions/_shared/twilio.ts";

function need(name: string): string {
  const v = Deno.env.get(name);
  if (!v) throw new Error(`${name} is not set: run these tests through \`npm test\``);
  return v;
}

export const stack = {
  get dbUrl() {
    return need("HERALD_TEST_DB_URL");
  },
  get functionsUrl() {
    return need("HERALD_TEST_FUNCTIONS_URL");
  },
  get sandboxUrl() {
    return need("HERALD_TEST_SANDBOX_URL");
  },
  get serviceRoleKey() {
    return need("HERALD_TEST_SERVICE_ROLE_KEY");
  },
};

/** A postgres.js pool as the postgres role; close it with `await sql.end()` at the end of a test. */
export function connect(max = 4): postgres.Sql {
  return postgres(stack.dbUrl, { max, onnotice: () => {} });
}

export interface TestUser {
  id: string;
  email: string;
  token: string;
}

export async function createUser(sql: postgres.Sql, label: string): Promise<TestUser> {
  const email = `${label}-${crypto.randomUUID().slice(0, 8)}@test.local`;
  const [{ id }] = await sql`
    insert into auth.users (id, aud, role, email) values (gen_random_uuid(), 'authenticated', 'authenticated', ${email})
    returning id::text`;
  const iat = Math.floor(Date.now() / 1000);
  const token = await signJwt(
    { sub: id, role: "authenticated", aud: "authenticated", email, iat, exp: iat + 3600 },
    LOCAL_JWT_SECRET,
  );
  return { id, email, token };
}

/** Runs fn as the user, the way PostgREST and Herald's functions do (role + JWT claims). */
export function asUser<T>(sql: postgres.Sql, user: TestUser, fn: (tx: postgres.TransactionSql) => Promise<T>) {
  return sql.begin(async (tx) => {
    const claims = JSON.stringify({ sub: user.id, role: "authenticated", email: user.email });
    await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true)`;
    return await fn(tx);
  }) as Promise<T>;
}

export async function createWorkspace(sql: postgres.Sql, owner: TestUser, name = "Test Co", tz = "UTC") {
  return await asUser(sql, owner, async (tx) => {
    const [{ id }] = await tx`select public.create_workspace(${name}, ${tz})::text as id`;
    return id as string;
  });
}

/** A random, valid, non-magic E.164 number. */
export function phone(): string {
  return `+1415${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
}

export async function callFunction(
  name: string,
  opts: { token?: string; body?: unknown; method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown; text: string }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${stack.functionsUrl}/${name}`, {
    method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
    headers,
    body: opts.body === undefined ? undefined : typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body, text };
}

/** The real twilio client pointed at the test stack's sandbox. */
export function sandboxClient() {
  return createTwilioClient({ ...LOCAL_TWILIO, apiBase: stack.sandboxUrl });
}

/** Polls until check() returns a truthy value, or throws with the last value after timeoutMs. */
export async function waitFor<T>(what: string, check: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A workspace with an owner and a default SMS sender, ready to send. */
export async function sendingWorkspace(sql: postgres.Sql, opts: { mps?: number; retryBaseSeconds?: number } = {}) {
  const owner = await createUser(sql, "owner");
  const workspaceId = await createWorkspace(sql, owner);
  // Quiet hours off (start = end) so tests send whatever the wall clock says.
  await sql`update workspaces set quiet_hours_start = '00:00', quiet_hours_end = '00:00',
            retry_base_seconds = ${opts.retryBaseSeconds ?? 60} where id = ${workspaceId}`;
  const [{ id: senderId }] = await sql`
    insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
    values (${workspaceId}, 'sms', '+15005550006', 'connected', ${opts.mps ?? 100}, true) returning id::text`;
  return { owner, workspaceId, senderId };
}

export async function dispatchOnce(limit = 200) {
  const res = await callFunction("dispatch", { token: stack.serviceRoleKey, body: { limit } });
  if (res.status !== 200) throw new Error(`dispatch answered ${res.status}: ${res.text}`);
  return res.body as { claimed: number; sent: number; retried: number; failed: number; deferred: number };
}

export interface SandboxRecord {
  messages: { sid: string; to: string; from: string | null; body: string; status: string; direction: string }[];
  create_requests_by_to: Record<string, number>;
}

export async function sandboxRecord(): Promise<SandboxRecord> {
  const res = await fetch(`${stack.sandboxUrl}/_sandbox/messages`);
  return await res.json();
}
