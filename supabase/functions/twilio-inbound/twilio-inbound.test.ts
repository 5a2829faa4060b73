import assert from "node:assert/strict";
import type postgres from "postgres";
import { LOCAL_TWILIO } from "@herald/scripts/lib/config.ts";
import {
  asUser,
  connect,
  messageSid,
  phone,
  postTwilioWebhook,
  senderPhone,
  sendingWorkspace,
  type TestUser,
  twilioSignature,
} from "@herald/tests/support.ts";

// Inbound messages, over HTTP against the served function, signed as Twilio signs them.

const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

/** A workspace whose sender has a number of its own (inbound routes by the To number), two sequences, one contact. */
async function inboundWorkspace(sql: postgres.Sql) {
  const { owner, workspaceId } = await sendingWorkspace(sql);
  const number = senderPhone();
  await sql`update senders set phone_number = ${number} where workspace_id = ${workspaceId}`;
  const [stop] = await sql`insert into sequences (workspace_id, name, status, stop_on_reply)
                           values (${workspaceId}, 'Stops on reply', 'active', true) returning id::text`;
  const [go] = await sql`insert into sequences (workspace_id, name, status, stop_on_reply)
                         values (${workspaceId}, 'Keeps going', 'active', false) returning id::text`;
  await sql`insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
            (${workspaceId}, ${stop.id}, 1, '1 day', 'Hi {{first_name}}'), (${workspaceId}, ${stop.id}, 2, '2 days', 'Still there?'),
            (${workspaceId}, ${go.id}, 1, '1 day', 'Our news')`;
  const contactPhone = phone();
  const [c] = await sql`insert into contacts (workspace_id, phone, first_name) values (${workspaceId}, ${contactPhone}, 'Ada')
                        returning id::text`;
  return { owner, workspaceId, number, seqStop: stop.id as string, seqGo: go.id as string, contactId: c.id as string, contactPhone };
}

async function enroll(sql: postgres.Sql, owner: TestUser, sequenceId: string, contactId: string): Promise<string> {
  return await asUser(sql, owner, async (tx) => {
    const [r] = await tx`select public.enroll_contact(${sequenceId}::uuid, ${contactId}::uuid)::text as id`;
    return r.id as string;
  });
}

function inbound(from: string, to: string, body: string, sid = messageSid()): Record<string, string> {
  return {
    MessageSid: sid,
    SmsSid: sid,
    SmsMessageSid: sid,
    AccountSid: LOCAL_TWILIO.accountSid,
    From: from,
    To: to,
    Body: body,
    NumMedia: "0",
    NumSegments: "1",
    SmsStatus: "received",
    ApiVersion: "2010-04-01",
  };
}

async function contactState(sql: postgres.Sql, contactId: string) {
  const [c] = await sql`select opted_out_at is not null as opted_out, last_inbound_at is not null as replied,
                               herald.is_suppressed(workspace_id, phone) as suppressed
                        from contacts where id = ${contactId}`;
  return { ...c };
}

