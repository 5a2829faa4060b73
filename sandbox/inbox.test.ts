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

/** How a message's row reads ("to … from …"), tags removed. */
function routeOf(html: string, sid: string): string | null {
  const m = new RegExp(`data-testid="message-route-${sid}">(.*?)</span>\\s*<span class="status"`, "s").exec(html);
  return m ? m[1].replace(/<[^>]+>/g, "").replace(/\s+/g, " ").trim() : null;
}

const reply = (url: string, from: string, to: string, body: string) =>
  fetch(`${url}/_sandbox/reply`, { method: "POST", body: new URLSearchParams({ from, to, body }), redirect: "manual" })
    .then((r) => r.body?.cancel());

Deno.test("each row reads in the direction it went: to the contact from Herald's number, and a reply from the contact to it", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "Hello" });
    await reply(sandbox.url, OK_TO, FROM, "Hi back");
    const html = await (await fetch(`${sandbox.url}/`)).text();
    const inbound = sandbox.messages().find((x) => x.direction === "inbound")!;
    assert.equal(routeOf(html, m.sid), `to ${OK_TO} from ${FROM}`);
    assert.equal(routeOf(html, inbound.sid), `from ${OK_TO} to ${FROM}`);
    const iso = new Date(inbound.received_at_ms).toISOString();
    assert.ok(html.includes(`<time datetime="${iso}"`), "an ISO time the page shows in the viewer's zone");
  });
});

Deno.test("a number is marked opted out after STOP (until START), and after a send to it was refused with 21610", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    await client.messages.create({ to: OK_TO, from: FROM, body: "Offer" });
    const marked = async (number: string) => (await (await fetch(`${sandbox.url}/`)).text()).includes(`data-testid="opted-out-${number}"`);
    assert.equal(await marked(OK_TO), false);
    await reply(sandbox.url, OK_TO, FROM, " stop ");
    assert.equal(await marked(OK_TO), true, "STOP, any case, trimmed");
    await reply(sandbox.url, OK_TO, FROM, "Stop sending me these please");
    assert.equal(await marked(OK_TO), true, "a sentence is not a keyword and changes nothing");
    await reply(sandbox.url, OK_TO, FROM, "START");
    assert.equal(await marked(OK_TO), false);

    await client.messages.create({ to: "+15005550004", from: FROM, body: "Offer" }).catch(() => {});
    assert.equal(await marked("+15005550004"), true, "nothing was sent to it, yet it is listed and marked");
  });
});

Deno.test("the page polls a version that moves with every change, and fetches the list alone", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    const state = async () => (await (await fetch(`${sandbox.url}/_sandbox/inbox/state`)).json()) as { version: number; messages: number };
    const before = await state();
    assert.equal(before.messages, 0);
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "Poll me" });
    const after = await state();
    assert.ok(after.version > before.version);
    assert.equal(after.messages, 1);
    const list = await fetch(`${sandbox.url}/_sandbox/inbox`);
    assert.match(list.headers.get("content-type") ?? "", /^text\/html/);
    const html = await list.text();
    assert.ok(html.startsWith(`<div id="inbox" data-version="`));
    assert.ok(html.includes(`data-testid="message-${m.sid}"`));
    assert.ok(!html.includes("<html"), "the list only, to swap into the page");
  }, { callbackDelayMs: 5_000 });
});

Deno.test("the newest 100 messages are listed, with a link that lists more", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    const sids: string[] = [];
    for (let i = 0; i < 130; i++) sids.push((await client.messages.create({ to: OK_TO, from: FROM, body: `n${i}` })).sid);
    const listed = (html: string) => sids.filter((sid) => html.includes(`data-testid="message-${sid}"`));
    const page = await (await fetch(`${sandbox.url}/`)).text();
    assert.deepEqual(listed(page), sids.slice(30));
    assert.match(page, /data-testid="show-more">Show 30 more/);
    assert.match(page, /href="\/\?limit=200"/);
    const all = await (await fetch(`${sandbox.url}/?limit=200`)).text();
    assert.deepEqual(listed(all), sids);
    assert.ok(!all.includes('data-testid="show-more"'));
  }, { callbackDelayMs: 5_000 });
});
