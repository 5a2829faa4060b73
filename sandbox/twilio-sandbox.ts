/**
 * Local Twilio stand-in for development and tests (see CONTRACT.md, "Twilio sandbox").
 *
 * Speaks the subset of Twilio's 2010-04-01 Messages API that Herald uses, in Twilio's wire format,
 * so the real `twilio` client can be pointed at it. Outcomes are chosen by the `To` number (Twilio's
 * magic test numbers plus a few extensions), status callbacks and inbound webhooks are signed with
 * the library's own `getExpectedTwilioSignature`, and `GET /` is an inbox page to reply from.
 *
 * Run: deno run -A --config supabase/functions/deno.json sandbox/twilio-sandbox.ts
 */
import twilio from "twilio";
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

export type MessageStatus =
  | "accepted"
  | "scheduled"
  | "queued"
  | "sending"
  | "sent"
  | "delivered"
  | "undelivered"
  | "failed"
  | "canceled"
  | "received";

/** A Message resource exactly as Twilio serialises it (snake_case JSON). */
export interface MessageResource {
  account_sid: string;
  api_version: "2010-04-01";
  body: string;
  date_created: string;
  date_sent: string | null;
  date_updated: string;
  direction: "outbound-api" | "inbound";
  error_code: number | null;
  error_message: string | null;
  from: string | null;
  messaging_service_sid: string | null;
  num_media: string;
  num_segments: string;
  price: string | null;
  price_unit: string;
  sid: string;
  status: MessageStatus;
  subresource_uris: { media: string; feedback: string };
  to: string;
  uri: string;
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

/** A stored message as the admin endpoints and `messages()` expose it. */
export interface SandboxMessage extends MessageResource {
  /** When the create request (or the inbound reply) reached the sandbox, epoch ms. */
  received_at_ms: number;
  status_callback: string | null;
  callbacks: CallbackRecord[];
  /** Inbound messages only: what the inbound webhook answered. */
  webhook_status?: number | null;
  webhook_error?: string | null;
}

/** One authenticated create request, whatever its outcome. */
export interface CreateRequestRecord {
  to: string | null;
  received_at_ms: number;
  http_status: number;
  error_code: number | null;
  sid: string | null;
}

export interface SandboxOptions {
  /** Default 54330; 0 picks a free port. */
  port?: number;
  hostname?: string;
  accountSid: string;
  authToken: string;
  /** Where replies from the inbox (and `POST /_sandbox/inbound`) are delivered. */
  inboundUrl?: string;
  /** Spacing between consecutive status callbacks of one message. Default 20. */
  callbackDelayMs?: number;
}

export interface Sandbox {
  url: string;
  port: number;
  messages(): SandboxMessage[];
  reset(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Behaviour tables
// ---------------------------------------------------------------------------------------------

const API_VERSION = "2010-04-01";
/** Twilio's "valid From" test number; used as the sender a Messaging Service picks. */
const SERVICE_SENDER = "+15005550006";
const CALLBACK_MAX_ATTEMPTS = 4;
const HTTP_TIMEOUT_MS = 10_000;
const RATE_LIMITED_TRIES = 2;
const MAX_CONCURRENT_CALLBACKS = 32;

interface RejectRule {
  status: number;
  code: number;
  message: (to: string, from: string | null) => string;
}

/** Twilio's documented magic `To` numbers, rejected synchronously as Twilio does. */
const REJECTED_TO: Record<string, RejectRule> = {
  "+15005550001": {
    status: 400,
    code: 21211,
    message: (to) => `The 'To' number ${to} is not a valid phone number.`,
  },
  "+15005550002": {
    status: 400,
    code: 21612,
    message: (to, from) =>
      `The 'To' phone number: ${to}, is not currently reachable using the 'From' phone number: ${
        from ?? SERVICE_SENDER
      } via SMS.`,
  },
  "+15005550003": {
    status: 400,
    code: 21408,
    message: (to) =>
      `Permission to send an SMS has not been enabled for the region indicated by the 'To' number: ${to}.`,
  },
  "+15005550004": {
    status: 400,
    code: 21610,
    message: () => "Attempt to send to unsubscribed recipient",
  },
  "+15005550009": {
    status: 400,
    code: 21614,
    message: (to) => `'To' number ${to} is not a valid mobile number`,
  },
};

const RATE_LIMITED_TO = "+15005550012";
const SERVER_ERROR_TO = "+15005550013";

interface Step {
  status: MessageStatus;
  errorCode: number | null;
  errorMessage: string | null;
}

const QUEUED: Step = { status: "queued", errorCode: null, errorMessage: null };
const SENT: Step = { status: "sent", errorCode: null, errorMessage: null };
const DELIVERED: Step = { status: "delivered", errorCode: null, errorMessage: null };

/** The callbacks each `To` produces, in the order they are posted. */
function lifecycleFor(to: string): Step[] {
  switch (to) {
    case "+15005550010":
      return [QUEUED, SENT, {
        status: "undelivered",
        errorCode: 30003,
        errorMessage: "Unreachable destination handset",
      }];
    case "+15005550011":
      return [QUEUED, { status: "failed", errorCode: 30008, errorMessage: "Unknown error" }];
    case "+15005550014":
      // Carriers' receipts can overtake each other; consumers must not regress the status.
      return [QUEUED, DELIVERED, SENT];
    default:
      return [QUEUED, SENT, DELIVERED];
  }
}

/** Progress order, so an out-of-order callback never moves the stored status backwards. */
const STATUS_RANK: Record<MessageStatus, number> = {
  accepted: 0,
  scheduled: 0,
  queued: 1,
  sending: 2,
  sent: 3,
  delivered: 4,
  undelivered: 4,
  failed: 4,
  canceled: 4,
  received: 4,
};

const FINAL_RANK = 4;

const CANCELABLE: ReadonlySet<MessageStatus> = new Set(["accepted", "scheduled", "queued"]);

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/** Twilio's date format: RFC 2822 with a numeric zone, e.g. "Thu, 04 Jan 2024 10:00:00 +0000". */
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

export function rfc2822(ms: number): string {
  return new Date(ms).toUTCString().replace("GMT", "+0000");
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function newSid(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = prefix;
  for (const b of bytes) out += HEX[b];
  return out;
}

// GSM 03.38 basic set and its extension table (extension characters take two septets).
const GSM_BASIC = new Set(
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà",
);
const GSM_EXTENDED = new Set("^{}\\[~]|€\f");

/** Segment count as a carrier bills it: GSM-7 160/153 septets, otherwise UCS-2 70/67 units. */
export function countSegments(body: string): number {
  let septets = 0;
  let gsm = true;
  for (const ch of body) {
    if (GSM_BASIC.has(ch)) septets += 1;
    else if (GSM_EXTENDED.has(ch)) septets += 2;
    else {
      gsm = false;
      break;
    }
  }
  if (gsm) return septets <= 160 ? 1 : Math.ceil(septets / 153);
  const units = body.length; // UTF-16 code units, as UCS-2 encodes them
  return units <= 70 ? 1 : Math.ceil(units / 67);
}

/** Strips a channel prefix ("whatsapp:+1…") so magic numbers apply on every channel. */
function bareNumber(address: string): string {
  const colon = address.indexOf(":");
  return colon === -1 ? address : address.slice(colon + 1);
}

function looksLikePhoneNumber(address: string): boolean {
  return /^\+?[0-9]{4,15}$/.test(bareNumber(address).replace(/[\s().-]/g, ""));
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function twilioError(
  status: number,
  code: number,
  message: string,
  headers: HeadersInit = {},
): Response {
  return json(status, {
    code,
    message,
    more_info: `https://www.twilio.com/docs/errors/${code}`,
    status,
  }, headers);
}

function isLoopback(addr: Deno.Addr): boolean {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return true; // unix sockets are local
  const host = addr.hostname;
  return host === "::1" || host.startsWith("127.") || host.startsWith("::ffff:127.");
}

/** Resolves true after `ms`, or false as soon as `signal` aborts; never leaves a timer behind. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
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

interface PostResult {
  status: number | null;
  body: string;
  error: string | null;
}

/** Signed, form-encoded POST as Twilio sends webhooks; aborts on `signal` or after a timeout. */
async function postSigned(
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
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": "TwilioProxy/1.1",
        "x-twilio-signature": twilio.getExpectedTwilioSignature(authToken, url, params),
        "i-twilio-idempotency-token": idempotencyToken,
      },
      body: new URLSearchParams(params),
      signal: request.signal,
    });
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

/** Logs at most once a second, so a dead callback endpoint under load cannot flood stderr. */
function throttledWarn(): (line: string) => void {
  let last = 0;
  let suppressed = 0;
  return (line) => {
    const now = Date.now();
    if (now - last < 1000) {
      suppressed++;
      return;
    }
    const extra = suppressed > 0 ? ` (${suppressed} similar suppressed)` : "";
    suppressed = 0;
    last = now;
    console.warn(`[twilio-sandbox] ${line}${extra}`);
  };
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

const OptionsSchema = z.object({
  port: z.number().int().min(0).max(65535).default(54330),
  hostname: z.string().min(1).default("127.0.0.1"),
  accountSid: z.string().regex(/^AC[0-9a-fA-F]{32}$/, "must be AC followed by 32 hex digits"),
  authToken: z.string().min(1),
  inboundUrl: z.url().optional(),
  callbackDelayMs: z.number().int().min(0).default(20),
});

/** "NAME: problem; …", so a configuration error names the variable or option at fault. */
function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join(".") || "(input)"}: ${issue.message}`).join("; ");
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

interface StoredMessage {
  resource: MessageResource;
  receivedAtMs: number;
  sentAtMs: number | null;
  statusCallback: string | null;
  callbacks: CallbackRecord[];
  webhookStatus?: number | null;
  webhookError?: string | null;
}

function toSandboxMessage(m: StoredMessage): SandboxMessage {
  const out: SandboxMessage = {
    ...m.resource,
    subresource_uris: { ...m.resource.subresource_uris },
    received_at_ms: m.receivedAtMs,
    status_callback: m.statusCallback,
    callbacks: m.callbacks.map((c) => ({ ...c })),
  };
  if (m.resource.direction === "inbound") {
    out.webhook_status = m.webhookStatus ?? null;
    out.webhook_error = m.webhookError ?? null;
  }
  return out;
}

const MESSAGES_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages(?:\/([^/]+))?\.json$/;

const ReplySchema = z.object({
  from: z.string().trim().min(1, "from is required"),
  to: z.string().trim().min(1, "to is required"),
  body: z.string().min(1, "body is required"),
});

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const parsed = OptionsSchema.safeParse(options);
  if (!parsed.success) throw new Error(`Invalid sandbox options: ${describeIssues(parsed.error)}`);
  const cfg = parsed.data;
  const expectedAuth = `Basic ${btoa(`${cfg.accountSid}:${cfg.authToken}`)}`;
  const warn = throttledWarn();
  const callbackGate = new Gate(MAX_CONCURRENT_CALLBACKS);

  const store = new Map<string, StoredMessage>(); // insertion order = creation order
  const createCountsByTo = new Map<string, number>();
  const triesByToAndBody = new Map<string, number>();
  let createRequests: CreateRequestRecord[] = [];

  // One controller per reset() "generation": aborting it stops every pending callback chain.
  let generation = new AbortController();
  const inflight = new Set<Promise<void>>();
  const track = (task: Promise<void>) => {
    // Background work must never take the server down with an unhandled rejection.
    const settled: Promise<void> = task
      .catch((err) => warn(`background task failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => inflight.delete(settled));
    inflight.add(settled);
  };

