// Sending a batch: claim in the database, send each through Twilio at its reserved slot, record
// each answer in the database. Everything that decides (eligibility, rate, retry, backoff,
// opt-out on 21610) is in SQL; this module only moves messages between Postgres and Twilio.

import type { Sql } from "./db.ts";
import { classifyProviderError, type TwilioClient } from "./twilio.ts";
import { eraseProviderRecords } from "./erasure.ts";

export interface DispatchOptions {
  limit: number;
  statusCallbackUrl: string;
  leaseSeconds: number;
  /** Provider calls in flight at once. */
  concurrency: number;
  /** The provider client's timeout: a lease covers a message's slot plus this. */
  callTimeoutSeconds: number;
}

export interface DispatchSummary {
  claimed: number;
  sent: number;
  retried: number;
  failed: number;
  deferred: number;
  /** Not sent: the contact became off limits after the claim (or after a lost lease). */
  cancelled: number;
  reconciled: number;
  /** Not sent by this call: the lease was lost or another attempt holds the message. */
  skipped: number;
  /** No answer from the provider (timeout, broken connection): looked up before any resend. */
  unknown: number;
}

interface ClaimedMessage {
  message_id: string;
  attempt_no: number;
  to_phone: string;
  from_phone: string;
  body: string;
  channel: "sms" | "whatsapp";
  send_not_before: Date;
  provider_check_required: boolean;
  previous_attempt_requested_at: Date | null;
  /** Set when the contact may no longer be messaged (only for a message back from a lost lease). */
  blocked_reason: string | null;
}

type Outcome = "sent" | "permanent" | "transient" | "unknown" | "not_sent" | "failed" | Verdict["verdict"];

function address(channel: ClaimedMessage["channel"], phone: string): string {
  return channel === "whatsapp" ? `whatsapp:${phone}` : phone;
}

/**
 * After a call with no answer, or a lease that expired with Twilio's answer unknown: did Twilio
 * take the message? Looks for a message to the same number with the same body, created since the
 * first of the attempts whose answer was lost, that is not already another message's (or
 * attempt's) at Herald: an earlier message with the same text to the same number is not this one.
 */
async function findAtProvider(sql: Sql, client: TwilioClient, m: ClaimedMessage) {
  // Look-ups can fail too (each an attempt of its own): the search goes back to the first lost one.
  const [{ first_lost: firstLost }] = await sql<{ first_lost: Date | null }[]>`
    select min(requested_at) as first_lost from public.message_attempts
    where message_id = ${m.message_id} and attempt_no < ${m.attempt_no} and provider_sid is null
      and provider_status in ('requested', 'unknown')`;
  const since = new Date((firstLost ?? m.previous_attempt_requested_at ?? m.send_not_before).getTime() - 60_000);
  // No DateSent filter: a message Twilio has only queued has no date_sent yet. The list is
  // newest first, so the lost attempt is among the first page.
  const candidates = (await client.messages.list({ to: address(m.channel, m.to_phone), limit: 100 }))
    .filter((c) => c.body === m.body && c.dateCreated >= since && c.direction !== "inbound");
  if (candidates.length === 0) return undefined;
  const sids = candidates.map((c) => c.sid);
  const held = await sql<{ sid: string }[]>`
    select provider_sid as sid from public.message_attempts where provider_sid = any (${sids}::text[])
    union select provider_sid from public.messages where provider_sid = any (${sids}::text[])`;
  const heldSids = new Set(held.map((h) => h.sid));
  return candidates.find((c) => !heldSids.has(c.sid));
}

interface Verdict {
  verdict: "send" | "skip" | "cancelled" | "deferred";
  reason: string | null;
}

/**
 * Right before the provider call: is the message still this attempt's under a live lease, may its
 * contact be messaged, is the window open? Anything but "send" has been applied by the database
 * already (cancelled or deferred with the reason; a lost lease is the reaper's).
 */
async function confirmSend(sql: Sql, m: ClaimedMessage, opts: DispatchOptions): Promise<Verdict> {
  const [v] = await sql<Verdict[]>`
    select verdict, reason from herald.confirm_send(${[m.message_id]}::uuid[], ${[m.attempt_no]}::integer[],
                                                    make_interval(secs => ${opts.callTimeoutSeconds}))`;
  return v;
}

