// POST /functions/v1/twilio-inbound: an inbound SMS or WhatsApp message. Verified by signature;
// keywords (the standard sets and the workspace's own), consents and stop_on_reply are applied by
// the database. Answers TwiML: the workspace's help_reply to HELP and INFO, empty otherwise.

import { z } from "zod";
import { db } from "../_shared/db.ts";
import { handle } from "../_shared/http.ts";
import { sidSchema } from "../_shared/sids.ts";
import { twimlResponse } from "../_shared/twiml.ts";
import { verifiedTwilioWebhook } from "../_shared/twilio-webhook.ts";

const address = z.string().transform((s) => s.replace(/^whatsapp:/, "")).pipe(
  z.string().regex(/^\+[1-9][0-9]{6,14}$/, "must be an E.164 number"),
);
const Inbound = z.object({
  MessageSid: sidSchema("SM", "MM"),
  From: address,
  To: address,
  Body: z.string().default(""),
});

Deno.serve(handle(async (req) => {
  // The idempotency header is not signed: the database keys an inbound message by its MessageSid.
  const { params, fields } = await verifiedTwilioWebhook(req, "twilio-inbound", Inbound, "invalid_inbound");
  const { MessageSid, From, To, Body } = fields;
  const [{ reply }] = await db()`
    select reply from herald.apply_inbound(${From}, ${To}, ${Body}, ${MessageSid}, ${db().json(params)})`;
  return twimlResponse(reply);
}));
