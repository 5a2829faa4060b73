// Sending a batch: claim in the database, send each through Twilio at its reserved slot, record
// each answer in the database. Everything that decides (eligibility, rate, retry, backoff,
// opt-out on 21610) is in SQL; this module only moves messages between Postgres and Twilio.

import type { Sql } from "./db.ts";
import { classifyProviderError, messageCreateParams, type TwilioClient } from "./twilio.ts";
import { eraseProviderRecords } from "./erasure.ts";
import { Batcher } from "./batcher.ts";

export interface DispatchOptions {
  /** Messages one claim takes at most. */
  limit: number;
  /** Claim again when fewer claimed messages than this wait for a worker. */
  refillBelow: number;
  /**
   * How long the call keeps claiming, in seconds: null for the database's setting
   * (herald.dispatch_settings.call_budget); 0 for one claim.
   */
  budgetSeconds: number | null;
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
  /**
   * The text, as the look-up after a lost answer matches it at Twilio. What the call carries is
   * confirm_send's to say, right before it (the claim's choice of body or template can go stale).
   */
  body: string;
  /** Seconds from the slot to the message's deadline (Twilio's ValidityPeriod), or null. */
  validity_period: number | null;
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
  verdict: "send" | "skip" | "cancelled" | "deferred" | "failed";
  reason: string | null;
  /** For "send": what the call carries now (the claim's choice may be stale, see confirmSends). */
  body: string | null;
  content_sid: string | null;
  content_variables: Record<string, string> | null;
}

/**
 * Right before the provider call: is the message still this attempt's under a live lease, may its
 * contact be messaged, is the window open, can it go at all (a WhatsApp message outside the
 * 24-hour window needs a template)? Anything but "send" has been applied by the database already
 * (cancelled, deferred or failed with the reason; a lost lease is the reaper's). Asked for every
 * message whose slot came in the same turn at once. A message that may go comes with what its call
 * carries now: a WhatsApp window that closed while it waited for its slot turns a free-form body
 * into its template (sent as claimed, Twilio would fail it with 63016).
 */
async function confirmSends(sql: Sql, ms: ClaimedMessage[], opts: DispatchOptions): Promise<Verdict[]> {
  const rows = await sql<(Verdict & { message_id: string })[]>`
    select message_id, verdict, reason, body, content_sid, content_variables
    from herald.confirm_send(${ms.map((m) => m.message_id)}::uuid[], ${ms.map((m) => m.attempt_no)}::integer[],
                             make_interval(secs => ${opts.callTimeoutSeconds}))`;
  const byId = new Map(rows.map((r) => [r.message_id, r]));
  return ms.map((m) => {
    const v = byId.get(m.message_id);
    if (!v) throw new Error(`confirm_send gave no verdict for message ${m.message_id}`);
    return v;
  });
}

/** The provider's answer to one attempt, as herald.record_send_results takes it. */
interface Answer {
  message_id: string;
  attempt_no: number;
  outcome: Outcome;
  sid: string | null;
  providerStatus: string | null;
  code: number | null;
  message: string | null;
  httpStatus: number | null;
}

/**
 * Records answers in one statement: those where Twilio accepted a message still held by its
 * attempt are applied set-based (one update per table, the ledger's triggers once), the rest one
 * by one inside the database. Answers each message's resulting status.
 */
async function recordAnswers(sql: Sql, answers: Answer[]): Promise<(string | null)[]> {
  const rows = await sql<{ status: string | null }[]>`
    select status from herald.record_send_results(
      ${answers.map((a) => a.message_id)}::uuid[], ${answers.map((a) => a.attempt_no)}::integer[],
      ${answers.map((a) => a.outcome)}::text[], ${answers.map((a) => a.sid)}::text[],
      ${answers.map((a) => a.providerStatus)}::text[], ${answers.map((a) => a.code)}::integer[],
      ${answers.map((a) => a.message)}::text[], ${answers.map((a) => a.httpStatus)}::integer[])`;
  return rows.map((r) => r.status);
}

/** A dispatcher call's round trips that many workers share: confirmations and answers, batched. */
interface Recording {
  confirm: Batcher<ClaimedMessage, Verdict>;
  record: Batcher<Answer, string | null>;
}

function recording(sql: Sql, opts: DispatchOptions): Recording {
  // A batch the database refuses is tried an item at a time: one bad row fails only its own message.
  return {
    confirm: new Batcher((ms) => confirmSends(sql, ms, opts), {
      maxSize: 500,
      single: async (m) => (await confirmSends(sql, [m], opts))[0],
    }),
    record: new Batcher((as) => recordAnswers(sql, as), {
      maxSize: 500,
      single: async (a) => (await recordAnswers(sql, [a]))[0],
    }),
  };
}