async function sendOne(sql: Sql, client: TwilioClient, m: ClaimedMessage, opts: DispatchOptions) {
  const wait = m.send_not_before.getTime() - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));

  let outcome: Outcome = "sent";
  let sid: string | null = null;
  let providerStatus: string | null = null;
  let code: number | null = null;
  let message: string | null = null;
  let reconciled = false;
  const failed = (err: unknown): Outcome => {
    const failure = classifyProviderError(err);
    code = failure.code;
    message = failure.message;
    // Rejected credentials are Herald's configuration, not the message's fault: no attempt spent.
    return outcome = failure.status === 401 || failure.code === 20003 ? "not_sent" : failure.kind;
  };
  let found: Awaited<ReturnType<typeof findAtProvider>>;
  try {
    found = m.provider_check_required ? await findAtProvider(sql, client, m) : undefined;
  } catch (err) {
    // A look-up that failed leaves the message's fate as unknown as it was.
    if (failed(err) !== "not_sent") outcome = "unknown";
  }
  if (!found && m.provider_check_required && outcome === "sent") {
    // Twilio does not have it: may it be sent again (max_attempts counts the lost calls)?
    const [{ verdict }] = await sql<{ verdict: "send" | "failed" | "skip" }[]>`
      select herald.record_lookup_miss(${m.message_id}::uuid, ${m.attempt_no}) as verdict`;
    if (verdict !== "send") return { status: verdict === "failed" ? "failed" : null, reconciled, outcome: verdict };
  }
  if (found) {
    reconciled = true;
    sid = found.sid;
    providerStatus = found.status;
    code = found.errorCode ?? null;
  } else if (m.blocked_reason && outcome === "sent") {
    // Twilio never got it and the contact is now off limits: the database cancels it.
    outcome = "not_sent";
    message = `not sent: ${m.blocked_reason}`;
  } else if (outcome === "sent") {
    // The slot wait may have been long: ask the database once more, right before the call. (A
    // database error here is not the provider's: it leaves the message to its lease.)
    const verdict = await confirmSend(sql, m, opts);
    if (verdict.verdict !== "send") return { status: null, reconciled, outcome: verdict.verdict };
    try {
      const created = await client.messages.create({
        to: address(m.channel, m.to_phone),
        from: address(m.channel, m.from_phone),
        body: m.body,
        statusCallback: opts.statusCallbackUrl,
      });
      sid = created.sid;
      providerStatus = created.status;
    } catch (err) {
      failed(err);
    }
  }
  const [row] = await sql`
    select herald.record_send_result(${m.message_id}::uuid, ${m.attempt_no}, ${outcome}, ${sid}, ${providerStatus},
                                     ${code}::integer, ${message}) as status`;
  return { status: row.status as string | null, reconciled, outcome };
}

export async function dispatchBatch(sql: Sql, client: TwilioClient, opts: DispatchOptions): Promise<DispatchSummary> {
  const claimed = await sql<ClaimedMessage[]>`
    select * from herald.claim_messages(${opts.limit}, make_interval(secs => ${opts.leaseSeconds}),
                                        make_interval(secs => ${opts.callTimeoutSeconds}))`;
  const summary: DispatchSummary = {
    claimed: claimed.length,
    sent: 0,
    retried: 0,
    failed: 0,
    deferred: 0,
    cancelled: 0,
    reconciled: 0,
    skipped: 0,
    unknown: 0,
  };

  let next = 0;
  const worker = async () => {
    while (next < claimed.length) {
      const m = claimed[next++];
      try {
        const r = await sendOne(sql, client, m, opts);
        if (r.reconciled) summary.reconciled++;
        if (r.outcome === "cancelled" || r.status === "cancelled") summary.cancelled++;
        else if (r.outcome === "deferred" || r.outcome === "not_sent") summary.deferred++;
        else if (r.outcome === "skip") summary.skipped++;
        else if (r.outcome === "unknown") summary.unknown++;
        else if (r.status === "scheduled") summary.retried++;
        else if (r.status === "failed" || r.status === "undelivered") summary.failed++;
        else if (r.status !== null) summary.sent++;
      } catch (err) {
        // The database did not take the answer; the lease expiry and provider check recover it.
        console.error(`dispatch: could not record message ${m.message_id}`, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, claimed.length) }, worker));

  // Provider erasures that failed earlier are retried here, on the dispatcher's cadence.
  await eraseProviderRecords(sql, client, { deletionId: null, limit: 50 }).catch((err) =>
    console.error("dispatch: provider erasure sweep failed", err)
  );
  return summary;
}