  const messageUri = (sid: string) => `/${API_VERSION}/Accounts/${cfg.accountSid}/Messages/${sid}.json`;

  function setStatus(m: StoredMessage, step: Step, now: number): void {
    const r = m.resource;
    const current = STATUS_RANK[r.status];
    const next = STATUS_RANK[step.status];
    // Never regress, and the first final state wins.
    if (next < current || (next === current && next === FINAL_RANK && step.status !== r.status)) return;
    r.status = step.status;
    if (step.errorCode !== null) {
      r.error_code = step.errorCode;
      r.error_message = step.errorMessage;
    }
    if (r.from === null && step.status !== "accepted") r.from = SERVICE_SENDER;
    if ((step.status === "sent" || step.status === "delivered") && m.sentAtMs === null) {
      m.sentAtMs = now;
      r.date_sent = rfc2822(now);
    }
    r.date_updated = rfc2822(now);
  }

  function callbackParams(m: StoredMessage, step: Step): Record<string, string> {
    const r = m.resource;
    return statusCallbackParams({
      sid: r.sid,
      accountSid: r.account_sid,
      from: r.from ?? SERVICE_SENDER,
      to: r.to,
      status: step.status,
      errorCode: step.errorCode,
      messagingServiceSid: r.messaging_service_sid,
    });
  }

