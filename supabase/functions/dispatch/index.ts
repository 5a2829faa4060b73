// POST /functions/v1/dispatch { limit? } with the service role key: claims due messages and sends
// them through Twilio. Safe to run many at once: claims never overlap.

import { z } from "zod";
import { db } from "../_shared/db.ts";
import { requireServiceRole } from "../_shared/caller.ts";
import { handle, HttpError, json, requireMethod } from "../_shared/http.ts";
import { dispatchBatch } from "../_shared/dispatch.ts";
import { provider, PROVIDER_TIMEOUT_MS } from "../_shared/provider.ts";
import { publicFunctionsUrl } from "../_shared/twilio-webhook.ts";

const Body = z.object({ limit: z.number().int().min(1).max(5000).optional() }).strict();

Deno.serve(handle(async (req) => {
  requireMethod(req, "POST");
  await requireServiceRole(req);
  const text = await req.text();
  const parsed = Body.safeParse(text.trim() === "" ? {} : (() => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  })());
  if (!parsed.success) throw new HttpError(400, "invalid_body", `expected { limit?: 1..5000 }: ${parsed.error.issues[0].message}`);
  const summary = await dispatchBatch(db(), provider(), {
    limit: parsed.data.limit ?? 200,
    statusCallbackUrl: `${publicFunctionsUrl()}/twilio-status`,
    leaseSeconds: 60,
    concurrency: 32,
    callTimeoutSeconds: PROVIDER_TIMEOUT_MS / 1000,
  });
  return json(summary);
}));