async function sendOne(sql: Sql, client: TwilioClient, m: ClaimedMessage, opts: DispatchOptions, rec: Recording) {
  const wait = m.send_not_before.getTime() - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));

  let outcome: Outcome = "sent";
  let sid: string | null = null;
  let providerStatus: string | null = null;
  let code: number | null = null;
  let message: string | null = null;
  let httpStatus: number | null = null;
  let reconciled = false;
  // The database acts on Twilio's answer by its code and HTTP status (herald.provider_error_classes:
  // a 429 or rejected credentials spend no attempt, 63038 waits for the next day…); the kind
  // guessed here counts only for a failure that got no answer.
  const failed = (err: unknown): Outcome => {
    const failure = classifyProviderError(err);
    code = failure.code;
    message = failure.message;
    httpStatus = failure.status;
    return outcome = failure.kind;
  };
  let found: Awaited<ReturnType<typeof findAtProvider>>;
  try {
    found = m.provider_check_required ? await findAtProvider(sql, client, m) : undefined;
  } catch (err) {
    // A look-up that failed leaves the message's fate as unknown as it was.
    failed(err);
    outcome = "unknown";
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
    const verdict = await rec.confirm.add(m);
    if (verdict.verdict !== "send") {
      return { status: verdict.verdict === "failed" ? "failed" : null, reconciled, outcome: verdict.verdict };
    }
    try {
      const created = await client.messages.create(messageCreateParams(
        address(m.channel, m.to_phone),
        address(m.channel, m.from_phone),
        {
          body: verdict.body ?? "",
          contentSid: verdict.content_sid,
          contentVariables: verdict.content_variables,
          validityPeriod: m.validity_period,
        },
        opts.statusCallbackUrl,
      ));
      sid = created.sid;
      providerStatus = created.status;
    } catch (err) {
      failed(err);
    }
  }
  const status = await rec.record.add({
    message_id: m.message_id,
    attempt_no: m.attempt_no,
    outcome,
    sid,
    providerStatus,
    code,
    message,
    httpStatus,
  });
  return { status, reconciled, outcome };
}