  /** Posts one status callback, retrying unreachable or failing (5xx) endpoints with backoff. */
  async function deliverCallback(m: StoredMessage, step: Step, signal: AbortSignal): Promise<void> {
    const url = m.statusCallback;
    if (url === null) return;
    const params = callbackParams(m, step);
    const token = `${m.resource.sid}-${step.status}`;
    const record: CallbackRecord = {
      status: step.status,
      error_code: step.errorCode,
      http_status: null,
      attempts: 0,
      delivered: false,
      error: null,
      at_ms: Date.now(),
    };
    m.callbacks.push(record);
    const backoff = Math.max(cfg.callbackDelayMs, 25);
    for (let attempt = 1; attempt <= CALLBACK_MAX_ATTEMPTS; attempt++) {
      await callbackGate.acquire();
      let result: PostResult;
      try {
        if (signal.aborted) return; // close()/reset() drains queued waiters through here
        record.attempts = attempt;
        result = await postSigned(url, params, cfg.authToken, signal, token);
      } finally {
        callbackGate.release();
      }
      record.http_status = result.status;
      record.error = result.error;
      if (result.status !== null && result.status < 500) {
        // A 4xx (e.g. a rejected signature) is the receiver's answer; retrying cannot change it.
        record.delivered = result.status < 300;
        return;
      }
      if (signal.aborted) return;
      if (attempt < CALLBACK_MAX_ATTEMPTS && !(await sleep(backoff * 2 ** (attempt - 1), signal))) return;
    }
    warn(
      `gave up on ${step.status} callback for ${m.resource.sid} to ${url} after ${CALLBACK_MAX_ATTEMPTS} attempts: ` +
        (record.error ?? `HTTP ${record.http_status}`),
    );
  }

