/**
 * server.ts: Basic auth as at Twilio, the Messages API's fetch, update, list and delete through
 * the real client, the admin endpoints, and `startSandbox`'s option checks.
 */
import assert from "node:assert/strict";
import { createTwilioClient } from "@herald/shared/twilio.ts";
import { startSandbox } from "./server.ts";
import { ACCOUNT_SID, AUTH_TOKEN, basicAuth, FROM, OK_TO, rejectsWith, waitForStatus, withSandbox } from "./testing.ts";

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
