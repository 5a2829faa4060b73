/**
 * What the sandbox's Twilio does: the Message resource in Twilio's wire format, which `To` numbers
 * are refused and how (Twilio's magic test numbers plus a few extensions), the lifecycle each
 * accepted message goes through, and how many segments a body is billed as.
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

/** Twilio's answer to a create request: accepted for this `To`, or refused. */
export type CreateDecision = { accepted: true; to: string } | { accepted: false; rejection: Rejection };

/** How many times `+15005550012` answers 429 for one (To, Body) before it accepts. */
const RATE_LIMITED_TRIES = 2;
const RATE_LIMITED_TO = "+15005550012";
const SERVER_ERROR_TO = "+15005550013";
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
};

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
  const { to, from, body } = req;
  if (!to) return refuse(400, 21604, "A 'To' phone number is required.");
  if (!from && !req.messagingServiceSid) return refuse(400, 21603, "A 'From' phone number is required.");
  if ((body === null || body === "") && req.mediaCount === 0) return refuse(400, 21602, "Message body is required.");
  if (body !== null && body.length > MAX_BODY_LENGTH) {
    return refuse(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
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
  return { accepted: true, to };
}

// ---------------------------------------------------------------------------------------------
// Lifecycles
// ---------------------------------------------------------------------------------------------

/** One status a message moves to, with the error it carries. */
export interface Step {
  status: MessageStatus;
  errorCode: number | null;
  errorMessage: string | null;
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
// Segments
// ---------------------------------------------------------------------------------------------

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