  /** Walks a message through its lifecycle off the request path; callbacks go out one by one. */
  async function runLifecycle(m: StoredMessage, steps: Step[], signal: AbortSignal): Promise<void> {
    for (const step of steps) {
      if (!(await sleep(cfg.callbackDelayMs, signal))) return;
      if (m.resource.status === "canceled") return;
      setStatus(m, step, Date.now());
      await deliverCallback(m, step, signal);
    }
  }

  // ---- REST API ------------------------------------------------------------------------------

  async function createMessage(req: Request, receivedAtMs: number): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    const to = form.get("To");
    const from = form.get("From") || null;
    const serviceSid = form.get("MessagingServiceSid") || null;
    const body = form.get("Body");
    const mediaUrls = form.getAll("MediaUrl");
    const statusCallback = form.get("StatusCallback") || null;

    const reject = (status: number, code: number, message: string, sid: string | null = null) => {
      createRequests.push({ to, received_at_ms: receivedAtMs, http_status: status, error_code: code, sid });
      return twilioError(status, code, message);
    };

    if (to) createCountsByTo.set(to, (createCountsByTo.get(to) ?? 0) + 1);
    if (!to) return reject(400, 21604, "A 'To' phone number is required.");
    if (!from && !serviceSid) return reject(400, 21603, "A 'From' phone number is required.");
    if ((body === null || body === "") && mediaUrls.length === 0) {
      return reject(400, 21602, "Message body is required.");
    }
    if (body !== null && body.length > 1600) {
      return reject(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    }
    if (statusCallback !== null && !URL.canParse(statusCallback)) {
      return reject(400, 21609, `The StatusCallback URL ${statusCallback} is not a valid URL.`);
    }
    const number = bareNumber(to);
    if (!looksLikePhoneNumber(to)) return reject(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    const rule = REJECTED_TO[number];
    if (rule) return reject(rule.status, rule.code, rule.message(to, from));
    if (number === SERVER_ERROR_TO) return reject(500, 20500, "Internal Server Error");
    if (number === RATE_LIMITED_TO) {
      const key = `${to}\u0000${body ?? ""}`;
      const tries = (triesByToAndBody.get(key) ?? 0) + 1;
      triesByToAndBody.set(key, tries);
      if (tries <= RATE_LIMITED_TRIES) return reject(429, 20429, "Too Many Requests");
    }

    const sid = newSid("SM");
    const stamp = rfc2822(receivedAtMs);
    const uri = messageUri(sid);
    const message: StoredMessage = {
      resource: {
        account_sid: cfg.accountSid,
        api_version: API_VERSION,
        body: body ?? "",
        date_created: stamp,
        date_sent: null,
        date_updated: stamp,
        direction: "outbound-api",
        error_code: null,
        error_message: null,
        // Twilio picks a Messaging Service's sender after accepting the request.
        from,
        messaging_service_sid: serviceSid,
        num_media: String(mediaUrls.length),
        num_segments: String(countSegments(body ?? "")),
        price: null,
        price_unit: "USD",
        sid,
        status: from ? "queued" : "accepted",
        subresource_uris: {
          media: uri.replace(/\.json$/, "/Media.json"),
          feedback: uri.replace(/\.json$/, "/Feedback.json"),
        },
        to,
        uri,
      },
      receivedAtMs,
      sentAtMs: null,
      statusCallback,
      callbacks: [],
    };
    store.set(sid, message);
    createRequests.push({ to, received_at_ms: receivedAtMs, http_status: 201, error_code: null, sid });
    const response = json(201, message.resource);
    track(runLifecycle(message, lifecycleFor(number), generation.signal));
    return response;
  }

  function notFound(path: string): Response {
    return twilioError(404, 20404, `The requested resource ${path} was not found`);
  }

  async function updateMessage(req: Request, m: StoredMessage): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    const body = form.get("Body");
    const status = form.get("Status");
    const invalid = () => twilioError(400, 30400, "Parameters are not valid");
    if ((body === null) === (status === null)) return invalid(); // exactly one of the two
    const now = Date.now();
    if (body !== null) {
      if (body !== "") return invalid(); // only redaction is allowed
      m.resource.body = "";
      m.resource.date_updated = rfc2822(now);
      return json(200, m.resource);
    }
    if (status !== "canceled") return invalid();
    if (!CANCELABLE.has(m.resource.status)) {
      return twilioError(400, 30409, "This message cannot be canceled");
    }
    m.resource.status = "canceled";
    m.resource.date_updated = rfc2822(now);
    const step: Step = { status: "canceled", errorCode: null, errorMessage: null };
    track(deliverCallback(m, step, generation.signal));
    return json(200, m.resource);
  }

