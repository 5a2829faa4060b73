// POST /functions/v1/twilio-inbound: an inbound SMS or WhatsApp message. Verified by signature;
// STOP/START keywords and stop_on_reply are applied by the database. Answers empty TwiML.

import { z } from "zod";
import { db } from "../_shared/db.ts";
import { handle, HttpError } from "../_shared/http.ts";
import { verifiedTwilioWebhook } from "../_shared/twilio-webhook.ts";

const address = z.string().transform((s) => s.replace(/^whatsapp:/, "")).pipe(
  z.string().regex(/^\+[1-9][0-9]{6,14}$/, "From and To must be E.164 numbers"),
);
const Inbound = z.object({
  MessageSid: z.string().regex(/^(SM|MM)[0-9a-f]{32}$/, "MessageSid must be SM or MM followed by 32 hex digits"),
  From: address,
  To: address,
  Body: z.string().default(""),
});

const EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';

Deno.serve(handle(async (req) => {
  // The idempotency header is not signed: the database keys an inbound message by its MessageSid.
  const { params } = await verifiedTwilioWebhook(req, "twilio-inbound");
  const parsed = Inbound.safeParse(params);
  if (!parsed.success) throw new HttpError(400, "invalid_inbound", parsed.error.issues[0].message);
  const { MessageSid, From, To, Body } = parsed.data;
  await db()`select herald.apply_inbound(${From}, ${To}, ${Body}, ${MessageSid}, ${db().json(params)})`;
  return new Response(EMPTY_TWIML, { headers: { "content-type": "text/xml" } });
}));
