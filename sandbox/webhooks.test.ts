/**
 * webhooks.ts: status callbacks and inbound webhooks are signed as Twilio signs them, carry
 * Twilio's fields, and a failing endpoint is retried, then given up.
 */
import assert from "node:assert/strict";
import twilio from "twilio";
import { sidPattern } from "@herald/shared/sids.ts";
import { signatureValid } from "@herald/shared/twilio.ts";
import type { SandboxMessage } from "./server.ts";
import { ACCOUNT_SID, AUTH_TOKEN, FROM, OK_TO, statusesFor, waitForStatus, withReceiver, withSandbox } from "./testing.ts";

Deno.test("status callbacks are signed and go queued → sent → delivered", async () => {
  await withReceiver(async (receiver) => {
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
  });
});

Deno.test("a failing callback endpoint is retried, then given up, and the sandbox keeps serving", async () => {
  await withReceiver(async (receiver) => {
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
      assert.match(again.sid, sidPattern("SM"));
    }, { callbackDelayMs: 5 });
  }, () => new Response("boom", { status: 503 }));
});

Deno.test("POST /_sandbox/inbound sends a signed webhook and returns its status", async () => {
  await withReceiver(async (receiver) => {
    const inboundUrl = `${receiver.base}/inbound`;
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
      assert.match(result.sid, sidPattern("SM"));
      const [hook] = receiver.received;
      assert.equal(hook.params.MessageSid, result.sid);
      assert.equal(hook.params.Body, "YES");
      assert.equal(twilio.validateRequest(AUTH_TOKEN, hook.signature ?? "", inboundUrl, hook.params), true);

      const bad = await fetch(`${sandbox.url}/_sandbox/inbound`, { method: "POST", body: "{}" });
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
    }, { inboundUrl });
  }, () => new Response("nope", { status: 403 }));
});

Deno.test("a Messaging Service's message is accepted, sent from the number it picks, and its callbacks name the service", async () => {
  await withReceiver(async (receiver) => {
    await withSandbox(async ({ client }) => {
      const service = "MG0123456789abcdef0123456789abcdef";
      const m = await client.messages.create({
        to: OK_TO,
        messagingServiceSid: service,
        body: "x",
        statusCallback: `${receiver.base}/status`,
      });
      assert.equal(m.status, "accepted");
      assert.equal(m.from, null, "the sender is picked after the request is accepted");
      const received = await receiver.waitFor((r) => statusesFor(r, m.sid).length === 3);
      assert.deepEqual(statusesFor(received, m.sid), ["queued", "sent", "delivered"]);
      for (const hook of received) {
        assert.equal(hook.params.MessagingServiceSid, service);
        assert.equal(hook.params.From, FROM);
      }
      assert.equal((await client.messages(m.sid).fetch()).from, FROM);
    });
  });
});
