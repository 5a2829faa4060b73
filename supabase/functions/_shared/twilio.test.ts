/**
 * _shared/twilio.ts: where the client's requests go, and how its failures are classified, on
 * real failures from the sandbox.
 */
import assert from "node:assert/strict";
import { startSandbox } from "@herald/sandbox/server.ts";
import {
  ACCOUNT_SID,
  AUTH_TOKEN,
  FROM,
  OK_TO,
  recordedCreatesByTo,
  startSandboxProcess,
  withSandbox,
} from "@herald/sandbox/testing.ts";
import {
  classifyProviderError,
  createTwilioClient,
  messageCreateParams,
  type OutboundContent,
  ProviderCallError,
  rewriteTwilioUri,
  sameString,
  signatureValid,
  type TwilioClient,
} from "./twilio.ts";
import twilio from "twilio";

Deno.test("signatureValid: the URL as given, with or without its port, and nothing else", () => {
  const params = { MessageSid: "SM00000000000000000000000000000001", MessageStatus: "delivered", To: "+14155550100" };
  const given = "https://abc.supabase.co/functions/v1/twilio-status";
  const local = "http://127.0.0.1:54321/functions/v1/twilio-status";
  const sign = (url: string, p: Record<string, string> = params) => twilio.getExpectedTwilioSignature(AUTH_TOKEN, url, p);
  assert.ok(signatureValid(AUTH_TOKEN, sign(given), given, params), "signed over the URL Twilio was given");
  assert.ok(signatureValid(AUTH_TOKEN, sign(local), local, params), "a URL with a port, signed as given");
  assert.ok(signatureValid(AUTH_TOKEN, sign("https://abc.supabase.co:443/functions/v1/twilio-status"), given, params),
    "signed with the port the URL leaves out: twilio.validateRequest's variants still hold");
  assert.ok(!signatureValid(AUTH_TOKEN, sign(given, { ...params, MessageStatus: "failed" }), given, params), "another form");
  assert.ok(!signatureValid("another-token", sign(given), given, params), "another auth token");
  assert.ok(!signatureValid(AUTH_TOKEN, sign(given).slice(0, -1), given, params), "a signature cut short");
  assert.ok(!signatureValid(AUTH_TOKEN, null, given, params) && !signatureValid(AUTH_TOKEN, "", given, params), "none");
  assert.ok(sameString("abc", "abc") && !sameString("abc", "abd") && !sameString("abc", "ab"), "sameString");
});

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

  // Nothing listens there any more: the request was never written, so transient.
  const gone = await startSandbox({ port: 0, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN });
  await gone.close();
  const offline = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: gone.url });
  const err = await offline.messages.create({ to: OK_TO, from: FROM, body: "x" }).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(err instanceof ProviderCallError && err.reached === "no", String(err));
  const network = classifyProviderError(err);
  assert.equal(network.kind, "transient");
  assert.equal(network.status, null);

  assert.equal(classifyProviderError({ status: 503, code: 30001, message: "Queue overflow" }).kind, "transient");
  assert.equal(classifyProviderError(new Error("Required parameter \"params['to']\" missing.")).kind, "permanent");
  assert.equal(classifyProviderError(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })).kind, "unknown");
  assert.equal(classifyProviderError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })).kind, "transient");
  assert.equal(classifyProviderError(new SyntaxError("Unexpected end of JSON input")).kind, "unknown");
});

