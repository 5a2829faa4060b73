// Missed status callbacks: the pg_cron job herald-reconcile-statuses marks the attempts of messages
// still sent that nothing was heard of for a while; each dispatch call takes a batch of them, asks
// Twilio for each one's status (paced, a few at a time) and hands the answer to the database, which
// applies it as it applies a status callback (forward by rank only), with actor reconciliation.

import type { Sql } from "./db.ts";
import { classifyProviderError, type TwilioClient } from "./twilio.ts";

export interface ReconcileOptions {
  /** Checks taken per call. */
  limit: number;
  /** How long a taken check is this call's (then free again, should the call die). */
  leaseSeconds: number;
  /** Provider look-ups in flight at once. */
  concurrency: number;
  /** Provider look-ups started per second, at most. */
  perSecond: number;
}

export interface ReconcileSummary {
  /** Statuses fetched from Twilio for messages whose callbacks may have been missed. */
  statuses_checked: number;
  /** Of those, messages that moved on (to delivered, undelivered…) because of it. */
  statuses_updated: number;
}

export async function reconcileStatuses(sql: Sql, client: TwilioClient, opts: ReconcileOptions): Promise<ReconcileSummary> {
  const due = await sql<{ provider_sid: string }[]>`
    select provider_sid from herald.claim_status_checks(${opts.limit}, make_interval(secs => ${opts.leaseSeconds}))`;
  const summary: ReconcileSummary = { statuses_checked: 0, statuses_updated: 0 };
  const started = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < due.length) {
      const i = next++;
      const wait = started + (i * 1000) / opts.perSecond - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const sid = due[i].provider_sid;
      let status: string | null = null;
      let code: number | null = null;
      let error: string | null = null;
      try {
        const m = await client.messages(sid).fetch();
        status = m.status;
        code = m.errorCode ?? null;
      } catch (err) {
        const failure = classifyProviderError(err);
        error = `${failure.code ?? failure.status ?? ""} ${failure.message}`.trim();
      }
      try {
        const [{ outcome }] = await sql<{ outcome: string }[]>`
          select herald.record_status_check(${sid}, ${status}, ${code}::integer, ${error}) as outcome`;
        if (status !== null) summary.statuses_checked++;
        if (outcome === "applied") summary.statuses_updated++;
      } catch (err) {
        // Not recorded: the check's lease runs out and a later call takes it again.
        console.error(`dispatch: could not record the status of ${sid}`, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, due.length) }, worker));
  return summary;
}
