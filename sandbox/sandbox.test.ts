/**
 * The sandbox, driven through the real `twilio` client from `_shared/twilio.ts` over HTTP.
 *
 * node_modules/.bin/deno test -A --config supabase/functions/deno.json sandbox/
 */
import assert from "node:assert/strict";
import twilio from "twilio";
import { type Sandbox, type SandboxMessage, startSandbox } from "./twilio-sandbox.ts";
import {
  classifyProviderError,
  createTwilioClient,
  rewriteTwilioUri,
  signatureValid,
  type TwilioClient,
} from "@herald/shared/twilio.ts";
import { DENO_CONFIG } from "@herald/scripts/lib/config.ts";

const ACCOUNT_SID = "AC00000000000000000000000000000000";
const AUTH_TOKEN = "sandbox-test-token";
const FROM = "+15005550006";
const OK_TO = "+15551230001";

// ---- helpers ---------------------------------------------------------------------------------

interface ReceivedWebhook {
  path: string;
  url: string;
  signature: string | null;
  params: Record<string, string>;
  idempotencyToken: string | null;
}

/** A local HTTP endpoint that records what Twilio (the sandbox) posts to it. */
interface Receiver {
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

interface Ctx {
  sandbox: Sandbox;
  client: TwilioClient;
}

async function withSandbox(
  fn: (ctx: Ctx) => Promise<void>,
  opts: { inboundUrl?: string; callbackDelayMs?: number } = {},
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
async function rejectsWith(promise: Promise<unknown>, status: number, code: number): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof twilio.RestException, `expected RestException, got ${String(err)}`);
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    assert.equal(err.moreInfo, `https://www.twilio.com/docs/errors/${code}`);
    return true;
  });
}

function statusesFor(received: ReceivedWebhook[], sid: string): string[] {
  return received.filter((r) => r.params.MessageSid === sid).map((r) => r.params.MessageStatus);
}

async function waitForStatus(client: TwilioClient, sid: string, status: string): Promise<void> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const m = await client.messages(sid).fetch();
    if (m.status === status) return;
    if (Date.now() > deadline) throw new Error(`message ${sid} stuck in ${m.status}, wanted ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const basicAuth = `Basic ${btoa(`${ACCOUNT_SID}:${AUTH_TOKEN}`)}`;

// ---- REST API through the real client --------------------------------------------------------

Deno.test("a normal number is accepted with a Twilio-shaped message resource", async () => {
  await withSandbox(async ({ client }) => {
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "Hello from Herald" });
    assert.match(m.sid, /^SM[0-9a-f]{32}$/);
    assert.equal(m.accountSid, ACCOUNT_SID);
    assert.equal(m.status, "queued");
    assert.equal(m.direction, "outbound-api");
    assert.equal(m.to, OK_TO);
    assert.equal(m.from, FROM);
    assert.equal(m.body, "Hello from Herald");
    assert.equal(m.numSegments, "1");
    assert.equal(m.dateSent, null);
    assert.equal(m.errorCode, null);
    assert.ok(m.dateCreated instanceof Date && !Number.isNaN(m.dateCreated.getTime()), "RFC 2822 date parses");
    assert.equal(m.uri, `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/${m.sid}.json`);
  });
});

Deno.test("Twilio's magic test numbers fail with Twilio's codes", async () => {
  await withSandbox(async ({ client }) => {
    const cases: Array<[string, number]> = [
      ["+15005550001", 21211],
      ["+15005550002", 21612],
      ["+15005550003", 21408],
      ["+15005550004", 21610],
      ["+15005550009", 21614],
    ];
    for (const [to, code] of cases) {
      await rejectsWith(client.messages.create({ to, from: FROM, body: "x" }), 400, code);
    }
    // The channel prefix does not hide a magic number.
    await rejectsWith(
      client.messages.create({ to: "whatsapp:+15005550004", from: `whatsapp:${FROM}`, body: "x" }),
      400,
      21610,
    );
  });
});

Deno.test("missing To, From or Body fail as at Twilio", async () => {
  await withSandbox(async ({ sandbox }) => {
    const post = async (form: Record<string, string>) => {
      const res = await fetch(`${sandbox.url}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
        method: "POST",
        headers: { authorization: basicAuth, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(form),
      });
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual(await post({ From: FROM, Body: "x" }), {
      status: 400,
      body: {
        code: 21604,
        message: "A 'To' phone number is required.",
        more_info: "https://www.twilio.com/docs/errors/21604",
        status: 400,
      },
    });
    assert.equal((await post({ To: OK_TO, From: FROM })).body.code, 21602);
    assert.equal((await post({ To: OK_TO, Body: "x" })).body.code, 21603);
  });
});

