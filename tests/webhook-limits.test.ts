import assert from "node:assert/strict";
import { connect, messageSid, phone, postTwilioWebhook, sendingWorkspace, stack, twilioSignature } from "./support.ts";

// A webhook body over 64 KB is refused with 413 before it is read: Twilio's own webhooks are a
// few kilobytes, and an unbounded body would be read whole into memory before the signature check.

const LIMIT = 64 * 1024;

Deno.test("webhooks: a signed body over 64 KB is refused with 413 and changes nothing", async () => {
  const sql = connect();
  try {
    const { workspaceId, senderNumber } = await sendingWorkspace(sql);
    const from = phone();
    await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${from})`;
    const params = { MessageSid: messageSid(), From: from, To: senderNumber, Body: "STOP", Padding: "x".repeat(LIMIT) };
    const res = await postTwilioWebhook("twilio-inbound", params);
    assert.equal(res.status, 413, res.text);
    const [{ n }] = await sql`select count(*)::int as n from provider_events where provider_sid = ${params.MessageSid}`;
    assert.equal(n, 0, "nothing stored");
    const [{ out }] = await sql`select opted_out_at is not null as out from contacts where workspace_id = ${workspaceId} and phone = ${from}`;
    assert.equal(out, false, "and the STOP was not applied");

    const status = { MessageSid: messageSid(), MessageStatus: "delivered", Padding: "y".repeat(LIMIT) };
    assert.equal((await postTwilioWebhook("twilio-status", status)).status, 413);
  } finally {
    await sql.end();
  }
});

Deno.test("webhooks: a streamed body without Content-Length is cut off at 64 KB with 413", async () => {
  const params = { MessageSid: messageSid(), From: phone(), To: phone(), Body: "hi", Padding: "z".repeat(4 * LIMIT) };
  const encoded = new TextEncoder().encode(new URLSearchParams(params).toString());
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < encoded.length; i += 8192) controller.enqueue(encoded.subarray(i, i + 8192));
      controller.close();
    },
  });
  const res = await fetch(`${stack.functionsUrl}/twilio-inbound`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": twilioSignature("twilio-inbound", params),
    },
    body,
  });
  await res.body?.cancel();
  assert.equal(res.status, 413);
});
