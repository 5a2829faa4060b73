/**
 * behaviour.ts: which numbers Twilio refuses and how, each number's lifecycle, segment counts and
 * the Message resource, through the real client where the wire matters.
 *
 * node_modules/.bin/deno test -A --config supabase/functions/deno.json sandbox/
 */
import assert from "node:assert/strict";
import twilio from "twilio";
import { sidPattern } from "@herald/shared/sids.ts";
import { advances, countSegments, messageResource } from "./behaviour.ts";
import {
  ACCOUNT_SID,
  AUTH_TOKEN,
  basicAuth,
  FROM,
  OK_TO,
  rejectsWith,
  statusesFor,
  waitForStatus,
  withReceiver,
  withSandbox,
} from "./testing.ts";

Deno.test("a normal number is accepted with a Twilio-shaped message resource", async () => {
  await withSandbox(async ({ client }) => {
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "Hello from Herald" });
    assert.match(m.sid, sidPattern("SM"));
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

Deno.test("+15005550012 is rate limited twice per (To, Body), then accepted and delivered", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    const send = () => client.messages.create({ to: "+15005550012", from: FROM, body: "retry me" });
    await rejectsWith(send(), 429, 20429);
    await rejectsWith(send(), 429, 20429);
    const m = await send();
    assert.match(m.sid, sidPattern("SM"));
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

Deno.test("+15005550010 ends undelivered 30003 and +15005550011 ends failed 30008", async () => {
  await withReceiver(async (receiver) => {
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
  });
});

Deno.test("+15005550014 reports delivered before sent; the stored status does not regress", async () => {
  await withReceiver(async (receiver) => {
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
  });
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

Deno.test("a status only moves forward, and the first final status wins", () => {
  const cases: Array<[Parameters<typeof advances>[0], Parameters<typeof advances>[1], boolean]> = [
    ["accepted", "queued", true],
    ["queued", "sent", true],
    ["sent", "sent", true],
    ["sent", "delivered", true],
    ["delivered", "sent", false],
    ["sent", "queued", false],
    ["delivered", "delivered", true],
    ["delivered", "failed", false],
    ["undelivered", "delivered", false],
    ["canceled", "queued", false],
  ];
  for (const [from, to, moves] of cases) assert.equal(advances(from, to), moves, `${from} → ${to}`);
});

Deno.test("segments: GSM-7 160/153 septets (extension characters count two), otherwise UCS-2 70/67", async () => {
  const cases: Array<[string, number]> = [
    ["", 1],
    ["a".repeat(160), 1],
    ["a".repeat(161), 2],
    ["a".repeat(306), 2],
    ["a".repeat(307), 3],
    ["€".repeat(80), 1],
    ["€".repeat(81), 2],
    ["ł".repeat(70), 1],
    ["ł".repeat(71), 2],
    ["ł".repeat(134), 2],
    ["ł".repeat(135), 3],
    ["😀".repeat(35), 1], // two UTF-16 units each
    ["😀".repeat(36), 2],
    ["a".repeat(69) + "ł", 1], // one non-GSM character makes the whole body UCS-2…
    ["a".repeat(70) + "ł", 2],
    ["a".repeat(159) + "ł", 3], // …so 160 characters are three segments, not one
  ];
  for (const [body, segments] of cases) assert.equal(countSegments(body), segments, `${body.length} chars`);

  await withSandbox(async ({ client }) => {
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "ł".repeat(71) });
    assert.equal(m.numSegments, "2", "the resource carries the count");
  });
});

Deno.test("one Message resource shape for messages sent and received", () => {
  const sid = "SM0123456789abcdef0123456789abcdef";
  const sent = messageResource({
    accountSid: ACCOUNT_SID,
    sid,
    direction: "outbound-api",
    status: "queued",
    from: FROM,
    to: OK_TO,
    body: "Hello",
    numMedia: 1,
    createdAtMs: 0,
    sentAtMs: null,
  });
  const received = messageResource({
    accountSid: ACCOUNT_SID,
    sid,
    direction: "inbound",
    status: "received",
    from: OK_TO,
    to: FROM,
    body: "STOP",
    createdAtMs: 0,
    sentAtMs: 0,
  });
  assert.deepEqual(Object.keys(received).sort(), Object.keys(sent).sort());
  assert.equal(sent.date_created, "Thu, 01 Jan 1970 00:00:00 +0000");
  assert.equal(sent.date_sent, null);
  assert.equal(received.date_sent, "Thu, 01 Jan 1970 00:00:00 +0000");
  assert.equal(sent.num_media, "1");
  assert.equal(received.num_media, "0");
  assert.equal(received.messaging_service_sid, null);
  assert.equal(sent.uri, `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/${sid}.json`);
  assert.deepEqual(sent.subresource_uris, {
    media: `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/${sid}/Media.json`,
    feedback: `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/${sid}/Feedback.json`,
  });
});
