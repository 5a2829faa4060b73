/**
 * What the sandbox posts, signed as Twilio signs it: status callbacks (with Twilio's retries of a
 * failing endpoint) and inbound-message webhooks.
 */
import twilio from "twilio";
import { API_VERSION, type MessageStatus } from "./behaviour.ts";
import { Http1Pool } from "./http1.ts";

/**
 * The form fields of a Twilio status callback, as Twilio posts them (and the sandbox does). Also
 * what tests and benchmarks sign when they play Twilio, so all three send the same thing.
 */
export function statusCallbackParams(m: {
  sid: string;
  accountSid: string;
  from: string;
  to: string;
  status: string;
  errorCode?: number | null;
  messagingServiceSid?: string | null;
}): Record<string, string> {
  const params: Record<string, string> = {
    MessageSid: m.sid,
    SmsSid: m.sid,
    AccountSid: m.accountSid,
    From: m.from,
    To: m.to,
    MessageStatus: m.status,
    SmsStatus: m.status,
    ApiVersion: API_VERSION,
  };
  if (m.messagingServiceSid) params.MessagingServiceSid = m.messagingServiceSid;
  if (m.errorCode != null) params.ErrorCode = String(m.errorCode);
  return params;
}

/** The form fields of Twilio's incoming-message webhook. */
export function inboundParams(m: {
  sid: string;
  accountSid: string;
  from: string;
  to: string;
  body: string;
  numSegments: string;
}): Record<string, string> {
  return {
    MessageSid: m.sid,
    SmsSid: m.sid,
    SmsMessageSid: m.sid,
    AccountSid: m.accountSid,
    From: m.from,
    To: m.to,
    Body: m.body,
    NumMedia: "0",
    NumSegments: m.numSegments,
    SmsStatus: "received",
    ApiVersion: API_VERSION,
  };
}

const HTTP_TIMEOUT_MS = 10_000;
const CALLBACK_MAX_ATTEMPTS = 4;
export const MAX_CONCURRENT_CALLBACKS = 32;

/** Resolves true after `ms`, or false as soon as `signal` aborts; never leaves a timer behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

export interface PostResult {
  status: number | null;
  body: string;
  error: string | null;
}

/**
 * Signed, form-encoded POST as Twilio sends webhooks; aborts on `signal` or after a timeout. A
 * plain-http receiver is reached through `pool`'s kept-alive connections, an https one by fetch.
 */
export async function postSigned(
  pool: Http1Pool,
  url: string,
  params: Record<string, string>,
  authToken: string,
  signal: AbortSignal,
  idempotencyToken: string,
): Promise<PostResult> {
  // One controller fed by both the timeout and `signal` (AbortSignal.any retains every signal it
  // creates on the long-lived parent in Deno, which leaks under load).
  const request = new AbortController();
  const onAbort = () => request.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => request.abort(new Error("timed out")), HTTP_TIMEOUT_MS);
  const headers = {
    "content-type": "application/x-www-form-urlencoded",
    "user-agent": "TwilioProxy/1.1",
    "x-twilio-signature": twilio.getExpectedTwilioSignature(authToken, url, params),
    "i-twilio-idempotency-token": idempotencyToken,
  };
  const form = new URLSearchParams(params).toString();
  try {
    if (url.startsWith("http:")) {
      const res = await pool.post(url, headers, form, request.signal);
      return { status: res.status, body: textDecoder.decode(res.body), error: null };
    }
    const res = await fetch(url, { method: "POST", headers, body: form, signal: request.signal });
    // Reading the body to the end lets the connection go back to the keep-alive pool.
    const body = await res.text();
    return { status: res.status, body, error: null };
  } catch (err) {
    return { status: null, body: "", error: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}

const textDecoder = new TextDecoder();

/**
 * Bounds concurrent outgoing callbacks. Under load thousands of messages change status at once;
 * unbounded, each would open its own connection to the (local, single-process) receiver.
 */
class Gate {
  #free: number;
  readonly #waiters: Array<() => void> = [];

  constructor(size: number) {
    this.#free = size;
  }

  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}

/** One status callback the sandbox tried to deliver. */
export interface CallbackRecord {
  status: MessageStatus;
  error_code: number | null;
  /** HTTP status of the last attempt, null when the endpoint could not be reached. */
  http_status: number | null;
  attempts: number;
  delivered: boolean;
  error: string | null;
  at_ms: number;
}

/**
 * Posts status callbacks as Twilio does: signed, at most 32 at once, and an unreachable or failing
 * (5xx) endpoint retried with exponential backoff; a 4xx is the receiver's answer and is final.
 */
export class CallbackPoster {
  readonly #gate = new Gate(MAX_CONCURRENT_CALLBACKS);

  constructor(
    private readonly pool: Http1Pool,
    private readonly authToken: string,
    /** The first retry's delay; each further one doubles it. */
    private readonly backoffMs: number,
    private readonly warn: (line: string) => void,
  ) {}

  /** Delivers one callback, keeping `record` up to date attempt by attempt. */
  async deliver(
    url: string,
    params: Record<string, string>,
    record: CallbackRecord,
    idempotencyToken: string,
    signal: AbortSignal,
  ): Promise<void> {
    for (let attempt = 1; attempt <= CALLBACK_MAX_ATTEMPTS; attempt++) {
      await this.#gate.acquire();
      let result: PostResult;
      try {
        if (signal.aborted) return; // close()/reset() drains queued waiters through here
        record.attempts = attempt;
        result = await postSigned(this.pool, url, params, this.authToken, signal, idempotencyToken);
      } finally {
        this.#gate.release();
      }
      record.http_status = result.status;
      record.error = result.error;
      if (result.status !== null && result.status < 500) {
        // A 4xx (e.g. a rejected signature) is the receiver's answer; retrying cannot change it.
        record.delivered = result.status < 300;
        return;
      }
      if (signal.aborted) return;
      if (attempt < CALLBACK_MAX_ATTEMPTS && !(await sleep(this.backoffMs * 2 ** (attempt - 1), signal))) return;
    }
    this.warn(
      `gave up on ${record.status} callback for ${params.MessageSid} to ${url} after ${CALLBACK_MAX_ATTEMPTS} attempts: ` +
        (record.error ?? `HTTP ${record.http_status}`),
    );
  }
}