Deno.test("wrong credentials or another account's path get 401 / 20003", async () => {
  await withSandbox(async ({ sandbox }) => {
    const wrong = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: "not-the-token", apiBase: sandbox.url });
    await rejectsWith(wrong.messages.create({ to: OK_TO, from: FROM, body: "x" }), 401, 20003);

    const res = await fetch(`${sandbox.url}/2010-04-01/Accounts/AC11111111111111111111111111111111/Messages.json`, {
      headers: { authorization: basicAuth },
    });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, 20003);
  });
});

Deno.test("+15005550012 is rate limited twice per (To, Body), then accepted and delivered", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    const send = () => client.messages.create({ to: "+15005550012", from: FROM, body: "retry me" });
    await rejectsWith(send(), 429, 20429);
    await rejectsWith(send(), 429, 20429);
    const m = await send();
    assert.match(m.sid, /^SM[0-9a-f]{32}$/);
    await waitForStatus(client, m.sid, "delivered");
    // A different body is a different pair and starts over.
    await rejectsWith(client.messages.create({ to: "+15005550012", from: FROM, body: "other" }), 429, 20429);

    const snapshot = await (await fetch(`${sandbox.url}/_sandbox/messages`)).json();
    assert.equal(snapshot.create_requests_by_to["+15005550012"], 4);
    assert.deepEqual(
      snapshot.create_requests.map((r: { http_status: number }) => r.http_status),
      [429, 429, 201, 429],
    );
  });
});

Deno.test("+15005550013 always answers 500 / 20500", async () => {
  await withSandbox(async ({ client }) => {
    for (let i = 0; i < 3; i++) {
      await rejectsWith(client.messages.create({ to: "+15005550013", from: FROM, body: "x" }), 500, 20500);
    }
  });
});

Deno.test("fetch, redact, list by To, delete by sid", async () => {
  await withSandbox(async ({ client }) => {
    const a = await client.messages.create({ to: OK_TO, from: FROM, body: "first" });
    const b = await client.messages.create({ to: "+15551230002", from: FROM, body: "second" });
    const c = await client.messages.create({ to: OK_TO, from: FROM, body: "third" });

    const fetched = await client.messages(a.sid).fetch();
    assert.equal(fetched.sid, a.sid);
    assert.equal(fetched.body, "first");

    const listed = await client.messages.list({ to: OK_TO });
    assert.deepEqual(listed.map((m) => m.sid), [c.sid, a.sid], "newest first, filtered by To");
    const paged = await client.messages.list({ pageSize: 1 });
    assert.equal(paged.length, 3, "the client follows next_page_uri through the sandbox");

    const redacted = await client.messages(b.sid).update({ body: "" });
    assert.equal(redacted.body, "");
    await rejectsWith(client.messages(b.sid).update({ body: "not empty" }), 400, 30400);

    assert.equal(await client.messages(a.sid).remove(), true);
    await rejectsWith(client.messages(a.sid).fetch(), 404, 20404);
    await rejectsWith(client.messages(a.sid).remove(), 404, 20404);
    await rejectsWith(client.messages("SM0123456789abcdef0123456789abcdef").fetch(), 404, 20404);
  });
});

