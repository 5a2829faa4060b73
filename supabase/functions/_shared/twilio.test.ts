/**
 * _shared/twilio.ts: where the client's requests go, and how its failures are classified, on
 * real failures from the sandbox.
 */
import assert from "node:assert/strict";
import { startSandbox } from "@herald/sandbox/server.ts";
import { ACCOUNT_SID, AUTH_TOKEN, FROM, OK_TO, withSandbox } from "@herald/sandbox/testing.ts";
import { classifyProviderError, createTwilioClient, rewriteTwilioUri, type TwilioClient } from "./twilio.ts";

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
