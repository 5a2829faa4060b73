// Keywords over HTTP on the served stack: the twilio-inbound function, signed as Twilio signs,
// answers HELP and INFO with the workspace's help_reply in its TwiML, applies the workspace's own
// opt-out and opt-in words where they are configured (and only there), writes one consent row per
// keyword opt-out and opt-in, and writes nothing twice for a MessageSid delivered again.

import assert from "node:assert/strict";
import type postgres from "postgres";
import { asUser, connect, messageSid, phone, postTwilioWebhook, sendingWorkspace } from "./support.ts";

const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

/** Twilio's opt-out and opt-in words (herald.standard_keywords), as a contact might type them. */
const STANDARD_OPT_OUT = ["STOP", "stopall", "Unsubscribe", "cancel", "END.", "quit", "REVOKE", "optout"];
const STANDARD_OPT_IN = ["START", "yes", "Unstop!", "optin"];

/** A workspace ready to receive (its SMS sender's number routes to it), with one contact. */
async function receivingWorkspace(
  sql: postgres.Sql,
  settings: { help_reply?: string; opt_out_keywords?: string[]; opt_in_keywords?: string[] } = {},
) {
  const { owner, workspaceId, senderNumber } = await sendingWorkspace(sql);
  // Set by the owner, as an app would through supabase-js (RLS and the keyword trigger apply).
  await asUser(sql, owner, (tx) => tx`
    update workspaces
    set help_reply = ${settings.help_reply ?? null},
        opt_out_keywords = ${settings.opt_out_keywords ?? []}::text[],
        opt_in_keywords = ${settings.opt_in_keywords ?? []}::text[]
    where id = ${workspaceId}`);
  const contactPhone = phone();
  const [{ id }] = await sql`insert into contacts (workspace_id, phone, first_name) values (${workspaceId}, ${contactPhone}, 'Ana')
                             returning id::text`;
  return { workspaceId, number: senderNumber, contactId: id as string, contactPhone };
}

/** Posts one signed inbound message, as Twilio does (WhatsApp numbers carry the whatsapp: prefix). */
async function inbound(from: string, to: string, body: string, sid = messageSid(), idempotencyToken?: string) {
  const res = await postTwilioWebhook("twilio-inbound", { MessageSid: sid, SmsSid: sid, From: from, To: to, Body: body, NumMedia: "0" }, {
    idempotencyToken,
  });
  assert.equal(res.status, 200, res.text);
  assert.match(res.contentType ?? "", /^text\/xml/);
  return res.text;
}

async function optedOut(sql: postgres.Sql, contactId: string): Promise<boolean> {
  const [{ out }] = await sql`select opted_out_at is not null as out from contacts where id = ${contactId}`;
  return out;
}

async function consents(sql: postgres.Sql, contactId: string) {
  return (await sql`select channel::text, status::text, source::text, proof from consents where contact_id = ${contactId}
                    order by at, id`).map((r) => ({ ...r }));
}

Deno.test("inbound keywords: HELP and INFO get the workspace's help_reply in the TwiML; without one, empty TwiML", async () => {
  const sql = connect();
  try {
    const reply = `Acme & Sons <dental>: call 555-0100 or reply "STOP" to opt out.`;
    const w = await receivingWorkspace(sql, { help_reply: reply });
    const plain = await receivingWorkspace(sql);
    const answered = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>' +
      "Acme &amp; Sons &lt;dental&gt;: call 555-0100 or reply &quot;STOP&quot; to opt out." + "</Message></Response>";

    const helpSid = messageSid();
    assert.equal(await inbound(w.contactPhone, w.number, "help", helpSid), answered, "HELP: the reply, XML-escaped");
    assert.equal(await inbound(w.contactPhone, w.number, " Info? "), answered, "INFO, any case and punctuation: the same");
    assert.equal(await inbound(`whatsapp:${w.contactPhone}`, `whatsapp:${w.number}`, "HELP"), answered, "and on WhatsApp");
    assert.equal(await inbound(phone(), w.number, "HELP"), answered, "a number with no contact gets it too");
    assert.equal(await inbound(plain.contactPhone, plain.number, "HELP"), EMPTY_TWIML,
      "no help_reply: empty TwiML, so Twilio's own default reply stays in charge");
    assert.equal(await inbound(w.contactPhone, w.number, "help me with my booking"), EMPTY_TWIML, "a sentence is a reply, not HELP");

    const requests = await sql`select detail ->> 'provider_sid' as sid, detail ->> 'answered' as answered
                               from contact_activities where contact_id in (${w.contactId}, ${plain.contactId})
                                 and kind = 'help_requested' order by id`;
    assert.equal(requests.length, 4, "each HELP or INFO from a contact is recorded as an activity");
    assert.deepEqual({ ...requests[0] }, { sid: helpSid, answered: "true" });
    assert.equal(requests[3].answered, "false", "the unanswered one says so");
    assert.equal(await optedOut(sql, w.contactId), false, "HELP is no opt-out");
    assert.deepEqual(await consents(sql, w.contactId), [], "and no consent");
  } finally {
    await sql.end();
  }
});

