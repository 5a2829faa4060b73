/**
 * What the sandbox's Twilio does: the Message resource in Twilio's wire format, which `To` numbers
 * are refused and how (Twilio's magic test numbers plus a few extensions), the lifecycle each
 * accepted message goes through, and how many segments a body is billed as. The account's state
 * lives in `SandboxAccount`: WhatsApp's 24-hour windows (opened by inbound WhatsApp messages) and,
 * when asked for, each sender's queue, drained in segments per second as Twilio paces a number.
 */

export const API_VERSION = "2010-04-01";
/** Twilio's "valid From" test number; used as the sender a Messaging Service picks. */
export const SERVICE_SENDER = "+15005550006";

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

// ---------------------------------------------------------------------------------------------
// The Message resource
// ---------------------------------------------------------------------------------------------

/** A Message resource exactly as Twilio serialises it (snake_case JSON). */
export interface MessageResource {
  account_sid: string;
  api_version: typeof API_VERSION;
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

/** Twilio's date format: RFC 2822 with a numeric zone, e.g. "Thu, 04 Jan 2024 10:00:00 +0000". */
export function rfc2822(ms: number): string {
  return new Date(ms).toUTCString().replace("GMT", "+0000");
}

export function messageUri(accountSid: string, sid: string): string {
  return `/${API_VERSION}/Accounts/${accountSid}/Messages/${sid}.json`;
}

/** A new Message resource: one created through the API, or one received from a handset. */
export function messageResource(m: {
  accountSid: string;
  sid: string;
  direction: MessageResource["direction"];
  status: MessageStatus;
  from: string | null;
  to: string;
  body: string;
  messagingServiceSid?: string | null;
  numMedia?: number;
  createdAtMs: number;
  sentAtMs: number | null;
}): MessageResource {
  const created = rfc2822(m.createdAtMs);
  const uri = messageUri(m.accountSid, m.sid);
  return {
    account_sid: m.accountSid,
    api_version: API_VERSION,
    body: m.body,
    date_created: created,
    date_sent: m.sentAtMs === null ? null : rfc2822(m.sentAtMs),
    date_updated: created,
    direction: m.direction,
    error_code: null,
    error_message: null,
    from: m.from,
    messaging_service_sid: m.messagingServiceSid ?? null,
    num_media: String(m.numMedia ?? 0),
    num_segments: String(countSegments(m.body)),
    price: null,
    price_unit: "USD",
    sid: m.sid,
    status: m.status,
    subresource_uris: {
      media: uri.replace(/\.json$/, "/Media.json"),
      feedback: uri.replace(/\.json$/, "/Feedback.json"),
    },
    to: m.to,
    uri,
  };
}

// ---------------------------------------------------------------------------------------------
// Numbers: what a create request is refused with
// ---------------------------------------------------------------------------------------------

/** A refusal as Twilio answers it: HTTP status, Twilio error code, message. */
export interface Rejection {
  status: number;
  code: number;
  message: string;
}

/**
 * Twilio's answer to a create request: accepted for this `To` (with the text the message carries:
 * its Body, or its content template rendered), or refused.
 */
export type CreateDecision =
  | { accepted: true; to: string; body: string; validitySeconds: number | null }
  | { accepted: false; rejection: Rejection };

/** How many times `+15005550012` answers 429 for one (To, Body) before it accepts. */
const RATE_LIMITED_TRIES = 2;
const RATE_LIMITED_TO = "+15005550012";
const SERVER_ERROR_TO = "+15005550013";
/** Accepted, but the connection breaks before the answer: Twilio has a message the caller never hears of. */
const ANSWER_LOST_TO = "+15005550022";
const MAX_BODY_LENGTH = 1600;

/** Twilio's documented magic `To` numbers, rejected synchronously as Twilio does. */
const REJECTED_TO: Record<string, (to: string, from: string | null) => Rejection> = {
  "+15005550001": (to) => ({ status: 400, code: 21211, message: `The 'To' number ${to} is not a valid phone number.` }),
  "+15005550002": (to, from) => ({
    status: 400,
    code: 21612,
    message: `The 'To' phone number: ${to}, is not currently reachable using the 'From' phone number: ${
      from ?? SERVICE_SENDER
    } via SMS.`,
  }),
  "+15005550003": (to) => ({
    status: 400,
    code: 21408,
    message: `Permission to send an SMS has not been enabled for the region indicated by the 'To' number: ${to}.`,
  }),
  "+15005550004": () => ({ status: 400, code: 21610, message: "Attempt to send to unsubscribed recipient" }),
  "+15005550009": (to) => ({ status: 400, code: 21614, message: `'To' number ${to} is not a valid mobile number` }),
  "+15005550015": () => QUEUE_FULL,
  // Twilio answers an account's daily limit with HTTP 429, though it is no rate limit.
  "+15005550017": () => ({ status: 429, code: 63038, message: "Account exceeded the 500 daily messages limit" }),
};

const QUEUE_FULL: Rejection = {
  status: 400,
  code: 21611,
  message: "This 'From' number has exceeded the maximum number of queued messages",
};

/** Whether Twilio's answer to this accepted create request is lost on the way back (`+15005550022`). */
export function answerLost(to: string): boolean {
  return bareNumber(to) === ANSWER_LOST_TO;
}

/** Strips a channel prefix ("whatsapp:+1…") so magic numbers apply on every channel. */
export function bareNumber(address: string): string {
  const colon = address.indexOf(":");
  return colon === -1 ? address : address.slice(colon + 1);
}

function looksLikePhoneNumber(address: string): boolean {
  return /^\+?[0-9]{4,15}$/.test(bareNumber(address).replace(/[\s().-]/g, ""));
}

/** The fields of a create request that decide whether Twilio takes it. */
export interface CreateRequest {
  to: string | null;
  from: string | null;
  messagingServiceSid: string | null;
  body: string | null;
  mediaCount: number;
  statusCallback: string | null;
  /** A Content template (HX…) to send instead of a Body. */
  contentSid: string | null;
  /** Its variables, as the JSON text Twilio takes: {"1": "Ada"}. */
  contentVariables: string | null;
  /** Seconds the message may wait in Twilio's queue, as sent (validated here). */
  validityPeriod: string | null;
}

/** A create request's fields from its form body, as Twilio reads them. */
export function createRequestFrom(form: URLSearchParams): CreateRequest {
  return {
    to: form.get("To"),
    from: form.get("From") || null,
    messagingServiceSid: form.get("MessagingServiceSid") || null,
    body: form.get("Body"),
    mediaCount: form.getAll("MediaUrl").length,
    statusCallback: form.get("StatusCallback") || null,
    contentSid: form.get("ContentSid") || null,
    contentVariables: form.get("ContentVariables"),
    validityPeriod: form.get("ValidityPeriod"),
  };
}

const CONTENT_SID = /^HX[0-9a-fA-F]{32}$/;
const MAX_VALIDITY_SECONDS = 36_000;

/** ContentVariables as Twilio accepts them (21656 otherwise): a JSON object of non-empty strings
 * without newlines, tabs or runs of more than four spaces. */
export function parseContentVariables(text: string): Record<string, string> | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== "string" || value === "" || /[\n\t]| {5,}/.test(value)) return null;
    out[key] = value;
  }
  return out;
}

