/**
 * inbox.ts: the page lists what was sent with a reply form per message, and a reply posted from
 * it reaches the inbound webhook, signed, and shows up on the page.
 */
import assert from "node:assert/strict";
import twilio from "twilio";
import { sidPattern } from "@herald/shared/sids.ts";
import { ACCOUNT_SID, AUTH_TOKEN, FROM, OK_TO, withReceiver, withSandbox } from "./testing.ts";

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
  await withReceiver(async (receiver) => {
    const inboundUrl = `${receiver.base}/functions/v1/twilio-inbound`;
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
      assert.match(hook.params.MessageSid, sidPattern("SM"));
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
  });
});