Deno.test("inbound keywords: PARAR opts out where the workspace configured it, and is a plain reply where it did not", async () => {
  const sql = connect();
  try {
    const spanish = await receivingWorkspace(sql, { opt_out_keywords: ["parar"], opt_in_keywords: ["volver"] });
    const english = await receivingWorkspace(sql);
    for (const w of [spanish, english]) {
      await sql`insert into messages (workspace_id, contact_id, channel, body, send_at)
                values (${w.workspaceId}, ${w.contactId}, 'sms', 'See you tomorrow', now() + interval '1 day')`;
    }

    const sid = messageSid();
    assert.equal(await inbound(spanish.contactPhone, spanish.number, "¡Parar!", sid), EMPTY_TWIML);
    assert.equal(await optedOut(sql, spanish.contactId), true, "PARAR opts out where it is configured");
    const [pending] = await sql`select status::text, cancel_reason::text from messages where contact_id = ${spanish.contactId}`;
    assert.deepEqual({ ...pending }, { status: "cancelled", cancel_reason: "contact_opted_out" }, "and cancels what is pending");
    assert.deepEqual(await consents(sql, spanish.contactId), [{ channel: "sms", status: "opted_out", source: "keyword", proof: sid }]);

    assert.equal(await inbound(english.contactPhone, english.number, "PARAR"), EMPTY_TWIML);
    assert.equal(await optedOut(sql, english.contactId), false, "PARAR is an ordinary reply where it is not configured");
    const [kept] = await sql`select status::text from messages where contact_id = ${english.contactId}`;
    assert.equal(kept.status, "scheduled");
    assert.deepEqual(await consents(sql, english.contactId), []);

    assert.equal(await inbound(spanish.contactPhone, spanish.number, "volver"), EMPTY_TWIML);
    assert.equal(await optedOut(sql, spanish.contactId), false, "VOLVER, the workspace's opt-in word, opts back in");
  } finally {
    await sql.end();
  }
});

Deno.test("inbound keywords: every keyword opt-out and opt-in writes one consent row, on the channel it came by", async () => {
  const sql = connect();
  try {
    const w = await receivingWorkspace(sql, { opt_out_keywords: ["PARAR", "ARRET"], opt_in_keywords: ["VOLVER"] });
    const optOuts = [...STANDARD_OPT_OUT, "parar", "Arret"];
    const optIns = [...STANDARD_OPT_IN, "Volver"];
    const expected: { channel: string; status: string; source: string; proof: string }[] = [];
    // Out and in by turns, so each word changes the contact's standing and the order shows.
    for (const [i, word] of optOuts.entries()) {
      for (const [body, status] of [[word, "opted_out"], [optIns[i % optIns.length], "opted_in"]]) {
        const whatsapp = expected.length % 5 === 4;
        const sid = messageSid();
        const prefix = whatsapp ? "whatsapp:" : "";
        assert.equal(await inbound(`${prefix}${w.contactPhone}`, `${prefix}${w.number}`, body, sid), EMPTY_TWIML);
        assert.equal(await optedOut(sql, w.contactId), status === "opted_out", `after ${body}`);
        expected.push({ channel: whatsapp ? "whatsapp" : "sms", status, source: "keyword", proof: sid });
      }
    }
    assert.deepEqual(await consents(sql, w.contactId), expected);

    // A reply that is not a keyword, and a keyword inside a sentence, write none.
    await inbound(w.contactPhone, w.number, "Thanks, see you Tuesday");
    await inbound(w.contactPhone, w.number, "please stop texting me");
    assert.equal((await consents(sql, w.contactId)).length, expected.length);
  } finally {
    await sql.end();
  }
});

Deno.test("inbound keywords: the same MessageSid delivered again writes nothing twice, and HELP is answered the same", async () => {
  const sql = connect();
  try {
    const w = await receivingWorkspace(sql, { help_reply: "Acme: call 555-0100.", opt_out_keywords: ["PARAR"] });
    const messages = [
      { body: "PARAR", sid: messageSid() },
      { body: "START", sid: messageSid() },
      { body: "HELP", sid: messageSid() },
    ];
    const first: string[] = [];
    for (const m of messages) first.push(await inbound(w.contactPhone, w.number, m.body, m.sid));
    const written = async () => {
      const [row] = await sql`
        select (select count(*)::int from consents where contact_id = ${w.contactId}) as consents,
               (select count(*)::int from contact_activities where contact_id = ${w.contactId}) as activities,
               (select count(*)::int from provider_events where contact_id = ${w.contactId}) as events`;
      return { ...row };
    };
    const before = await written();
    assert.deepEqual(before, { consents: 2, activities: before.activities, events: 3 });

    // Redelivered, with and without a fresh (unsigned) idempotency header.
    for (const [i, m] of messages.entries()) {
      assert.equal(await inbound(w.contactPhone, w.number, m.body, m.sid), first[i], `${m.body} again: the same answer`);
      assert.equal(await inbound(w.contactPhone, w.number, m.body, m.sid, crypto.randomUUID()), first[i]);
    }
    assert.match(first[2], /<Message>Acme: call 555-0100\.<\/Message>/);
    assert.deepEqual(await written(), before, "no second consent, activity or provider event");
    assert.equal(await optedOut(sql, w.contactId), false, "the replayed PARAR did not opt the contact out after its START");
  } finally {
    await sql.end();
  }
});