Deno.test("twilio-inbound: STOP opts the contact out and cancels everything pending; START opts back in", async () => {
  const sql = connect();
  try {
    const w = await inboundWorkspace(sql);
    const enrollment = await enroll(sql, w.owner, w.seqStop, w.contactId);
    await asUser(sql, w.owner, (tx) => tx`select public.schedule_message(${w.contactId}::uuid, 'see you tomorrow', now() + interval '1 day')`);

    const stop = await postTwilioWebhook("twilio-inbound", inbound(w.contactPhone, w.number, "Stop"));
    assert.equal(stop.status, 200);
    assert.match(stop.contentType ?? "", /^text\/xml/);
    assert.equal(stop.text, EMPTY_TWIML, "an empty TwiML answer: Herald sends no auto-reply of its own");
    assert.deepEqual(await contactState(sql, w.contactId), { opted_out: true, replied: true, suppressed: true });
    const pending = await sql`select status, cancel_reason from messages where contact_id = ${w.contactId}`;
    assert.equal(pending.length, 2);
    assert.ok(pending.every((m) => m.status === "cancelled" && m.cancel_reason === "contact_opted_out"), JSON.stringify(pending));
    const [e] = await sql`select status, stopped_reason from sequence_enrollments where id = ${enrollment}`;
    assert.deepEqual({ ...e }, { status: "cancelled", stopped_reason: "contact_opted_out" });

    const start = await postTwilioWebhook("twilio-inbound", inbound(w.contactPhone, w.number, " start "));
    assert.equal(start.status, 200);
    assert.equal(start.text, EMPTY_TWIML);
    assert.deepEqual(await contactState(sql, w.contactId), { opted_out: false, replied: true, suppressed: false });
    const [{ n }] = await sql`select count(*)::int as n from messages where contact_id = ${w.contactId} and status = 'cancelled'`;
    assert.equal(n, 2, "what the opt-out cancelled stays cancelled");
    const outcomes = await sql`select outcome from provider_events where contact_id = ${w.contactId} order by id`;
    assert.deepEqual(outcomes.map((r) => r.outcome), ["opted_out", "opted_in"]);
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-inbound: a reply stops stop_on_reply enrollments (replied); others keep going", async () => {
  const sql = connect();
  try {
    const w = await inboundWorkspace(sql);
    const stopping = await enroll(sql, w.owner, w.seqStop, w.contactId);
    const going = await enroll(sql, w.owner, w.seqGo, w.contactId);

    // A WhatsApp reply carries the channel prefix; it is the same contact.
    const res = await postTwilioWebhook("twilio-inbound", inbound(`whatsapp:${w.contactPhone}`, `whatsapp:${w.number}`, "Sounds good, call me"));
    assert.equal(res.status, 200);
    assert.equal(res.text, EMPTY_TWIML);

    const rows = await sql`select e.id::text, e.status as enrollment, e.stopped_reason, m.status as message, m.cancel_reason
                           from sequence_enrollments e join messages m on m.enrollment_id = e.id
                           where e.contact_id = ${w.contactId}`;
    const byId = Object.fromEntries(rows.map((r) => [r.id, { ...r, id: undefined }]));
    assert.deepEqual(byId[stopping], { id: undefined, enrollment: "cancelled", stopped_reason: "replied", message: "cancelled", cancel_reason: "replied" });
    assert.deepEqual(byId[going], { id: undefined, enrollment: "active", stopped_reason: null, message: "scheduled", cancel_reason: null });
    assert.deepEqual(await contactState(sql, w.contactId), { opted_out: false, replied: true, suppressed: false });
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-inbound: bad signatures get 403, malformed bodies 400, and neither changes anything", async () => {
  const sql = connect();
  try {
    const w = await inboundWorkspace(sql);
    const enrollment = await enroll(sql, w.owner, w.seqStop, w.contactId);
    const params = inbound(w.contactPhone, w.number, "STOP");

    assert.equal((await postTwilioWebhook("twilio-inbound", params, { signature: null })).status, 403);
    assert.equal((await postTwilioWebhook("twilio-inbound", params, {
      signature: twilioSignature("twilio-inbound", params, "not-the-auth-token"),
    })).status, 403);
    assert.equal((await postTwilioWebhook("twilio-inbound", params, { signature: twilioSignature("twilio-status", params) })).status, 403);
    assert.equal((await postTwilioWebhook("twilio-inbound", params, {
      raw: { body: JSON.stringify(params), contentType: "application/json" },
    })).status, 400);
    const malformed: Array<[Record<string, string>, string]> = [
      [{ From: "hello" }, "From: must be an E.164 number"],
      [{ To: "" }, "To: must be an E.164 number"],
      [{ MessageSid: "SM1" }, "MessageSid: must be SM or MM followed by 32 hex digits"],
    ];
    for (const [bad, message] of malformed) {
      const res = await postTwilioWebhook("twilio-inbound", { ...params, ...bad });
      assert.equal(res.status, 400, `expected 400 for ${JSON.stringify(bad)}: ${res.text}`);
      assert.deepEqual(res.body, { error: { code: "invalid_inbound", message } });
    }

    assert.deepEqual(await contactState(sql, w.contactId), { opted_out: false, replied: false, suppressed: false });
    const [e] = await sql`select status from sequence_enrollments where id = ${enrollment}`;
    assert.equal(e.status, "active");
    const [{ n }] = await sql`select count(*)::int as n from provider_events where provider_sid = ${params.MessageSid}`;
    assert.equal(n, 0);
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-inbound: the same inbound message delivered twice is applied once", async () => {
  const sql = connect();
  try {
    const w = await inboundWorkspace(sql);
    const params = inbound(w.contactPhone, w.number, "STOP");
    for (let i = 0; i < 2; i++) {
      const res = await postTwilioWebhook("twilio-inbound", params, { idempotencyToken: params.MessageSid });
      assert.equal(res.status, 200);
      assert.equal(res.text, EMPTY_TWIML);
    }
    const events = await sql`select outcome from provider_events where provider_sid = ${params.MessageSid}`;
    assert.deepEqual(events.map((r) => r.outcome), ["opted_out"]);
    const [{ n }] = await sql`select count(*)::int as n from contact_activities where contact_id = ${w.contactId} and kind = 'replied'`;
    assert.equal(n, 1);
  } finally {
    await sql.end();
  }
});