Deno.test("list filters by DateSent", async () => {
  await withSandbox(async ({ client }) => {
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "dated" });
    await waitForStatus(client, m.sid, "delivered");
    const today = new Date();
    const yesterday = new Date(today.getTime() - 86_400_000);
    const tomorrow = new Date(today.getTime() + 86_400_000);
    assert.equal((await client.messages.list({ dateSentAfter: yesterday })).length, 1);
    assert.equal((await client.messages.list({ dateSentBefore: yesterday })).length, 0);
    assert.equal((await client.messages.list({ dateSentAfter: tomorrow })).length, 0);
    assert.equal((await client.messages.list({ dateSentBefore: tomorrow, to: OK_TO })).length, 1);
  }, { callbackDelayMs: 1 });
});

Deno.test("a queued message can be canceled; a delivered one cannot", async () => {
  await withSandbox(async ({ client }) => {
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "later" });
    const canceled = await client.messages(m.sid).update({ status: "canceled" });
    assert.equal(canceled.status, "canceled");
    assert.equal((await client.messages(m.sid).fetch()).status, "canceled");
  }, { callbackDelayMs: 5_000 }); // close() must cut the pending lifecycle short

  await withSandbox(async ({ client }) => {
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "now" });
    await waitForStatus(client, m.sid, "delivered");
    await rejectsWith(client.messages(m.sid).update({ status: "canceled" }), 400, 30409);
  }, { callbackDelayMs: 1 });
});

// ---- status callbacks ------------------------------------------------------------------------

Deno.test("status callbacks are signed and go queued → sent → delivered", async () => {
  const receiver = startReceiver();
  try {
    await withSandbox(async ({ client, sandbox }) => {
      const callback = `${receiver.base}/status?workspace=w1`;
      const m = await client.messages.create({ to: OK_TO, from: FROM, body: "track me", statusCallback: callback });
      const received = await receiver.waitFor((r) => statusesFor(r, m.sid).length === 3);
      assert.deepEqual(statusesFor(received, m.sid), ["queued", "sent", "delivered"]);
      for (const hook of received) {
        assert.deepEqual(Object.keys(hook.params).sort(), [
          "AccountSid",
          "ApiVersion",
          "From",
          "MessageSid",
          "MessageStatus",
          "SmsSid",
          "SmsStatus",
          "To",
        ]);
        assert.equal(hook.params.AccountSid, ACCOUNT_SID);
        assert.equal(hook.params.To, OK_TO);
        assert.equal(hook.params.From, FROM);
        assert.equal(hook.params.ApiVersion, "2010-04-01");
        assert.ok(hook.signature, "X-Twilio-Signature is present");
        assert.equal(twilio.validateRequest(AUTH_TOKEN, hook.signature, callback, hook.params), true);
        assert.equal(signatureValid(AUTH_TOKEN, hook.signature, callback, hook.params), true);
        assert.equal(twilio.validateRequest("wrong-token", hook.signature, callback, hook.params), false);
        assert.equal(
          signatureValid(AUTH_TOKEN, hook.signature, callback, { ...hook.params, MessageStatus: "failed" }),
          false,
        );
      }
      const stored = (await client.messages(m.sid).fetch());
      assert.equal(stored.status, "delivered");
      assert.ok(stored.dateSent instanceof Date, "date_sent is set once sent");
      const [record] = sandbox.messages().filter((x: SandboxMessage) => x.sid === m.sid);
      assert.deepEqual(record.callbacks.map((c) => [c.status, c.http_status, c.delivered]), [
        ["queued", 200, true],
        ["sent", 200, true],
        ["delivered", 200, true],
      ]);
    });
  } finally {
    await receiver.close();
  }
});

