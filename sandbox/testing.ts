/**
 * What the sandbox's tests share: a sandbox of their own per test driven through the real
 * `twilio` client from `_shared/twilio.ts`, and a local endpoint that records what it posts.
 */
import assert from "node:assert/strict";
import twilio from "twilio";
import { createTwilioClient, type TwilioClient } from "@herald/shared/twilio.ts";
import { type Sandbox, type SandboxOptions, startSandbox } from "./server.ts";
import { DENO_CONFIG } from "@herald/scripts/lib/config.ts";

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

/** The sandbox as a process of its own (so it can be stopped with SIGSTOP), keeping its record at `recordPath`. */
export interface SandboxProcess {
  url: string;
  pid: number;
  /** Ends it with SIGTERM (continuing it first, should it be stopped) and waits for the exit. */
  stop(): Promise<void>;
}

export async function startSandboxProcess(recordPath: string): Promise<SandboxProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_CONFIG, new URL("./twilio-sandbox.ts", import.meta.url).pathname],
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      SANDBOX_PORT: "0",
      SANDBOX_RECORD: recordPath,
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!/listening on (http:\S+)/.test(seen)) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`the sandbox exited before listening: ${seen}`);
    seen += value;
  }
  // Drained from here on, so its output never blocks it.
  (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })().catch(() => {});
  let stopped: Promise<void> | null = null;
  return {
    url: /listening on (http:\S+)/.exec(seen)![1],
    pid: child.pid,
    stop() {
      stopped ??= (async () => {
        child.kill("SIGCONT");
        child.kill("SIGTERM");
        await child.status;
      })();
      return stopped;
    },
  };
}

/** The create requests a sandbox's record file holds, by `To`: what reached it, whatever it answered. */
export async function recordedCreatesByTo(recordPath: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of (await Deno.readTextFile(recordPath)).split("\n")) {
    if (!line) continue;
    const entry = JSON.parse(line) as { request?: { to: string | null } };
    if (entry.request?.to) counts.set(entry.request.to, (counts.get(entry.request.to) ?? 0) + 1);
  }
  return counts;
}