// What the claim decided reaches Twilio as Twilio reads it: a template as ContentSid and
// ContentVariables without Body, a deadline as ValidityPeriod. The sandbox refuses what Twilio
// refuses (21654 variables without a template, 90007 a validity out of range), so the parameters
// are checked where they are read.
Deno.test("messageCreateParams: body, or the template without Body; ValidityPeriod when there is a deadline", async () => {
  const text: OutboundContent = { body: "Your order is ready.", contentSid: null, contentVariables: null, validityPeriod: null };
  const template: OutboundContent = {
    body: "Hi Ada, your order is ready.",
    contentSid: "HX0123456789abcdef0123456789abcdef",
    contentVariables: { 1: "Ada" },
    validityPeriod: 600,
  };
  assert.deepEqual(messageCreateParams("+15551230001", FROM, text, "https://cb.example/s"), {
    to: "+15551230001",
    from: FROM,
    statusCallback: "https://cb.example/s",
    body: "Your order is ready.",
  });
  assert.deepEqual(messageCreateParams("whatsapp:+15551230001", `whatsapp:${FROM}`, template, "https://cb.example/s"), {
    to: "whatsapp:+15551230001",
    from: `whatsapp:${FROM}`,
    statusCallback: "https://cb.example/s",
    contentSid: "HX0123456789abcdef0123456789abcdef",
    contentVariables: '{"1":"Ada"}',
    validityPeriod: 600,
  });
  assert.equal(messageCreateParams(OK_TO, FROM, { ...template, contentVariables: {} }, "https://cb.example/s").contentVariables, undefined,
    "no variables: the template's defaults, no empty ContentVariables");

  await withSandbox(async ({ client, sandbox }) => {
    const sent = await client.messages.create(messageCreateParams(`whatsapp:${OK_TO}`, `whatsapp:${FROM}`, template, "https://cb.example/s"));
    assert.equal(sent.body, "[HX0123456789abcdef0123456789abcdef] {{1}} Ada", "sent as the template, its variable filled");
    await client.messages.create(messageCreateParams(OK_TO, FROM, { ...text, validityPeriod: 36_000 }, "https://cb.example/s"));
    const snapshot = await (await fetch(`${sandbox.url}/_sandbox/messages`)).json();
    assert.deepEqual(
      snapshot.create_requests.map((r: Record<string, unknown>) => [r.content_sid, r.content_variables, r.validity_period]),
      [["HX0123456789abcdef0123456789abcdef", '{"1":"Ada"}', "600"], [null, null, "36000"]],
    );
    await assert.rejects(
      client.messages.create(messageCreateParams(OK_TO, FROM, { ...text, validityPeriod: 36_001 }, "https://cb.example/s")),
      (err: unknown) => classifyProviderError(err).code === 90007,
      "a ValidityPeriod beyond 10 hours is Twilio's 90007: the database clamps it (herald.validity_period_seconds)",
    );
  });
});

// The sandbox stopped (SIGSTOP) as a stalled provider would be: connections are accepted by the
// kernel and requests pile up unread. Each call times out, is classed unknown, and reaches the
// provider exactly once when it resumes: the client never sends a timed-out request again by
// itself. (The library's default client, a keep-alive node:http agent, sent every request that
// timed out on a reused connection twice.) The sandbox's record on disk is the witness.
Deno.test({
  name: "the client never re-sends a timed-out request: a stalled provider gets each one once",
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "herald-stall-" });
    const record = `${dir}/messages.jsonl`;
    const sandbox = await startSandboxProcess(record);
    try {
      const client = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: sandbox.url, timeoutMs: 1500 });
      // Connections opened and answered first, so the stalled calls go out on reused ones too.
      const warm = Array.from({ length: 8 }, (_, i) => `+1555987000${i}`);
      await Promise.all(warm.map((to) => client.messages.create({ to, from: FROM, body: "warm" })));

      Deno.kill(sandbox.pid, "SIGSTOP");
      const stalled = Array.from({ length: 16 }, (_, i) => `+15559871${String(i).padStart(3, "0")}`);
      const results = await Promise.allSettled(stalled.map((to) => client.messages.create({ to, from: FROM, body: "stalled" })));
      Deno.kill(sandbox.pid, "SIGCONT");
      for (const r of results) {
        assert.equal(r.status, "rejected");
        const err = (r as PromiseRejectedResult).reason;
        assert.ok(err instanceof ProviderCallError && err.reached === "maybe", String(err));
        assert.equal(classifyProviderError(err).kind, "unknown");
      }

      // Resumed, it works through what piled up; a look-up finds each message.
      for (const to of stalled) {
        const deadline = Date.now() + 5000;
        while ((await client.messages.list({ to, limit: 5 })).length === 0 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal((await client.messages.list({ to, limit: 5 })).length, 1, `${to} is at the provider once`);
      }
      await sandbox.stop();
      const creates = await recordedCreatesByTo(record);
      assert.deepEqual(stalled.map((to) => creates.get(to) ?? 0), stalled.map(() => 1), "one create request each on record");
      assert.deepEqual(warm.map((to) => creates.get(to) ?? 0), warm.map(() => 1));
    } finally {
      await sandbox.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// ---- running as a program --------------------------------------------------------------------