  function matchesDate(sentAtMs: number | null, value: string, op: "=" | "<=" | ">="): boolean {
    if (sentAtMs === null) return false;
    const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(value);
    const start = Date.parse(dateOnly ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(start)) return false;
    const end = start + (dateOnly ? 86_400_000 : 1000); // whole day, or the whole second
    if (op === "=") return sentAtMs >= start && sentAtMs < end;
    if (op === "<=") return sentAtMs < end;
    return sentAtMs >= start;
  }

  function listMessages(url: URL): Response {
    const q = url.searchParams;
    const to = q.get("To");
    const from = q.get("From");
    // `DateSent<=x` arrives as key "DateSent<" with value x, which is why the library sends these keys.
    const dateSent = q.get("DateSent");
    const before = q.get("DateSent<");
    const after = q.get("DateSent>");
    const pageSize = Math.min(Math.max(Number(q.get("PageSize") ?? "50") || 50, 1), 1000);
    const page = Math.max(Number(q.get("Page") ?? "0") || 0, 0);

    const matching: MessageResource[] = [];
    for (const m of [...store.values()].reverse()) {
      const r = m.resource;
      if (to !== null && r.to !== to) continue;
      if (from !== null && r.from !== from) continue;
      if (dateSent !== null && !matchesDate(m.sentAtMs, dateSent, "=")) continue;
      if (before !== null && !matchesDate(m.sentAtMs, before, "<=")) continue;
      if (after !== null && !matchesDate(m.sentAtMs, after, ">=")) continue;
      matching.push(r);
    }

    const start = page * pageSize;
    const slice = matching.slice(start, start + pageSize);
    const base = `/${API_VERSION}/Accounts/${cfg.accountSid}/Messages.json`;
    const pageUri = (p: number) => {
      const params = new URLSearchParams();
      for (const [k, v] of q) if (k !== "Page" && k !== "PageSize" && k !== "PageToken") params.append(k, v);
      params.set("PageSize", String(pageSize));
      params.set("Page", String(p));
      return `${base}?${params}`;
    };
    return json(200, {
      messages: slice,
      page,
      page_size: pageSize,
      start,
      end: start + Math.max(slice.length - 1, 0),
      uri: pageUri(page),
      first_page_uri: pageUri(0),
      previous_page_uri: page > 0 ? pageUri(page - 1) : null,
      next_page_uri: start + pageSize < matching.length ? pageUri(page + 1) : null,
    });
  }

