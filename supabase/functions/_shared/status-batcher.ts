// Twilio's status callbacks, applied in batches (_shared/batcher.ts): those that arrive while one
// batch is being applied go together in the next herald.apply_status_callbacks call, each
// answered with its own outcome; a lone callback goes in the same turn of the event loop. When
// the call fails, nothing of that batch was stored (one transaction), and each of its callbacks
// is tried alone: one the database refuses is answered 500 by itself. Twilio does not reliably
// send a status callback again after a 500, so failing its batch-mates would lose their statuses.

import { serialDb } from "./db.ts";
import { HttpError } from "./http.ts";
import { Batcher } from "./batcher.ts";

export interface StatusCallback {
  sid: string;
  status: string;
  errorCode: number | null;
  /** Every form field as posted: what provider_events stores. */
  payload: Record<string, string>;
  idempotencyToken: string | null;
}

export type StatusOutcome = "applied" | "unchanged" | "duplicate" | "unknown_sid" | "erased";

/** Callbacks per call at most (the database takes up to 1000; each holds its sid's lock to the end of the call). */
const MAX_BATCH = 250;

async function applyStatusCallbacks(batch: StatusCallback[]): Promise<StatusOutcome[]> {
  try {
    // One batch at a time, so one connection of its own (db.ts): the same backend, warm.
    const [row] = await serialDb()`
      select herald.apply_status_callbacks(
        ${batch.map((c) => c.sid)}::text[],
        ${batch.map((c) => c.status)}::text[],
        ${batch.map((c) => c.errorCode)}::integer[],
        ${batch.map((c) => JSON.stringify(c.payload))}::text[]::jsonb[],
        ${batch.map((c) => c.idempotencyToken)}::text[]) as outcomes`;
    return row.outcomes as StatusOutcome[];
  } catch (err) {
    // Logged once for the batch; each request gets the one error path's 500.
    console.error(`twilio-status: a batch of ${batch.length} callback(s) failed, none stored:`, err);
    throw new HttpError(500, "internal_error", "the function failed; see its logs");
  }
}

const batcher = new Batcher(applyStatusCallbacks, {
  maxSize: MAX_BATCH,
  single: async (callback) => (await applyStatusCallbacks([callback]))[0],
});

/** Applies one callback, with whatever others arrive meanwhile; its outcome once stored. */
export function applyStatusCallback(callback: StatusCallback): Promise<StatusOutcome> {
  return batcher.add(callback);
}
