// POST /functions/v1/delete-contact { contact_id, hard? } with a user's JWT.
// Runs delete_contact() as that user (RLS and the RPC's role checks apply); on a hard delete
// also erases the contact's message records at Twilio and reports how that went.

import { z } from "zod";
import { asCaller, db } from "../_shared/db.ts";
import { requireUser } from "../_shared/caller.ts";
import { handle, json, readJsonBody, requireMethod } from "../_shared/http.ts";
import { rethrowAsHttp } from "../_shared/pg-errors.ts";
import { eraseProviderRecords } from "../_shared/erasure.ts";
import { provider } from "../_shared/provider.ts";

const Body = z.object({
  contact_id: z.string().uuid(),
  hard: z.boolean().optional().default(false),
}).strict();

Deno.serve(handle(async (req) => {
  requireMethod(req, "POST");
  const claims = await requireUser(req);
  const { contact_id, hard } = await readJsonBody(req, Body);

  const result = await asCaller(claims, async (tx) => {
    const [row] = await tx`select public.delete_contact(${contact_id}::uuid, ${hard}) as result`;
    return row.result as Record<string, unknown> & { deletion_id: number };
  }).catch(rethrowAsHttp);

  if (!hard) return json(result);
  const provider_erasure = await eraseProviderRecords(db(), provider(), { deletionId: result.deletion_id });
  return json({ ...result, provider_erasure });
}));