/**
 * What a content send reads as in the inbox and the resource's body. The sandbox has no copy of
 * the account's templates, so it shows the template's sid and the variables it was given.
 */
export function renderContent(contentSid: string, variables: Record<string, string>): string {
  const values = Object.entries(variables).map(([k, v]) => `{{${k}}} ${v}`);
  return values.length ? `[${contentSid}] ${values.join(" · ")}` : `[${contentSid}]`;
}

/**
 * Whether Twilio takes this request, its rules checked in Twilio's order. `countTry` is called
 * only for the rate-limited number and returns how many times this (To, Body) has now been tried.
 */
export function decideCreate(req: CreateRequest, countTry: (key: string) => number): CreateDecision {
  const refuse = (status: number, code: number, message: string): CreateDecision => ({
    accepted: false,
    rejection: { status, code, message },
  });
  const { to, from, body, contentSid, contentVariables, validityPeriod } = req;
  if (!to) return refuse(400, 21604, "A 'To' phone number is required.");
  if (!from && !req.messagingServiceSid) return refuse(400, 21603, "A 'From' phone number is required.");
  if (contentVariables !== null && !contentSid) return refuse(400, 21654, "ContentSid Required");
  if (contentSid && !CONTENT_SID.test(contentSid)) return refuse(400, 21655, "The ContentSid is Invalid");
  const variables = contentVariables === null ? {} : parseContentVariables(contentVariables);
  if (variables === null) return refuse(400, 21656, "The ContentVariables Parameter is invalid");
  if (!contentSid && (body === null || body === "") && req.mediaCount === 0) {
    return refuse(400, 21602, "Message body is required.");
  }
  if (!contentSid && body !== null && body.length > MAX_BODY_LENGTH) {
    return refuse(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
  }
  let validitySeconds: number | null = null;
  if (validityPeriod !== null) {
    if (!/^-?[0-9]+$/.test(validityPeriod.trim())) return refuse(400, 90014, "Validity Period should be positive integer");
    validitySeconds = Number(validityPeriod);
    if (validitySeconds < 1 || validitySeconds > MAX_VALIDITY_SECONDS) {
      return refuse(400, 90007, "Invalid validity period value");
    }
  }
  if (req.statusCallback !== null && !URL.canParse(req.statusCallback)) {
    return refuse(400, 21609, `The StatusCallback URL ${req.statusCallback} is not a valid URL.`);
  }
  if (!looksLikePhoneNumber(to)) return refuse(400, 21211, `The 'To' number ${to} is not a valid phone number.`);
  const number = bareNumber(to);
  const rule = REJECTED_TO[number];
  if (rule) return { accepted: false, rejection: rule(to, from) };
  if (number === SERVER_ERROR_TO) return refuse(500, 20500, "Internal Server Error");
  if (number === RATE_LIMITED_TO && countTry(`${to}\u0000${body ?? ""}`) <= RATE_LIMITED_TRIES) {
    return refuse(429, 20429, "Too Many Requests");
  }
  return {
    accepted: true,
    to,
    // Twilio sends a content template instead of any Body given with it.
    body: contentSid ? renderContent(contentSid, variables) : body ?? "",
    validitySeconds,
  };
}

// ---------------------------------------------------------------------------------------------
// Lifecycles
// ---------------------------------------------------------------------------------------------

/** One status a message moves to, with the error it carries. */
export interface Step {
  status: MessageStatus;
  errorCode: number | null;
  errorMessage: string | null;
  /** Not before this time (epoch ms): when the sender's queue lets it go, or its validity ends. */
  notBeforeMs?: number;
}

const step = (status: MessageStatus, errorCode: number | null = null, errorMessage: string | null = null): Step => ({
  status,
  errorCode,
  errorMessage,
});

const QUEUED = step("queued");
const SENT = step("sent");
const DELIVERED = step("delivered");
export const CANCELED = step("canceled");

/** The callbacks each `To` produces, in the order they are posted. */
export function lifecycleFor(to: string): Step[] {
  switch (bareNumber(to)) {
    case "+15005550010":
      return [QUEUED, SENT, step("undelivered", 30003, "Unreachable destination handset")];
    case "+15005550011":
      return [QUEUED, step("failed", 30008, "Unknown error")];
    case "+15005550014":
      // Carriers' receipts can overtake each other; consumers must not regress the status.
      return [QUEUED, DELIVERED, SENT];
    case "+15005550016":
      return [QUEUED, step("failed", 30001, "Queue overflow")];
    case "+15005550018":
      return [QUEUED, SENT, step("undelivered", 30005, "Unknown destination handset")];
    case "+15005550019":
      return [QUEUED, SENT, step("undelivered", 30006, "Landline or unreachable carrier")];
    case "+15005550020":
      return [QUEUED, SENT, step("undelivered", 30007, "Message filtered")];
    case "+15005550021":
      return [QUEUED, step("failed", 30023, "US A2P 10DLC - Daily message cap reached")];
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

/** Whether a message in `current` moves to `next`: never backwards, and the first final state wins. */
export function advances(current: MessageStatus, next: MessageStatus): boolean {
  const from = STATUS_RANK[current];
  const to = STATUS_RANK[next];
  return to > from || (to === from && (to !== FINAL_RANK || next === current));
}

/** Statuses from which `Status=canceled` is accepted. */
export const CANCELABLE: ReadonlySet<MessageStatus> = new Set(["accepted", "scheduled", "queued"]);

// ---------------------------------------------------------------------------------------------
// The account: WhatsApp windows and sender queues
// ---------------------------------------------------------------------------------------------

const WHATSAPP_WINDOW_MS = 24 * 3600_000;
/** Twilio holds at most 10 hours of a sender's segments; beyond it a create is refused (21611). */
const MAX_QUEUE_MS = MAX_VALIDITY_SECONDS * 1000;

export interface AccountOptions {
  /**
   * Segments per second each sender's queue drains at, as Twilio paces a number (a US long code
   * sends one segment a second); null sends everything at once, which tests usually want.
   */
  queueSegmentsPerSecond?: number | null;
}

/** Twilio's answer to a create request and, when it takes it, the callbacks it will produce. */
export type CreateOutcome =
  | { accepted: true; to: string; body: string; steps: Step[] }
  | { accepted: false; rejection: Rejection };

/** What the sandbox's Twilio remembers between requests. */
export class SandboxAccount {
  readonly #rate: number | null;
  /** Bare number → when it last wrote on WhatsApp. */
  readonly #lastWhatsApp = new Map<string, number>();
  /** Sender → when its queue is next free. */
  readonly #nextFree = new Map<string, number>();

  constructor(options: AccountOptions = {}) {
    this.#rate = options.queueSegmentsPerSecond ?? null;
  }

  /** A message from a handset: one on WhatsApp opens that number's 24-hour window. */
  noteInbound(from: string, atMs: number): void {
    if (!from.startsWith("whatsapp:")) return;
    const number = bareNumber(from);
    this.#lastWhatsApp.set(number, Math.max(this.#lastWhatsApp.get(number) ?? atMs, atMs));
  }

  /** Whether free-form WhatsApp to this address is delivered at `atMs`. */
  windowOpen(to: string, atMs: number): boolean {
    const last = this.#lastWhatsApp.get(bareNumber(to));
    return last !== undefined && atMs - last < WHATSAPP_WINDOW_MS;
  }

  /**
   * Decides a create request (decideCreate), then what happens to it: free-form WhatsApp outside
   * the window fails by callback with 63016; otherwise it waits its turn in its sender's queue
   * (paced in segments; a WhatsApp message counts one), or fails 30036 if its ValidityPeriod ends
   * first, and then goes through its number's lifecycle.
   */
  create(req: CreateRequest, countTry: (key: string) => number, nowMs: number): CreateOutcome {
    const decision = decideCreate(req, countTry);
    if (!decision.accepted) return decision;
    const { to, body, validitySeconds } = decision;
    const whatsapp = to.startsWith("whatsapp:");
    if (whatsapp && !req.contentSid && !this.windowOpen(to, nowMs)) {
      return { accepted: true, to, body, steps: [QUEUED, OUTSIDE_WINDOW] };
    }
    const steps = lifecycleFor(to);
    if (this.#rate === null) return { accepted: true, to, body, steps };

    const sender = req.from ?? req.messagingServiceSid ?? "";
    const departAt = Math.max(this.#nextFree.get(sender) ?? nowMs, nowMs);
    if (departAt - nowMs > MAX_QUEUE_MS) return { accepted: false, rejection: QUEUE_FULL };
    if (validitySeconds !== null && departAt - nowMs > validitySeconds * 1000) {
      // Dropped when its validity ends, so it takes no turn from the messages behind it.
      const expired = { ...VALIDITY_EXPIRED, notBeforeMs: nowMs + validitySeconds * 1000 };
      return { accepted: true, to, body, steps: [QUEUED, expired] };
    }
    const segments = whatsapp ? 1 : countSegments(body);
    this.#nextFree.set(sender, departAt + (segments / this.#rate) * 1000);
    const [first, ...rest] = steps;
    return { accepted: true, to, body, steps: first === QUEUED ? [first, ...leaveAt(rest, departAt)] : leaveAt(steps, departAt) };
  }

  reset(): void {
    this.#lastWhatsApp.clear();
    this.#nextFree.clear();
  }
}

const OUTSIDE_WINDOW = step(
  "failed",
  63016,
  "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
);
const VALIDITY_EXPIRED = step("failed", 30036, "Validity Period Expired");

/** The steps after queued, the first of them held until the sender's queue lets it go. */
function leaveAt(steps: Step[], departAtMs: number): Step[] {
  return steps.map((s, i) => (i === 0 ? { ...s, notBeforeMs: departAtMs } : s));
}

// ---------------------------------------------------------------------------------------------
// Segments
// ---------------------------------------------------------------------------------------------

// GSM 03.38 basic set and its extension table (extension characters take two septets).
const GSM_BASIC = new Set(
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà",
);
const GSM_EXTENDED = new Set("^{}\\[~]|€\f");

/** GSM-7 if every character is in the GSM 03.38 basic set or its extension table, else UCS-2. */
export function encodingOf(body: string): "GSM-7" | "UCS-2" {
  for (const ch of body) if (!GSM_BASIC.has(ch) && !GSM_EXTENDED.has(ch)) return "UCS-2";
  return "GSM-7";
}

/**
 * Segment count as a carrier bills it: GSM-7 160 septets in one part, 153 per part beyond
 * (extension characters take two); otherwise UCS-2, 70 / 67 UTF-16 units (a character outside the
 * Basic Multilingual Plane takes two). A two-unit character is never split between parts, so
 * parts are packed in order rather than counted as units / 153. Herald computes the same in SQL
 * (herald.message_segment_count); tests/segments.test.ts holds the two to each other.
 */
export function countSegments(body: string): number {
  const gsm = encodingOf(body) === "GSM-7";
  const widths = [...body].map((ch) => (gsm ? (GSM_EXTENDED.has(ch) ? 2 : 1) : ch.length));
  const units = widths.reduce((a, b) => a + b, 0);
  if (units <= (gsm ? 160 : 70)) return 1;
  const part = gsm ? 153 : 67;
  let parts = 1;
  let used = 0;
  for (const w of widths) {
    if (used + w > part) {
      parts++;
      used = 0;
    }
    used += w;
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Opt-out keywords
// ---------------------------------------------------------------------------------------------

// Twilio's default keywords for long codes: an inbound message that is exactly one of them
// (trimmed, any case) opts its sender out of, or back in to, messages from that number.
const OPT_OUT_KEYWORDS = new Set(["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]);
const OPT_IN_KEYWORDS = new Set(["START", "YES", "UNSTOP"]);

/** What an inbound body does to its sender's subscription, as Twilio reads it. */
export function keywordAction(body: string): "opt_out" | "opt_in" | null {
  const word = body.trim().toUpperCase();
  if (OPT_OUT_KEYWORDS.has(word)) return "opt_out";
  if (OPT_IN_KEYWORDS.has(word)) return "opt_in";
  return null;
}
