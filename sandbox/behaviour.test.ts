/**
 * behaviour.ts: which numbers Twilio refuses and how, each number's lifecycle, segment counts and
 * the Message resource, through the real client where the wire matters.
 *
 * node_modules/.bin/deno test -A --config supabase/functions/deno.json sandbox/
 */
import assert from "node:assert/strict";
import twilio from "twilio";
import { sidPattern } from "@herald/shared/sids.ts";
import { ProviderCallError } from "@herald/shared/twilio.ts";
import { advances, countSegments, encodingOf, messageResource, SandboxAccount } from "./behaviour.ts";
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

Deno.test("+15005550022 takes the message but the answer is lost: the client gets no resource, the account has it", async () => {
  await withReceiver(async (receiver) => {
    await withSandbox(async ({ client }) => {
      const body = `lost answer ${crypto.randomUUID()}`;
      await assert.rejects(
        client.messages.create({ to: "+15005550022", from: FROM, body, statusCallback: `${receiver.base}/status` }),
        (err: unknown) => err instanceof ProviderCallError && err.reached === "maybe",
        "no answer reaches the client, after the request could have reached Twilio",
      );
      const [m] = await client.messages.list({ to: "+15005550022" });
      assert.equal(m.body, body, "a look-up finds the message");
      await waitForStatus(client, m.sid, "delivered");
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

Deno.test("segments: GSM-7 160/153 septets (extension characters count two), otherwise UCS-2 70/67, packed in order", async () => {
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
    ["a".repeat(152) + "€" + "a".repeat(152), 3], // a € that does not fit part one starts part two
    ["€".repeat(153), 3], // 76 extension characters a part, not 306 / 153 = 2
    ["ł".repeat(66) + "😀" + "ł".repeat(66), 3], // a surrogate pair is never split between parts
    ["😀".repeat(800), 25],
  ];
  for (const [body, segments] of cases) assert.equal(countSegments(body), segments, `${body.length} chars`);
  assert.equal(encodingOf("Hello €[]"), "GSM-7");
  assert.equal(encodingOf("ç"), "UCS-2", "only the capital Ç is in the GSM set");
  assert.equal(encodingOf("ok 😀"), "UCS-2");

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

// ---------------------------------------------------------------------------------------------
// The extensions for Twilio's error classes, content templates, the WhatsApp window, pacing
// ---------------------------------------------------------------------------------------------

/** A raw create request, for the parameters the client would check or shape itself. */
async function postCreate(url: string, form: Record<string, string>) {
  const res = await fetch(`${url}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages.json`, {
    method: "POST",
    headers: { authorization: basicAuth, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  return { status: res.status, body: await res.json() };
}

const CONTENT_SID = "HX0123456789abcdef0123456789abcdef";

Deno.test("+15005550015 answers 21611 (sender queue full) and +15005550017 63038 (daily limit, HTTP 429)", async () => {
  await withSandbox(async ({ client }) => {
    await rejectsWith(client.messages.create({ to: "+15005550015", from: FROM, body: "x" }), 400, 21611);
    await rejectsWith(client.messages.create({ to: "+15005550017", from: FROM, body: "x" }), 429, 63038);
    await rejectsWith(client.messages.create({ to: "whatsapp:+15005550017", from: `whatsapp:${FROM}`, body: "x" }), 429, 63038);
  });
});

Deno.test("+15005550016 fails 30001 and 021 30023 by callback; 018, 019, 020 end undelivered 30005, 30006, 30007", async () => {
  await withReceiver(async (receiver) => {
    await withSandbox(async ({ client }) => {
      const statusCallback = `${receiver.base}/status`;
      const cases: Array<[string, string[], number]> = [
        ["+15005550016", ["queued", "failed"], 30001],
        ["+15005550018", ["queued", "sent", "undelivered"], 30005],
        ["+15005550019", ["queued", "sent", "undelivered"], 30006],
        ["+15005550020", ["queued", "sent", "undelivered"], 30007],
        ["+15005550021", ["queued", "failed"], 30023],
      ];
      const sids: string[] = [];
      for (const [to] of cases) sids.push((await client.messages.create({ to, from: FROM, body: "x", statusCallback })).sid);
      const received = await receiver.waitFor((r) => cases.every(([, statuses], i) => statusesFor(r, sids[i]).length === statuses.length));
      cases.forEach(([to, statuses, code], i) => {
        assert.deepEqual(statusesFor(received, sids[i]), statuses, to);
        assert.equal(received.filter((r) => r.params.MessageSid === sids[i]).at(-1)!.params.ErrorCode, String(code), to);
      });
      assert.equal((await client.messages(sids[0]).fetch()).errorCode, 30001);
    });
  });
});

Deno.test("ContentVariables need a ContentSid (21654), a valid one (21655), and must be valid themselves (21656)", async () => {
  await withSandbox(async ({ sandbox }) => {
    const base = { To: `whatsapp:${OK_TO}`, From: `whatsapp:${FROM}` };
    const code = async (form: Record<string, string>) => (await postCreate(sandbox.url, { ...base, ...form })).body.code;
    assert.equal(await code({ Body: "x", ContentVariables: '{"1":"Ada"}' }), 21654);
    assert.equal(await code({ ContentSid: "HX123" }), 21655);
    assert.equal(await code({ ContentSid: CONTENT_SID, ContentVariables: "not json" }), 21656);
    assert.equal(await code({ ContentSid: CONTENT_SID, ContentVariables: '{"1":""}' }), 21656, "an empty value");
    assert.equal(await code({ ContentSid: CONTENT_SID, ContentVariables: '{"1":"a\\nb"}' }), 21656, "a newline");
    assert.equal(await code({ ContentSid: CONTENT_SID, ContentVariables: '{"1":"a     b"}' }), 21656, "five spaces in a row");
    assert.equal(await code({ ContentSid: CONTENT_SID, ContentVariables: '["Ada"]' }), 21656, "not an object");
    assert.equal(await code({}), 21602, "neither Body nor ContentSid");
    const { status, body } = await postCreate(sandbox.url, {
      ...base,
      ContentSid: CONTENT_SID,
      ContentVariables: '{"1":"Ada","2":"Tuesday 3 March, 14:30 CET"}',
    });
    assert.equal(status, 201, "a template needs no Body");
    assert.equal(body.body, `[${CONTENT_SID}] {{1}} Ada · {{2}} Tuesday 3 March, 14:30 CET`);
  });
});

Deno.test("a content template is rendered in the inbox", async () => {
  await withSandbox(async ({ client, sandbox }) => {
    await client.messages.create({
      to: `whatsapp:${OK_TO}`,
      from: `whatsapp:${FROM}`,
      contentSid: CONTENT_SID,
      contentVariables: JSON.stringify({ 1: "Grace" }),
    });
    const page = await (await fetch(`${sandbox.url}/`)).text();
    assert.ok(page.includes(`[${CONTENT_SID}] {{1}} Grace`), "the inbox shows the template and its variables");
  });
});

Deno.test("ValidityPeriod outside 1–36000 is refused with 90007, a non-integer with 90014", async () => {
  await withSandbox(async ({ sandbox, client }) => {
    const code = async (v: string) => (await postCreate(sandbox.url, { To: OK_TO, From: FROM, Body: "x", ValidityPeriod: v })).body.code;
    assert.equal(await code("0"), 90007);
    assert.equal(await code("-5"), 90007);
    assert.equal(await code("36001"), 90007);
    assert.equal(await code("1.5"), 90014);
    assert.equal(await code("soon"), 90014);
    for (const validityPeriod of [1, 36000]) {
      const m = await client.messages.create({ to: OK_TO, from: FROM, body: "x", validityPeriod });
      assert.equal(m.status, "queued", `${validityPeriod} is accepted`);
    }
  });
});

Deno.test("free-form WhatsApp outside the 24-hour window fails 63016 by callback; an inbound WhatsApp message opens it", async () => {
  await withReceiver(async (receiver) => {
    await withSandbox(async ({ client, sandbox }) => {
      const statusCallback = `${receiver.base}/status`;
      const to = "whatsapp:+15551230077";
      const send = (extra: Record<string, string>) =>
        client.messages.create({ to, from: `whatsapp:${FROM}`, statusCallback, ...extra });
      const closed = await send({ body: "Free text, nobody asked" });
      assert.equal(closed.status, "queued", "accepted at first, as at Twilio");
      const template = await send({ contentSid: CONTENT_SID, contentVariables: '{"1":"Ada"}' });
      await receiver.waitFor((r) => statusesFor(r, closed.sid).length === 2 && statusesFor(r, template.sid).length === 3);
      assert.deepEqual(statusesFor(receiver.received, closed.sid), ["queued", "failed"]);
      assert.equal(receiver.received.filter((r) => r.params.MessageSid === closed.sid).at(-1)!.params.ErrorCode, "63016");
      assert.deepEqual(statusesFor(receiver.received, template.sid), ["queued", "sent", "delivered"], "a template goes out whenever");

      // An SMS from the same number opens no WhatsApp window; a WhatsApp message does.
      const inbound = async (from: string) =>
        await (await fetch(`${sandbox.url}/_sandbox/inbound`, {
          method: "POST",
          body: JSON.stringify({ from, to: `whatsapp:${FROM}`, body: "hi" }),
        })).json();
      await inbound("+15551230077");
      const stillClosed = await send({ body: "After an SMS" });
      await inbound(to);
      const open = await send({ body: "After a WhatsApp message" });
      await receiver.waitFor((r) => statusesFor(r, stillClosed.sid).length === 2 && statusesFor(r, open.sid).length === 3);
      assert.deepEqual(statusesFor(receiver.received, stillClosed.sid), ["queued", "failed"]);
      assert.deepEqual(statusesFor(receiver.received, open.sid), ["queued", "sent", "delivered"]);
      assert.equal((await client.messages(closed.sid).fetch()).errorCode, 63016);
    }, { inboundUrl: `${receiver.base}/inbound` });
  });
});

Deno.test("the window lasts 24 hours from the contact's last WhatsApp message", () => {
  const account = new SandboxAccount();
  const t0 = Date.UTC(2026, 0, 1, 10);
  assert.equal(account.windowOpen("whatsapp:+15551230001", t0), false, "never wrote");
  account.noteInbound("whatsapp:+15551230001", t0);
  account.noteInbound("whatsapp:+15551230001", t0 - 3600_000); // a late, older message moves nothing
  assert.equal(account.windowOpen("whatsapp:+15551230001", t0 + 24 * 3600_000 - 1), true);
  assert.equal(account.windowOpen("whatsapp:+15551230001", t0 + 24 * 3600_000), false);
  account.reset();
  assert.equal(account.windowOpen("whatsapp:+15551230001", t0 + 1), false, "reset forgets it");
});

Deno.test("paced like Twilio: each sender's queue drains in segments per second; over 10 hours is refused 21611; ValidityPeriod ends in 30036", () => {
  const account = new SandboxAccount({ queueSegmentsPerSecond: 2 });
  const t0 = Date.UTC(2026, 0, 1, 10);
  const request = (from: string, body: string, validityPeriod: string | null = null, to = OK_TO) => ({
    to, from, messagingServiceSid: null, body, mediaCount: 0, statusCallback: null,
    contentSid: null, contentVariables: null, validityPeriod,
  });
  const sentAt = (from: string, body: string, validityPeriod: string | null = null, to = OK_TO) => {
    const outcome = account.create(request(from, body, validityPeriod, to), () => 1, t0);
    assert.ok(outcome.accepted);
    return outcome.steps.map((s) => [s.status, s.errorCode, s.notBeforeMs === undefined ? null : s.notBeforeMs - t0]);
  };
  const three = "ł".repeat(135); // three UCS-2 segments
  assert.deepEqual(sentAt(FROM, "one"), [["queued", null, null], ["sent", null, 0], ["delivered", null, null]], "an idle sender sends at once");
  assert.deepEqual(sentAt(FROM, three)[1], ["sent", null, 500], "the next waits for the first's segment: 1 / 2 s");
  assert.deepEqual(sentAt(FROM, "after")[1], ["sent", null, 2000], "and the next for those three: 1.5 s more");
  assert.deepEqual(sentAt("+15005550099", "other sender")[1], ["sent", null, 0], "every sender has its own queue");
  assert.deepEqual(sentAt(FROM, "whatsapp", null, `whatsapp:${OK_TO}`).length, 2, "free-form WhatsApp outside the window fails whatever the queue");
  assert.deepEqual(sentAt(FROM, "too late", "1"), [["queued", null, null], ["failed", 30036, 1000]],
    "a message whose ValidityPeriod ends before its turn fails 30036 then");
  assert.deepEqual(sentAt(FROM, "in time", "3")[1], ["sent", null, 2500], "and takes no turn from the next");

  const full = new SandboxAccount({ queueSegmentsPerSecond: 1 });
  const refused = () => full.create(request(FROM, "x"), () => 1, t0);
  for (let i = 0; i <= 36_000; i++) assert.ok(refused().accepted, `message ${i} fits in 10 hours`);
  const over = refused();
  assert.ok(!over.accepted && over.rejection.code === 21611, "the one beyond 10 hours of segments is refused 21611");
});

Deno.test("a paced sandbox sends a sender's two-segment messages 2 / mps seconds apart", async () => {
  await withReceiver(async (receiver) => {
    await withSandbox(async ({ client, sandbox }) => {
      const statusCallback = `${receiver.base}/status`;
      const sids: string[] = [];
      for (let i = 0; i < 4; i++) {
        sids.push((await client.messages.create({ to: OK_TO, from: FROM, body: `${i} ${"a".repeat(200)}`, statusCallback })).sid);
      }
      await receiver.waitFor((r) => sids.every((sid) => statusesFor(r, sid).includes("delivered")), 5000);
      const snapshot = await (await fetch(`${sandbox.url}/_sandbox/messages`)).json();
      const sentAt = sids.map((sid) => {
        const m = snapshot.messages.find((x: { sid: string }) => x.sid === sid);
        assert.equal(m.num_segments, "2");
        return m.callbacks.find((c: { status: string }) => c.status === "sent").at_ms as number;
      });
      // Two segments at 20 segments a second: the i-th message leaves the queue i × 100 ms after the
      // first was taken, however fast they were handed over.
      const start = snapshot.create_requests[0].received_at_ms as number;
      for (let i = 1; i < sentAt.length; i++) {
        assert.ok(sentAt[i] - start >= i * 100 - 2, `message ${i} went ${sentAt[i] - start} ms after the first was taken`);
      }
    }, { queueSegmentsPerSecond: 20, callbackDelayMs: 1 });
  });
});