/** Resolves waiters when notified, or each after its own timeout. */
class Wakeup {
  #waiters = new Set<() => void>();

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }

  notify(): void {
    for (const done of [...this.#waiters]) done();
  }
}

/** After a claim that got less than it asked for, the next one waits this long. */
const CLAIM_RETRY_MS = 1000;
/**
 * A call holds no more claimed messages than it has sent in this long (once it has been running
 * that long): what it holds then goes out well within a lease's 15 s past its slot, however slow
 * the provider or the machine, instead of being reaped and looked up at the provider.
 */
const HOLD_MS = 10_000;

/**
 * One dispatcher call: registered as running (herald.begin_dispatch_run) for its time budget, it
 * keeps claiming while it holds fewer than `refillBelow` claimed messages (and no more than it
 * sent in the last HOLD_MS) and keeps up with their slots; its workers send each message as its
 * slot comes. It stops claiming when the budget is spent or a claim finds nothing while it has
 * nothing left to send; a budget of 0 is one claim. A claim reserves slots half its lease ahead
 * and a lease is at least 10 s, so near the end of the budget a claim reserves at most 5 s past
 * it: the call answers within its budget plus those 5 s and the provider timeout.
 */
export async function dispatchBatch(sql: Sql, client: TwilioClient, opts: DispatchOptions): Promise<DispatchSummary> {
  const [run] = await sql<{ run_id: string; budget_ms: number }[]>`
    select run_id, (extract(epoch from budget) * 1000)::float8 as budget_ms
    from herald.begin_dispatch_run(make_interval(secs => ${opts.budgetSeconds}))`;
  const deadline = Date.now() + run.budget_ms;
  const rec = recording(sql, opts);
  const summary: DispatchSummary = {
    claimed: 0,
    sent: 0,
    retried: 0,
    failed: 0,
    deferred: 0,
    cancelled: 0,
    reconciled: 0,
    skipped: 0,
    unknown: 0,
  };

  // Claimed messages wait in `pending` (earliest slot first: calls claim side by side, so a later
  // claim may hold earlier slots than an earlier one) until their slot comes; then a worker takes
  // each, so the workers' concurrency is spent on provider calls, not on waiting for slots.
  const pending: ClaimedMessage[] = [];
  const due: ClaimedMessage[] = [];
  const idleWorkers: ((m: ClaimedMessage | null) => void)[] = [];
  let slotTimer: ReturnType<typeof setTimeout> | undefined;
  /** Taken by a worker and not yet recorded. */
  let sending = 0;
  let claiming = true;
  const workTaken = new Wakeup();
  const held = () => pending.length + due.length;
  const startedAt = Date.now();
  /** When each message this call finished with in the last HOLD_MS was done. */
  const doneAt: number[] = [];
  const holdTarget = () => {
    const now = Date.now();
    while (doneAt.length && doneAt[0] <= now - HOLD_MS) doneAt.shift();
    if (now - startedAt < HOLD_MS) return opts.refillBelow;
    return Math.min(opts.refillBelow, Math.max(Math.ceil(opts.limit / 2), doneAt.length));
  };

  /** Hands every message whose slot has come to an idle worker (or queues it), and waits for the next. */
  const release = () => {
    clearTimeout(slotTimer);
    slotTimer = undefined;
    const now = Date.now();
    while (pending.length && pending[0].send_not_before.getTime() <= now) {
      const m = pending.shift()!;
      const worker = idleWorkers.shift();
      if (worker) worker(m);
      else due.push(m);
    }
    if (pending.length) slotTimer = setTimeout(release, pending[0].send_not_before.getTime() - now);
    else if (!claiming) for (const worker of idleWorkers.splice(0)) worker(null);
    workTaken.notify();
  };

  const nextMessage = (): Promise<ClaimedMessage | null> => {
    const m = due.shift();
    if (m) {
      workTaken.notify();
      return Promise.resolve(m);
    }
    if (!claiming && pending.length === 0) return Promise.resolve(null);
    return new Promise((resolve) => idleWorkers.push(resolve));
  };

  const claim = async (limit: number, leaseSeconds: number) => {
    const claimed = await sql<ClaimedMessage[]>`
      select * from herald.claim_messages(${limit}, make_interval(secs => ${leaseSeconds}),
                                          make_interval(secs => ${opts.callTimeoutSeconds}))`;
    summary.claimed += claimed.length;
    if (claimed.length) {
      pending.push(...claimed);
      pending.sort((a, b) => a.send_not_before.getTime() - b.send_not_before.getTime());
      release();
    }
    return claimed.length;
  };

  // Slots up to what is left of the budget (a claim reserves half its lease ahead).
  const lease = () =>
    run.budget_ms === 0
      ? opts.leaseSeconds
      : Math.max(10, Math.min(opts.leaseSeconds, (2 * (deadline - Date.now())) / 1000));

  const claimer = async () => {
    try {
      // The first claim is made whatever the budget, and its failure is the call's.
      if ((await claim(opts.limit, lease())) === 0 || run.budget_ms === 0) return;
      for (;;) {
        const leftMs = deadline - Date.now();
        if (leftMs <= 0) return;
        // Enough in hand, or behind: a message whose slot has come waits for a worker. Claiming
        // more then would only reserve slots this call cannot keep, and age what it holds past
        // its lease; the backlog stays queued for calls that keep up.
        const target = holdTarget();
        if (held() >= target || due.length > 0) {
          await workTaken.wait(Math.min(CLAIM_RETRY_MS, leftMs));
          continue;
        }
        const asked = Math.min(opts.limit, target - held());
        let got: number;
        try {
          got = await claim(asked, lease());
        } catch (err) {
          // What is held still goes out; the next call claims the rest.
          console.error("dispatch: a claim failed; sending what this call holds", err);
          return;
        }
        if (got === 0 && held() === 0 && sending === 0) return;
        if (got < asked) await new Promise((r) => setTimeout(r, Math.min(CLAIM_RETRY_MS, Math.max(0, deadline - Date.now()))));
      }
    } finally {
      claiming = false;
      release();
    }
  };

  const worker = async () => {
    for (;;) {
      const m = await nextMessage();
      if (!m) return;
      sending++;
      try {
        const r = await sendOne(sql, client, m, opts, rec);
        if (r.reconciled) summary.reconciled++;
        if (r.outcome === "cancelled" || r.status === "cancelled") summary.cancelled++;
        else if (r.outcome === "deferred" || r.outcome === "not_sent") summary.deferred++;
        else if (r.outcome === "skip") summary.skipped++;
        else if (r.outcome === "unknown") summary.unknown++;
        else if (r.status === "scheduled" || r.status === "queued") summary.retried++;
        else if (r.status === "failed" || r.status === "undelivered") summary.failed++;
        else if (r.status !== null) summary.sent++;
      } catch (err) {
        // The database did not take the answer; the lease expiry and provider check recover it.
        console.error(`dispatch: could not record message ${m.message_id}`, err);
      } finally {
        sending--;
        doneAt.push(Date.now());
      }
    }
  };

  try {
    await Promise.all([claimer(), ...Array.from({ length: opts.concurrency }, worker)]);
  } finally {
    await sql`select herald.end_dispatch_run(${run.run_id}::uuid)`.catch((err) =>
      console.error("dispatch: could not end its run (it stops counting when its budget is over)", err)
    );
  }

  // Provider erasures that failed earlier are retried here, on the dispatcher's cadence.
  await eraseProviderRecords(sql, client, { deletionId: null, limit: 50 }).catch((err) =>
    console.error("dispatch: provider erasure sweep failed", err)
  );
  return summary;
}
