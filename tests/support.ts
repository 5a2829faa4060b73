// Shared by the Deno tests that run against the served stack `npm test` starts: database access
// as postgres and as users, users with real signed JWTs, and calls to functions over HTTP.

import postgres from "postgres";
import twilio from "twilio";
import { signJwt } from "@herald/shared/jwt.ts";
import { LOCAL_JWT_SECRET, LOCAL_TWILIO } from "@herald/scripts/lib/config.ts";
import { createTwilioClient } from "@herald/shared/twilio.ts";
import { newSid } from "@herald/shared/sids.ts";
import type { CreateRequestRecord } from "@herald/sandbox/record.ts";

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

/**
 * A zone where it is early afternoon now. Marketing (sequence steps, the lead queue) obeys the
 * legal hours in the recipient's zone; a test that sends it with the real clock gives its
 * contacts this zone, so it passes at any hour. The legal hours themselves are tested with
 * fixed clocks in pgTAP.
 */
export function daytimeZone(now = new Date()): string {
  const offset = 13 - now.getUTCHours(); // hours ahead of UTC: -10 … +13, all of them Etc zones
  return offset === 0 ? "Etc/GMT" : `Etc/GMT${offset > 0 ? "-" : "+"}${Math.abs(offset)}`; // Etc signs are inverted
}

/** A random, valid, non-magic E.164 number. */
export function phone(): string {
  return `+1415${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
}

export async function callFunction(
  name: string,
  opts: {
    token?: string;
    body?: unknown;
    method?: string;
    headers?: Record<string, string>;
    /** Another functions server than the stack's (…/functions/v1). */
    functionsUrl?: string;
    signal?: AbortSignal;
  } = {},
): Promise<{ status: number; body: unknown; text: string }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${opts.functionsUrl ?? stack.functionsUrl}/${name}`, {
    method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
    headers,
    body: opts.body === undefined ? undefined : typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body),
    signal: opts.signal,
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
  return { owner, workspaceId, ...await addSender(sql, workspaceId, opts.mps) };
}

/** A default SMS sender with a number of its own (a number belongs to one workspace). */
export async function addSender(sql: postgres.Sql, workspaceId: string, mps = 100) {
  const senderNumber = senderPhone();
  const [{ id: senderId }] = await sql`
    insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
    values (${workspaceId}, 'sms', ${senderNumber}, 'connected', ${mps}, true) returning id::text`;
  return { senderId: senderId as string, senderNumber };
}

/** One dispatcher call that claims once (budget 0), as a test steps through sending. */
export async function dispatchOnce(limit = 200) {
  const res = await callFunction("dispatch", { token: stack.serviceRoleKey, body: { limit, budget_seconds: 0 } });
  if (res.status !== 200) throw new Error(`dispatch answered ${res.status}: ${res.text}`);
  return res.body as { claimed: number; sent: number; retried: number; failed: number; deferred: number };
}

export interface SandboxRecord {
  messages: {
    sid: string;
    to: string;
    from: string | null;
    body: string;
    status: string;
    direction: string;
    num_segments: string;
    received_at_ms: number;
  }[];
  create_requests_by_to: Record<string, number>;
  /** Every create request, in order, with what it asked for beyond a Body. */
  create_requests: CreateRequestRecord[];
}

export async function sandboxRecord(): Promise<SandboxRecord> {
  const res = await fetch(`${stack.sandboxUrl}/_sandbox/messages`);
  return await res.json();
}

/** Twilio's signature of a webhook call to `${functionsUrl}/${name}`, with the local auth token by default. */
export function twilioSignature(
  name: string,
  params: Record<string, string>,
  authToken = LOCAL_TWILIO.authToken,
  functionsUrl = stack.functionsUrl,
): string {
  return twilio.getExpectedTwilioSignature(authToken, `${functionsUrl}/${name}`, params);
}

export interface WebhookCall {
  /** The X-Twilio-Signature header: default a valid one; null sends none. */
  signature?: string | null;
  /** Twilio's I-Twilio-Idempotency-Token header, if any. */
  idempotencyToken?: string;
  /** A raw body and its content type instead of the form-encoded params. */
  raw?: { body: string; contentType: string };
  /** Another functions server than the stack's (…/functions/v1): called, and signed for. */
  functionsUrl?: string;
}

/** Posts a Twilio webhook (form-encoded and signed, as Twilio does) to one of the functions. */
export async function postTwilioWebhook(name: string, params: Record<string, string>, call: WebhookCall = {}) {
  const headers: Record<string, string> = {
    "content-type": call.raw?.contentType ?? "application/x-www-form-urlencoded",
  };
  const functionsUrl = call.functionsUrl ?? stack.functionsUrl;
  const signature = call.signature === undefined ? twilioSignature(name, params, undefined, functionsUrl) : call.signature;
  if (signature !== null) headers["x-twilio-signature"] = signature;
  if (call.idempotencyToken) headers["i-twilio-idempotency-token"] = call.idempotencyToken;
  const res = await fetch(`${functionsUrl}/${name}`, {
    method: "POST",
    headers,
    body: call.raw?.body ?? new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* TwiML or plain text */ }
  return { status: res.status, contentType: res.headers.get("content-type"), text, body };
}

/** A random Twilio-shaped message sid (SM + 32 hex digits). */
export function messageSid(): string {
  return newSid("SM");
}

/** A random, valid E.164 number for a sender of its own, so inbound messages route to one workspace. */
export function senderPhone(): string {
  return `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;
}

/** Adds a user to a workspace with a role, as postgres (tests set membership up directly). */
export async function addMember(sql: postgres.Sql, workspaceId: string, user: TestUser, role: "admin" | "agent") {
  await sql`insert into workspace_members (workspace_id, user_id, role) values (${workspaceId}, ${user.id}, ${role})`;
}

export interface QueueSetup {
  sequenceId: string;
  /** The default sequence's step ids, by position. */
  stepIds: string[];
}

/**
 * What prepare_queue() needs: an active default sequence with these steps, and queue settings
 * with a daily capacity and a local send window.
 */
export async function queueSetup(
  sql: postgres.Sql,
  workspaceId: string,
  opts: { capacity: number; windowStart?: string; windowEnd?: string; steps: { delay: string; body: string }[] },
): Promise<QueueSetup> {
  const [{ id: sequenceId }] = await sql`
    insert into sequences (workspace_id, name, status) values (${workspaceId}, 'Queue sequence', 'active') returning id::text`;
  const stepIds: string[] = [];
  for (const [i, step] of opts.steps.entries()) {
    const [{ id }] = await sql`
      insert into sequence_steps (workspace_id, sequence_id, position, delay, body)
      values (${workspaceId}, ${sequenceId}, ${i + 1}, ${step.delay}::interval, ${step.body}) returning id::text`;
    stepIds.push(id);
  }
  await sql`
    insert into queue_settings (workspace_id, daily_capacity, window_start, window_end, default_sequence_id)
    values (${workspaceId}, ${opts.capacity}, ${opts.windowStart ?? "09:00"}::time, ${opts.windowEnd ?? "17:00"}::time, ${sequenceId})`;
  return { sequenceId, stepIds };
}