  async function handleApi(req: Request, url: URL, receivedAtMs: number): Promise<Response> {
    const match = MESSAGES_PATH.exec(url.pathname);
    if (req.headers.get("authorization") !== expectedAuth || (match && match[1] !== cfg.accountSid)) {
      return twilioError(401, 20003, "Authenticate", {
        "www-authenticate": 'Basic realm="Twilio API"',
      });
    }
    if (!match) return notFound(url.pathname);
    const sid = match[2];
    if (sid === undefined) {
      if (req.method === "POST") return await createMessage(req, receivedAtMs);
      if (req.method === "GET") return listMessages(url);
      return twilioError(405, 20004, "Method not allowed");
    }
    const m = store.get(sid);
    if (!m) return notFound(url.pathname);
    switch (req.method) {
      case "GET":
        return json(200, m.resource);
      case "POST":
        return await updateMessage(req, m);
      case "DELETE":
        store.delete(sid);
        return new Response(null, { status: 204 });
      default:
        return twilioError(405, 20004, "Method not allowed");
    }
  }

  // ---- Inbound webhooks and admin ------------------------------------------------------------

  interface InboundResult {
    sid: string;
    webhook_status: number | null;
    webhook_body: string;
    error: string | null;
  }

  async function sendInbound(from: string, to: string, body: string): Promise<InboundResult> {
    const sid = newSid("SM");
    const now = Date.now();
    const stamp = rfc2822(now);
    const uri = messageUri(sid);
    const message: StoredMessage = {
      resource: {
        account_sid: cfg.accountSid,
        api_version: API_VERSION,
        body,
        date_created: stamp,
        date_sent: stamp,
        date_updated: stamp,
        direction: "inbound",
        error_code: null,
        error_message: null,
        from,
        messaging_service_sid: null,
        num_media: "0",
        num_segments: String(countSegments(body)),
        price: null,
        price_unit: "USD",
        sid,
        status: "received",
        subresource_uris: {
          media: uri.replace(/\.json$/, "/Media.json"),
          feedback: uri.replace(/\.json$/, "/Feedback.json"),
        },
        to,
        uri,
      },
      receivedAtMs: now,
      sentAtMs: now,
      statusCallback: null,
      callbacks: [],
      webhookStatus: null,
      webhookError: null,
    };
    store.set(sid, message);
    if (!cfg.inboundUrl) {
      message.webhookError = "no inboundUrl configured";
      return { sid, webhook_status: null, webhook_body: "", error: message.webhookError };
    }
    const params: Record<string, string> = {
      MessageSid: sid,
      SmsSid: sid,
      SmsMessageSid: sid,
      AccountSid: cfg.accountSid,
      From: from,
      To: to,
      Body: body,
      NumMedia: "0",
      NumSegments: message.resource.num_segments,
      SmsStatus: "received",
      ApiVersion: API_VERSION,
    };
    const result = await postSigned(cfg.inboundUrl, params, cfg.authToken, generation.signal, sid);
    message.webhookStatus = result.status;
    message.webhookError = result.error;
    return { sid, webhook_status: result.status, webhook_body: result.body, error: result.error };
  }

  function adminSnapshot() {
    return {
      messages: [...store.values()].map(toSandboxMessage),
      create_requests_by_to: Object.fromEntries(createCountsByTo),
      create_requests: createRequests.slice(),
    };
  }

  function reset(): void {
    generation.abort();
    generation = new AbortController();
    store.clear();
    createCountsByTo.clear();
    triesByToAndBody.clear();
    createRequests = [];
  }