Deno.test("+15005550010 ends undelivered 30003 and +15005550011 ends failed 30008", async () => {
  const receiver = startReceiver();
  try {
    await withSandbox(async ({ client }) => {
      const statusCallback = `${receiver.base}/status`;
      const undelivered = await client.messages.create({ to: "+15005550010", from: FROM, body: "x", statusCallback });
      const failed = await client.messages.create({ to: "+15005550011", from: FROM, body: "x", statusCallback });
      assert.equal(undelivered.status, "queued", "accepted at first");
      assert.equal(failed.status, "queued", "accepted at first");
      const received = await receiver.waitFor((r) =>
        statusesFor(r, undelivered.sid).length === 3 && statusesFor(r, failed.sid).length === 2
      );
      assert.deepEqual(statusesFor(received, undelivered.sid), ["queued", "sent", "undelivered"]);
      assert.deepEqual(statusesFor(received, failed.sid), ["queued", "failed"]);
      const last = (sid: string) => received.filter((r) => r.params.MessageSid === sid).at(-1)!;
      assert.equal(last(undelivered.sid).params.ErrorCode, "30003");
      assert.equal(last(failed.sid).params.ErrorCode, "30008");
      for (const hook of received) {
        assert.equal(twilio.validateRequest(AUTH_TOKEN, hook.signature ?? "", statusCallback, hook.params), true);
      }
      const u = await client.messages(undelivered.sid).fetch();
      assert.equal(u.status, "undelivered");
      assert.equal(u.errorCode, 30003);
      const f = await client.messages(failed.sid).fetch();
      assert.equal(f.status, "failed");
      assert.equal(f.errorCode, 30008);
    });
  } finally {
    await receiver.close();
  }
});

Deno.test("+15005550014 reports delivered before sent; the stored status does not regress", async () => {
  const receiver = startReceiver();
  try {
    await withSandbox(async ({ client }) => {
      const m = await client.messages.create({
        to: "+15005550014",
        from: FROM,
        body: "x",
        statusCallback: `${receiver.base}/status`,
      });
      const received = await receiver.waitFor((r) => statusesFor(r, m.sid).length === 3);
      assert.deepEqual(statusesFor(received, m.sid), ["queued", "delivered", "sent"]);
      assert.equal((await client.messages(m.sid).fetch()).status, "delivered");
    });
  } finally {
    await receiver.close();
  }
});

Deno.test("a failing callback endpoint is retried, then given up, and the sandbox keeps serving", async () => {
  const receiver = startReceiver(() => new Response("boom", { status: 503 }));
  try {
    await withSandbox(async ({ client, sandbox }) => {
      const m = await client.messages.create({
        to: OK_TO,
        from: FROM,
        body: "x",
        statusCallback: `${receiver.base}/status`,
      });
      // 3 statuses × 4 attempts each.
      await receiver.waitFor((r) => r.length === 12, 5000);
      await waitForStatus(client, m.sid, "delivered");
      const [record] = sandbox.messages();
      assert.deepEqual(record.callbacks.map((c) => [c.status, c.attempts, c.http_status, c.delivered]), [
        ["queued", 4, 503, false],
        ["sent", 4, 503, false],
        ["delivered", 4, 503, false],
      ]);
      // Retries of one callback carry the same idempotency token.
      const tokens = new Set(receiver.received.map((r) => r.idempotencyToken));
      assert.equal(tokens.size, 3);
      const again = await client.messages.create({ to: OK_TO, from: FROM, body: "still up" });
      assert.match(again.sid, /^SM[0-9a-f]{32}$/);
    }, { callbackDelayMs: 5 });
  } finally {
    await receiver.close();
  }
});

// ---- inbox page and inbound webhooks ---------------------------------------------------------

