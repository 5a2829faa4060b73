// Erasing a hard-deleted contact's message records at Twilio (DELETE /Messages/{Sid}). The
// database queues each sid in herald.provider_erasures in the same transaction as the delete;
// this works that outbox. A failure is recorded with a backoff and retried later by dispatch,
// never dropped.

import type { Sql } from "./db.ts";
import type { TwilioClient } from "./twilio.ts";
import { classifyProviderError } from "./twilio.ts";

export interface ErasureReport {
  requested: number;
  erased: number;
  failed: number;
}

interface PendingErasure {
  id: string;
  provider_sid: string;
}

/** Erases the pending records of one deletion (deletionId) or any that are due (deletionId null). */
export async function eraseProviderRecords(
  sql: Sql,
  client: TwilioClient,
  opts: { deletionId: number | null; limit?: number },
): Promise<ErasureReport> {
  // Claimed under a row lock with skip locked, so concurrent workers never erase the same sid twice.
  return await sql.begin(async (tx) => {
    const pending = await tx<PendingErasure[]>`
      select id::text, provider_sid from herald.provider_erasures
      where erased_at is null
        and (${opts.deletionId}::bigint is null and next_attempt_at <= now() or deletion_id = ${opts.deletionId}::bigint)
      order by id
      limit ${opts.limit ?? 500}
      for update skip locked`;
    const report: ErasureReport = { requested: pending.length, erased: 0, failed: 0 };
    for (const row of pending) {
      try {
        await client.messages(row.provider_sid).remove();
        await tx`update herald.provider_erasures set erased_at = now(), attempts = attempts + 1, last_error = null
                 where id = ${row.id}`;
        report.erased++;
      } catch (err) {
        const failure = classifyProviderError(err);
        if (failure.code === 20404) {
          // Twilio no longer has it: that is the outcome erasure wants.
          await tx`update herald.provider_erasures set erased_at = now(), attempts = attempts + 1,
                   last_error = 'not found at provider' where id = ${row.id}`;
          report.erased++;
          continue;
        }
        await tx`update herald.provider_erasures
                 set attempts = attempts + 1, last_error = ${`${failure.code ?? failure.status ?? ""} ${failure.message}`.trim()},
                     next_attempt_at = now() + least(interval '1 hour' * power(2, attempts), interval '1 day')
                 where id = ${row.id}`;
        report.failed++;
      }
    }
    return report;
  });
}
