/**
 * What the sandbox's tests share: a sandbox of their own per test driven through the real
 * `twilio` client from `_shared/twilio.ts`, and a local endpoint that records what it posts.
 */
import assert from "node:assert/strict";
import twilio from "twilio";
import { createTwilioClient, type TwilioClient } from "@herald/shared/twilio.ts";
import { type Sandbox, type SandboxOptions, startSandbox } from "./server.ts";

export const ACCOUNT_SID = "AC00000000000000000000000000000000";
export const AUTH_TOKEN = "sandbox-test-token";
export const FROM = "+15005550006";
export const OK_TO = "+15551230001";

export interface ReceivedWebhook {
  path: string;
  url: string;
  signature: string | null;
  params: Record<string, string>;
  idempotencyToken: string | null;
}

/** A local HTTP endpoint that records what Twilio (the sandbox) posts to it. */
export interface Receiver {
  base: string;
  received: ReceivedWebhook[];
  /** Resolves once `predicate` holds for the received list, or rejects after `timeoutMs`. */
  waitFor(predicate: (r: ReceivedWebhook[]) => boolean, timeoutMs?: number): Promise<ReceivedWebhook[]>;
  close(): Promise<void>;
}

function startReceiver(respond: (path: string) => Response = () => new Response("<Response/>")): Receiver {
  const received: ReceivedWebhook[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const params = Object.fromEntries(new URLSearchParams(await req.text()));
    received.push({
      path: url.pathname,
      url: `${base}${url.pathname}`,
      signature: req.headers.get("x-twilio-signature"),
      params,
      idempotencyToken: req.headers.get("i-twilio-idempotency-token"),
    });
    return respond(url.pathname);
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  return {
    base,
    received,
    async waitFor(predicate, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(received)) {
        if (Date.now() > deadline) {
          throw new Error(`timed out; received so far: ${JSON.stringify(received.map((r) => r.params))}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return received;
    },
    close: () => server.shutdown(),
  };
}

/** Runs `fn` with a receiver that answers with `respond`, and closes it whatever happens. */
export async function withReceiver(
  fn: (receiver: Receiver) => Promise<void>,
  respond?: (path: string) => Response,
): Promise<void> {
  const receiver = startReceiver(respond);
  try {
    await fn(receiver);
  } finally {
    await receiver.close();
  }
}

export interface Ctx {
  sandbox: Sandbox;
  client: TwilioClient;
}

export async function withSandbox(
  fn: (ctx: Ctx) => Promise<void>,
  opts: Omit<SandboxOptions, "accountSid" | "authToken" | "port"> = {},
): Promise<void> {
  const sandbox = await startSandbox({ port: 0, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, ...opts });
  try {
    const client = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: sandbox.url });
    await fn({ sandbox, client });
  } finally {
    await sandbox.close();
  }
}

/** Asserts that `promise` rejects with a twilio RestException carrying this status and code. */
export async function rejectsWith(promise: Promise<unknown>, status: number, code: number): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof twilio.RestException, `expected RestException, got ${String(err)}`);
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    assert.equal(err.moreInfo, `https://www.twilio.com/docs/errors/${code}`);
    return true;
  });
}

export function statusesFor(received: ReceivedWebhook[], sid: string): string[] {
  return received.filter((r) => r.params.MessageSid === sid).map((r) => r.params.MessageStatus);
}

export async function waitForStatus(client: TwilioClient, sid: string, status: string): Promise<void> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const m = await client.messages(sid).fetch();
    if (m.status === status) return;
    if (Date.now() > deadline) throw new Error(`message ${sid} stuck in ${m.status}, wanted ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const basicAuth = `Basic ${btoa(`${ACCOUNT_SID}:${AUTH_TOKEN}`)}`;