Deno.test("GET / lists sent messages with a reply form per message", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "Your <appointment> is at 10" });
    const res = await fetch(`${sandbox.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    const html = await res.text();
    assert.ok(html.includes("Your &#60;appointment&#62; is at 10"), "body is shown, HTML-escaped");
    assert.ok(html.includes(`data-testid="reply-body-${m.sid}"`));
    assert.ok(html.includes(`data-testid="reply-send-${m.sid}"`));
    assert.ok(html.includes(`name="from" value="${OK_TO}"`));
    assert.ok(html.includes(`name="to" value="${FROM}"`));
    assert.ok(!/<(script|link)\b[^>]*\b(src|href)=/i.test(html), "no external assets");
  });
});

Deno.test("a reply from the inbox posts a signed inbound webhook and shows up on the page", async () => {
  const receiver = startReceiver();
  const inboundUrl = `${receiver.base}/functions/v1/twilio-inbound`;
  try {
    await withSandbox(async ({ client, sandbox }) => {
      const m = await client.messages.create({ to: OK_TO, from: FROM, body: "Reply STOP to opt out" });
      const res = await fetch(`${sandbox.url}/_sandbox/reply`, {
        method: "POST",
        body: new URLSearchParams({ from: m.to, to: m.from!, body: "STOP" }),
        redirect: "manual",
      });
      await res.body?.cancel();
      assert.equal(res.status, 303);
      assert.equal(res.headers.get("location"), "/");

      const [hook] = await receiver.waitFor((r) => r.length === 1);
      assert.equal(hook.path, "/functions/v1/twilio-inbound");
      assert.match(hook.params.MessageSid, /^SM[0-9a-f]{32}$/);
      assert.equal(hook.params.SmsSid, hook.params.MessageSid);
      assert.equal(hook.params.AccountSid, ACCOUNT_SID);
      assert.equal(hook.params.From, OK_TO);
      assert.equal(hook.params.To, FROM);
      assert.equal(hook.params.Body, "STOP");
      assert.equal(hook.params.NumMedia, "0");
      assert.equal(hook.params.NumSegments, "1");
      assert.equal(hook.params.ApiVersion, "2010-04-01");
      assert.equal(twilio.validateRequest(AUTH_TOKEN, hook.signature ?? "", inboundUrl, hook.params), true);
      assert.equal(twilio.validateRequest("wrong-token", hook.signature ?? "", inboundUrl, hook.params), false);

      const html = await (await fetch(`${sandbox.url}/`)).text();
      assert.ok(html.includes(`data-testid="message-${hook.params.MessageSid}"`), "the reply is listed");
      assert.ok(html.includes("webhook 200"));
    }, { inboundUrl });
  } finally {
    await receiver.close();
  }
});

Deno.test("POST /_sandbox/inbound sends a signed webhook and returns its status", async () => {
  const receiver = startReceiver(() => new Response("nope", { status: 403 }));
  const inboundUrl = `${receiver.base}/inbound`;
  try {
    await withSandbox(async ({ sandbox }) => {
      const res = await fetch(`${sandbox.url}/_sandbox/inbound`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ from: OK_TO, to: FROM, body: "YES" }),
      });
      assert.equal(res.status, 200);
      const result = await res.json();
      assert.equal(result.webhook_status, 403);
      assert.equal(result.webhook_body, "nope");
      assert.match(result.sid, /^SM[0-9a-f]{32}$/);
      const [hook] = receiver.received;
      assert.equal(hook.params.MessageSid, result.sid);
      assert.equal(hook.params.Body, "YES");
      assert.equal(twilio.validateRequest(AUTH_TOKEN, hook.signature ?? "", inboundUrl, hook.params), true);

      const bad = await fetch(`${sandbox.url}/_sandbox/inbound`, { method: "POST", body: "{}" });
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
    }, { inboundUrl });
  } finally {
    await receiver.close();
  }
});

Deno.test("admin endpoints expose receive times and reset the store", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    const before = Date.now();
    await client.messages.create({ to: OK_TO, from: FROM, body: "one" });
    await client.messages.create({ to: OK_TO, from: FROM, body: "two" });
    const snapshot = await (await fetch(`${sandbox.url}/_sandbox/messages`)).json();
    assert.equal(snapshot.messages.length, 2);
    assert.equal(snapshot.create_requests_by_to[OK_TO], 2);
    for (const m of snapshot.messages) assert.ok(m.received_at_ms >= before && m.received_at_ms <= Date.now());

    const reset = await fetch(`${sandbox.url}/_sandbox/reset`, { method: "POST" });
    assert.deepEqual(await reset.json(), { ok: true });
    assert.equal(sandbox.messages().length, 0);
    assert.deepEqual((await (await fetch(`${sandbox.url}/_sandbox/messages`)).json()).create_requests_by_to, {});
  });
});

Deno.test("startSandbox names the bad option", async () => {
  await assert.rejects(
    startSandbox({ port: 0, accountSid: "ACnope", authToken: AUTH_TOKEN }),
    /accountSid: must be AC followed by 32 hex digits/,
  );
});

// ---- _shared/twilio.ts -----------------------------------------------------------------------

Deno.test("rewriteTwilioUri moves any twilio.com origin and leaves others alone", () => {
  const base = "http://127.0.0.1:54330/";
  assert.equal(
    rewriteTwilioUri("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1", base),
    "http://127.0.0.1:54330/2010-04-01/Accounts/AC1/Messages.json?To=%2B1",
  );
  assert.equal(
    rewriteTwilioUri("https://api.sydney.au1.twilio.com/x", "http://h/prefix"),
    "http://h/prefix/x",
  );
  assert.equal(rewriteTwilioUri("https://example.com/x", base), "https://example.com/x");
  assert.equal(rewriteTwilioUri("https://nottwilio.com/x", base), "https://nottwilio.com/x");
});

Deno.test("classifyProviderError on real sandbox failures", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    const failure = async (to: string, c: TwilioClient = client) => {
      try {
        await c.messages.create({ to, from: FROM, body: "classify" });
      } catch (err) {
        return classifyProviderError(err);
      }
      throw new Error(`sending to ${to} did not fail`);
    };
    assert.deepEqual(await failure("+15005550001"), {
      kind: "permanent",
      code: 21211,
      status: 400,
      message: "The 'To' number +15005550001 is not a valid phone number.",
    });
    for (const to of ["+15005550002", "+15005550003", "+15005550004", "+15005550009"]) {
      assert.equal((await failure(to)).kind, "permanent", to);
    }
    assert.deepEqual(await failure("+15005550012"), {
      kind: "transient",
      code: 20429,
      status: 429,
      message: "Too Many Requests",
    });
    assert.equal((await failure("+15005550013")).kind, "transient");
    const wrong = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: "bad", apiBase: sandbox.url });
    assert.deepEqual(await failure(OK_TO, wrong), {
      kind: "permanent",
      code: 20003,
      status: 401,
      message: "Authenticate",
    });
  });

  // Nothing listens there any more: a network error, so transient.
  const gone = await startSandbox({ port: 0, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  await gone.close();
  const offline = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: gone.url });
  const err = await offline.messages.create({ to: OK_TO, from: FROM, body: "x" }).then(
    () => null,
    (e: unknown) => e,
  );
  const network = classifyProviderError(err);
  assert.equal(network.kind, "transient");
  assert.equal(network.status, null);

  assert.equal(classifyProviderError({ status: 503, code: 30001, message: "Queue overflow" }).kind, "transient");
  assert.equal(classifyProviderError(new Error("Required parameter \"params['to']\" missing.")).kind, "permanent");
});

// ---- running as a program --------------------------------------------------------------------

const SANDBOX_MAIN = new URL("./twilio-sandbox.ts", import.meta.url).pathname;

function sandboxCommand(env: Record<string, string>, piped: boolean): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_CONFIG, SANDBOX_MAIN],
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", ...env },
    clearEnv: true,
    stdout: piped ? "piped" : "null",
    stderr: "piped",
  });
}

Deno.test("as a program: a missing variable is named and the exit code is 1", async () => {
  const out = await sandboxCommand({ TWILIO_ACCOUNT_SID: ACCOUNT_SID }, false).output();
  assert.equal(out.code, 1);
  assert.match(new TextDecoder().decode(out.stderr), /TWILIO_AUTH_TOKEN: is required/);
});

Deno.test("as a program: serves from env and exits 0 on SIGTERM", async () => {
  const child = sandboxCommand({
    TWILIO_ACCOUNT_SID: ACCOUNT_SID,
    TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    SANDBOX_PORT: "0",
  }, true).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  const stderrText = (async () => {
    let text = "";
    for await (const chunk of stderr) text += chunk;
    return text;
  })();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  try {
    while (!/listening on (http:\S+)/.test(seen)) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`sandbox exited early: ${seen}`);
      seen += value;
    }
    const base = /listening on (http:\S+)/.exec(seen)![1];
    const client = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: base });
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "from a child process" });
    assert.match(m.sid, /^SM[0-9a-f]{32}$/);
  } finally {
    child.kill("SIGTERM");
    await lines.cancel();
  }
  const status = await child.status;
  assert.equal(status.code, 0, await stderrText);
});