  async function handleAdmin(req: Request, url: URL): Promise<Response> {
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case "GET /":
        return new Response(renderInbox([...store.values()], cfg.inboundUrl ?? null), {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      case "GET /_sandbox/messages":
        return json(200, adminSnapshot());
      case "POST /_sandbox/reset":
        reset();
        return json(200, { ok: true });
      case "POST /_sandbox/reply": {
        const fields = ReplySchema.safeParse(Object.fromEntries(new URLSearchParams(await req.text())));
        if (!fields.success) {
          return new Response(`Invalid reply: ${describeIssues(fields.error)}`, { status: 400 });
        }
        await sendInbound(fields.data.from, fields.data.to, fields.data.body);
        return new Response(null, { status: 303, headers: { location: "/" } });
      }
      case "POST /_sandbox/inbound": {
        let raw: unknown;
        try {
          raw = await req.json();
        } catch {
          return json(400, { error: "body must be JSON {from, to, body}" });
        }
        const fields = ReplySchema.safeParse(raw);
        if (!fields.success) return json(400, { error: describeIssues(fields.error) });
        if (!cfg.inboundUrl) return json(409, { error: "the sandbox has no inboundUrl configured" });
        const result = await sendInbound(fields.data.from, fields.data.to, fields.data.body);
        return json(result.webhook_status === null ? 502 : 200, result);
      }
      default:
        return notFound(url.pathname);
    }
  }

  const listening = Promise.withResolvers<void>();
  const server = Deno.serve(
    // A custom onListen also keeps Deno's default "Listening on…" line out of test output.
    { port: cfg.port, hostname: cfg.hostname, onListen: () => listening.resolve() },
    async (req, info) => {
      const receivedAtMs = Date.now();
      try {
        const url = new URL(req.url);
        if (url.pathname.startsWith(`/${API_VERSION}/`)) return await handleApi(req, url, receivedAtMs);
        if (!isLoopback(info.remoteAddr)) return json(403, { error: "the sandbox admin is loopback only" });
        return await handleAdmin(req, url);
      } catch (err) {
        warn(`request failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        return twilioError(500, 20500, "Internal Server Error");
      }
    },
  );

  await listening.promise;
  const port = server.addr.port;
  let closed: Promise<void> | null = null;
  return {
    url: `http://${cfg.hostname.includes(":") ? `[${cfg.hostname}]` : cfg.hostname}:${port}`,
    port,
    messages: () => [...store.values()].map(toSandboxMessage),
    reset,
    close() {
      closed ??= (async () => {
        generation.abort();
        await server.shutdown();
        await Promise.allSettled([...inflight]);
      })();
      return closed;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Inbox page
// ---------------------------------------------------------------------------------------------

const INBOX_LIMIT = 500;

function renderInbox(all: StoredMessage[], inboundUrl: string | null): string {
  const newest = all.slice(-INBOX_LIMIT).reverse();
  // Group by the contact's number, most recently active contact first.
  const groups = new Map<string, StoredMessage[]>();
  for (const m of newest) {
    const r = m.resource;
    const contact = r.direction === "inbound" ? r.from ?? "" : r.to;
    const list = groups.get(contact) ?? [];
    list.push(m);
    groups.set(contact, list);
  }

  const rows = (list: StoredMessage[]) =>
    list.map((m) => {
      const r = m.resource;
      const sid = escapeHtml(r.sid);
      const time = new Date(m.receivedAtMs).toISOString();
      const meta = r.direction === "inbound"
        ? `reply · webhook ${m.webhookStatus ?? escapeHtml(m.webhookError ?? "pending")}`
        : `${escapeHtml(r.status)}${r.error_code !== null ? ` · error ${r.error_code}` : ""}`;
      const reply = r.direction === "inbound" ? "" : `
        <form method="post" action="/_sandbox/reply" class="reply" data-testid="reply-form-${sid}">
          <input type="hidden" name="from" value="${escapeHtml(r.to)}">
          <input type="hidden" name="to" value="${escapeHtml(r.from ?? SERVICE_SENDER)}">
          <input type="text" name="body" required placeholder="Reply as ${escapeHtml(r.to)}"
            aria-label="Reply to ${sid}" data-testid="reply-body-${sid}">
          <button type="submit" data-testid="reply-send-${sid}">Send reply</button>
        </form>`;
      return `
      <li class="msg ${r.direction === "inbound" ? "in" : "out"}" data-testid="message-${sid}"
        data-sid="${sid}" data-status="${escapeHtml(r.status)}">
        <div class="head">
          <span class="dir">${r.direction === "inbound" ? "from" : "to"}</span>
          <span data-testid="message-to-${sid}">${escapeHtml(r.to)}</span>
          <span class="muted">from</span> <span data-testid="message-from-${sid}">${escapeHtml(r.from ?? "(service)")}</span>
          <span class="status" data-testid="message-status-${sid}">${meta}</span>
          <time datetime="${time}">${time}</time>
        </div>
        <p class="body" data-testid="message-body-${sid}">${r.body === "" ? "<em>(redacted)</em>" : escapeHtml(r.body)}</p>
        ${reply}
      </li>`;
    }).join("");

  const sections = [...groups].map(([contact, list]) => `
    <section class="contact" data-testid="contact-${escapeHtml(contact)}">
      <h2>${escapeHtml(contact)} <small>${list.length} message${list.length === 1 ? "" : "s"}</small></h2>
      <ul>${rows(list)}</ul>
    </section>`).join("");

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Twilio sandbox inbox</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 56rem; padding: 1rem; color: #222; }
  h1 { font-size: 1.3rem; } h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; } small, .muted { color: #777; font-weight: normal; }
  ul { list-style: none; padding: 0; margin: 0; }
  .msg { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .75rem; margin: .4rem 0; }
  .msg.in { background: #eef6ff; margin-left: 2rem; }
  .head { display: flex; gap: .5rem; flex-wrap: wrap; align-items: baseline; }
  .status { font-weight: 600; } time { margin-left: auto; color: #777; font-size: 12px; }
  .body { white-space: pre-wrap; margin: .3rem 0; }
  .reply { display: flex; gap: .5rem; } .reply input[type=text] { flex: 1; }
</style>
</head>
<body>
<h1>Twilio sandbox inbox</h1>
<p class="muted">${all.length} message${all.length === 1 ? "" : "s"}${
    all.length > INBOX_LIMIT ? ` (newest ${INBOX_LIMIT} shown)` : ""
  } · replies go to ${inboundUrl ? escapeHtml(inboundUrl) : "<em>no inbound URL configured</em>"} · <a href="/">refresh</a></p>
${sections || '<p data-testid="inbox-empty">Nothing sent yet.</p>'}
</body>
</html>`;
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

const nonEmpty = (v: unknown) => (v === "" ? undefined : v);

const EnvSchema = z.object({
  TWILIO_ACCOUNT_SID: z.preprocess(
    nonEmpty,
    z.string({ error: "is required" }).regex(/^AC[0-9a-fA-F]{32}$/, "must be AC followed by 32 hex digits"),
  ),
  TWILIO_AUTH_TOKEN: z.preprocess(nonEmpty, z.string({ error: "is required" }).min(1)),
  SANDBOX_PORT: z.preprocess(nonEmpty, z.coerce.number().int().min(0).max(65535).default(54330)),
  SANDBOX_INBOUND_URL: z.preprocess(
    nonEmpty,
    z.url().default("http://127.0.0.1:54321/functions/v1/twilio-inbound"),
  ),
});

async function main(): Promise<void> {
  const env = EnvSchema.safeParse(Deno.env.toObject());
  if (!env.success) {
    console.error(`twilio-sandbox: invalid configuration: ${describeIssues(env.error)}`);
    Deno.exit(1);
  }
  const sandbox = await startSandbox({
    accountSid: env.data.TWILIO_ACCOUNT_SID,
    authToken: env.data.TWILIO_AUTH_TOKEN,
    port: env.data.SANDBOX_PORT,
    inboundUrl: env.data.SANDBOX_INBOUND_URL,
  });
  console.log(`twilio-sandbox listening on ${sandbox.url} (inbound webhook: ${env.data.SANDBOX_INBOUND_URL})`);
  const stop = async () => {
    await sandbox.close();
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, stop);
}

if (import.meta.main) await main();
