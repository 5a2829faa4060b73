// POST /functions/v1/dispatch { limit?, budget_seconds? } with the project's service key (the
// legacy service_role key or a secret key): claims due messages, `limit` at a time, and sends them
// through Twilio until its time budget is spent (herald.dispatch_settings.call_budget unless
// given; 0 = one claim) or no work is left, then fetches the status of a batch of messages whose
// callbacks may have been missed. Safe to run many at once: claims never overlap, and pg_cron
// starts as many as herald.dispatch_fanout says.

import { z } from "zod";
import { db } from "../_shared/db.ts";
import { requireServiceKey } from "../_shared/caller.ts";
import { handle, json, readJsonBody, requireMethod } from "../_shared/http.ts";
import { dispatchBatch } from "../_shared/dispatch.ts";
import { reconcileStatuses, type ReconcileSummary } from "../_shared/reconcile.ts";
import { provider, PROVIDER_TIMEOUT_MS } from "../_shared/provider.ts";
import { publicFunctionsUrl } from "../_shared/twilio-webhook.ts";

const Body = z.object({
  limit: z.number().int().min(1).max(5000).optional(),
  budget_seconds: z.number().int().min(0).max(120).optional(),
}).strict();

Deno.serve(handle(async (req) => {
  requireMethod(req, "POST");
  await requireServiceKey(req);
  const { limit = 200, budget_seconds } = await readJsonBody(req, Body, { empty: {} });
  const summary = await dispatchBatch(db(), provider(), {
    limit,
    // Two claims' worth in hand: the senders' next slots stay reserved while this call sends.
    refillBelow: 2 * limit,
    budgetSeconds: budget_seconds ?? null,
    statusCallbackUrl: `${publicFunctionsUrl()}/twilio-status`,
    leaseSeconds: 60,
    concurrency: 32,
    callTimeoutSeconds: PROVIDER_TIMEOUT_MS / 1000,
  });
  const statuses = await reconcileStatuses(db(), provider(), { limit: 100, leaseSeconds: 60, concurrency: 4, perSecond: 20 })
    .catch((err): ReconcileSummary => {
      console.error("dispatch: status reconciliation failed", err);
      return { statuses_checked: 0, statuses_updated: 0 };
    });
  return json({ ...summary, ...statuses });
}));
