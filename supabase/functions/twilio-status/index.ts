// POST /functions/v1/twilio-status: Twilio's message status callback. Verified by signature;
// the database applies it by rank, so duplicates and out-of-order callbacks change nothing.
// An unknown sid is answered 200 (and stored) so Twilio does not retry it forever. Callbacks that
// arrive together are applied together (_shared/status-batcher.ts), each answered on its own.

import { z } from "zod";
import { handle, json } from "../_shared/http.ts";
import { sidSchema } from "../_shared/sids.ts";
import { applyStatusCallback } from "../_shared/status-batcher.ts";
import { verifiedTwilioWebhook } from "../_shared/twilio-webhook.ts";

const StatusCallback = z.object({
  MessageSid: sidSchema("SM", "MM"),
  MessageStatus: z.enum([
    "accepted", "scheduled", "queued", "sending", "sent", "receiving", "received", "delivered", "undelivered",
    "failed", "read", "canceled", "partially_delivered",
  ]),
  // Within the database's integer: one that is not would fail every callback applied with it.
  ErrorCode: z.string().regex(/^\d+$/, "must be a number")
    .refine((v) => !/^\d+$/.test(v) || Number(v) <= 2_147_483_647, "must be at most 2147483647").optional(),
});

Deno.serve(handle(async (req) => {
  const { params, fields, idempotencyToken } = await verifiedTwilioWebhook(req, "twilio-status", StatusCallback, "invalid_callback");
  const { MessageSid, MessageStatus, ErrorCode } = fields;
  const outcome = await applyStatusCallback({
    sid: MessageSid,
    status: MessageStatus,
    errorCode: ErrorCode === undefined ? null : Number(ErrorCode),
    payload: params,
    idempotencyToken,
  });
  if (outcome === "unknown_sid") console.warn(`twilio-status: unknown MessageSid ${MessageSid}`);
  return json({ outcome });
}));
