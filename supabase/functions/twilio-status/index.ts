// POST /functions/v1/twilio-status: Twilio's message status callback. Verified by signature;
// the database applies it by rank, so duplicates and out-of-order callbacks change nothing.
// An unknown sid is answered 200 (and stored) so Twilio does not retry it forever.

import { z } from "zod";
import { db } from "../_shared/db.ts";
import { handle, json } from "../_shared/http.ts";
import { sidSchema } from "../_shared/sids.ts";
import { verifiedTwilioWebhook } from "../_shared/twilio-webhook.ts";

const StatusCallback = z.object({
  MessageSid: sidSchema("SM", "MM"),
  MessageStatus: z.enum([
    "accepted", "scheduled", "queued", "sending", "sent", "receiving", "received", "delivered", "undelivered",
    "failed", "read", "canceled", "partially_delivered",
  ]),
  ErrorCode: z.string().regex(/^\d+$/, "must be a number").optional(),
});

Deno.serve(handle(async (req) => {
  const { params, fields, idempotencyToken } = await verifiedTwilioWebhook(req, "twilio-status", StatusCallback, "invalid_callback");
  const { MessageSid, MessageStatus, ErrorCode } = fields;
  const [row] = await db()`
    select herald.apply_provider_status(${MessageSid}, ${MessageStatus}, ${ErrorCode ?? null}::integer,
                                        ${db().json(params)}, ${idempotencyToken}) as outcome`;
  if (row.outcome === "unknown_sid") console.warn(`twilio-status: unknown MessageSid ${MessageSid}`);
  return json({ outcome: row.outcome });
}));
