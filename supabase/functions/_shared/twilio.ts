/**
 * The Twilio client the edge functions use, and how its failures are classified.
 *
 * It is the real `twilio` library (its auth, form encoding, paging and RestException handling are
 * exercised unchanged) over a request path of Herald's own: `fetch` with a timeout that aborts the
 * call. The library's default HTTP stack (axios on a keep-alive `node:http` agent) sent a request
 * that timed out on a reused connection a second time by itself under Deno, so a stalled provider
 * got two copies of a message Herald believed it had sent at most once. fetch never replays a
 * request that was written. With `apiBase` set (local development and tests), twilio.com requests
 * go there instead.
 */
import { timingSafeEqual } from "node:crypto";
import twilio from "twilio";
// Type-only: the library ships these as CommonJS declarations that the root export does not re-export.
import type RequestClientTypes from "twilio/lib/base/RequestClient";
import type * as HttpResponse from "twilio/lib/http/response";
import type { MessageListInstanceCreateOptions } from "twilio/lib/rest/api/v2010/account/message";

export type TwilioClient = twilio.Twilio;

export interface TwilioClientConfig {
  accountSid: string;
  authToken: string;
  /** e.g. "http://127.0.0.1:54330"; when set, every *.twilio.com request goes there instead. */
  apiBase?: string;
  /** Per-request timeout in milliseconds, answer included (the library's default is 30 000). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function isTwilioHost(hostname: string): boolean {
  return hostname === "twilio.com" || hostname.endsWith(".twilio.com");
}

/** Replaces a twilio.com origin with `apiBase` (keeping any path prefix it has); other URLs pass. */
export function rewriteTwilioUri(uri: string, apiBase: string): string {
  const target = new URL(uri);
  if (!isTwilioHost(target.hostname)) return uri;
  return `${apiBase.replace(/\/+$/, "")}${target.pathname}${target.search}`;
}

/**
 * A provider call that got no HTTP answer. `reached` says whether the request may have got to the
 * provider: "no" when the connection was never made (nothing was written), "maybe" when it timed
 * out or broke after the request could have been written: then only a look-up tells.
 */
export class ProviderCallError extends Error {
  override readonly name = "ProviderCallError";
  constructor(message: string, readonly reached: "no" | "maybe", readonly code: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Form or query encoding as the library's own client does it: arrays repeat the key, undefined is left out. */
function encodeParams(values: object, into = new URLSearchParams()): URLSearchParams {
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) into.append(key, v === null ? "" : String(v));
  }
  return into;
}

/** Connection failures fetch reports before anything was written: DNS, TCP connect, TLS handshake. */
const NOT_CONNECTED = /client error \(Connect\)|tcp connect error|dns error|failed to lookup address|connection refused/i;

/** The library's RequestClient contract (`request(opts) → { statusCode, body, headers }`) on fetch. */
class FetchRequestClient extends twilio.RequestClient {
  readonly #apiBase: string | undefined;
  readonly #timeoutMs: number;

  constructor(apiBase: string | undefined, timeoutMs: number) {
    super({ timeout: timeoutMs, keepAlive: false });
    this.#apiBase = apiBase;
    this.#timeoutMs = timeoutMs;
  }

  override async request<TData>(
    opts: RequestClientTypes.RequestOptions<TData>,
  ): Promise<HttpResponse.default<TData>> {
    const url = new URL(this.#apiBase ? rewriteTwilioUri(opts.uri, this.#apiBase) : opts.uri);
    if (opts.params) encodeParams(opts.params, url.searchParams);
    const headers = new Headers(opts.headers as Record<string, string> | undefined);
    if (opts.username && opts.password) {
      headers.set("Authorization", `Basic ${btoa(`${opts.username}:${opts.password}`)}`);
    } else if (opts.authStrategy) {
      headers.set("Authorization", await opts.authStrategy.getAuthString());
    }
    let body: string | undefined;
    if (opts.data) {
      const type = headers.get("Content-Type");
      if (type === "application/x-www-form-urlencoded") body = encodeParams(opts.data).toString();
      else if (type === "application/json") body = JSON.stringify(opts.data);
    }
    const timeoutMs = opts.timeout ?? this.#timeoutMs;
    const method = opts.method.toUpperCase();
    try {
      // One signal for the whole exchange: a body that stalls half-way times out too.
      const res = await fetch(url, {
        method,
        headers,
        body,
        redirect: opts.allowRedirects ? "follow" : "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      return { statusCode: res.status, body: text as TData, headers: Object.fromEntries(res.headers) };
    } catch (err) {
      const what = `${method} ${url.pathname}`;
      if (err instanceof DOMException && err.name === "TimeoutError") {
        throw new ProviderCallError(`${what}: no answer within ${timeoutMs} ms`, "maybe", "ETIMEDOUT", { cause: err });
      }
      // fetch says "fetch failed"; what failed is in its cause.
      const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
      const message = `${err instanceof Error ? err.message : String(err)}${cause}`;
      if (NOT_CONNECTED.test(message)) {
        throw new ProviderCallError(`${what}: could not connect (${message})`, "no", "ECONNREFUSED", { cause: err });
      }
      throw new ProviderCallError(`${what}: the connection broke before an answer (${message})`, "maybe", "ECONNRESET", {
        cause: err,
      });
    }
  }
}

export function createTwilioClient(cfg: TwilioClientConfig): TwilioClient {
  if (cfg.apiBase) {
    const base = new URL(cfg.apiBase); // fail fast on a malformed base, not on the first send
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new Error(`apiBase must be an http(s) URL, got ${cfg.apiBase}`);
    }
  }
  const httpClient = new FetchRequestClient(cfg.apiBase, cfg.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  return twilio(cfg.accountSid, cfg.authToken, { httpClient });
}

/** What one outbound message carries to Twilio, as the claim (herald.claim_messages) decided it. */
export interface OutboundContent {
  /** The message's text: sent as Body unless the message goes as a content template. */
  body: string;
  /** A content template (HX…) to send instead of a Body: WhatsApp outside the 24-hour window. */
  contentSid: string | null;
  /** The template's variables, {"1": "Ada"}; none sends the template's defaults. */
  contentVariables: Record<string, string> | null;
  /** Seconds Twilio may hold the message in its queue (ValidityPeriod, 1–36,000); null for none. */
  validityPeriod: number | null;
}

/**
 * The create parameters for one message: a template goes as ContentSid and ContentVariables (a
 * JSON string, as Twilio takes it) without Body, which Twilio would otherwise send in its place
 * or refuse beside it; everything else as Body. ValidityPeriod only when the message has a deadline.
 */
export function messageCreateParams(
  to: string,
  from: string,
  content: OutboundContent,
  statusCallback: string,
): MessageListInstanceCreateOptions {
  const params: MessageListInstanceCreateOptions = { to, from, statusCallback };
  if (content.contentSid !== null) {
    params.contentSid = content.contentSid;
    if (content.contentVariables !== null && Object.keys(content.contentVariables).length > 0) {
      params.contentVariables = JSON.stringify(content.contentVariables);
    }
  } else {
    params.body = content.body;
  }
  if (content.validityPeriod !== null) params.validityPeriod = content.validityPeriod;
  return params;
}

/**
 * Checks `X-Twilio-Signature`. Pass the public URL Twilio was given (from configuration), not
 * `req.url`: proxies in front of the function rewrite the host and scheme.
 *
 * Twilio signs the URL it was given, so that one is checked first: one HMAC. Only a signature
 * that does not match it goes to twilio.validateRequest, which also accepts the URL without or
 * with its port and normalized forms, but starts with the URL without its port: a second HMAC
 * on every request wherever the URL has one (the local stack's does), a sixth of what serving a
 * status callback cost.
 */
export function signatureValid(
  authToken: string,
  signature: string | null | undefined,
  url: string,
  params: Record<string, string>,
): boolean {
  if (!signature) return false;
  if (sameString(twilio.getExpectedTwilioSignature(authToken, url, params), signature)) return true;
  return twilio.validateRequest(authToken, signature, url, params);
}

const utf8 = new TextEncoder();

/**
 * Equal strings, compared with timingSafeEqual as the service key is (_shared/caller.ts): the time
 * depends on their length only, and a signature's length is no secret.
 */
export function sameString(a: string, b: string): boolean {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  return x.byteLength === y.byteLength && timingSafeEqual(x, y);
}

/** Twilio errors that no retry can fix: the number itself is unusable or has opted out. */
export const PERMANENT_ERROR_CODES: ReadonlySet<number> = new Set([21211, 21612, 21408, 21610, 21614]);

/**
 * Codes that describe a temporary condition: API rate limit / server errors, and the delivery
 * errors for queue overflow (30001), carrier congestion (30017) and sender rate limits (30022).
 * Other 30xxx delivery codes (30003 unreachable, 30008 unknown…) are final for that message.
 */
export const TRANSIENT_ERROR_CODES: ReadonlySet<number> = new Set([20429, 20500, 20503, 30001, 30017, 30022]);

/** Socket errors (Node's names) of a connection that was never made: nothing was written. */
const NOT_CONNECTED_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "ERR_SOCKET_CONNECTION_TIMEOUT",
]);

export interface ProviderErrorClass {
  /**
   * permanent: no retry can fix it. transient: the provider answered with a temporary error, or the
   * request never reached it; a retry is safe. unknown: no answer, and the request may have reached
   * the provider (a timeout, a connection broken after writing): only a look-up tells.
   */
  kind: "permanent" | "transient" | "unknown";
  code: number | null;
  status: number | null;
  message: string;
}

interface HttpErrorShape {
  status: number;
  code?: unknown;
  message?: unknown;
}

/** RestException, or the library's RFC 9457 TwilioServiceException (not exported) by shape. */
function asHttpError(err: unknown): HttpErrorShape | null {
  if (err instanceof twilio.RestException) return err;
  if (typeof err === "object" && err !== null && "status" in err && typeof err.status === "number") {
    return err as HttpErrorShape;
  }
  return null;
}

/**
 * Decides whether a failed provider call may be retried.
 * Permanent: the permanent codes above, and any other 4xx. Transient: 429, 5xx, transient codes,
 * and connections that were never made. Unknown: every other failure without an HTTP answer
 * (timeouts, resets, an answer that could not be read), since the provider may have acted on the
 * request. The client's own argument checks ("Required parameter … missing") are permanent: they
 * fail the same way every time, before any request.
 */
export function classifyProviderError(err: unknown): ProviderErrorClass {
  const http = asHttpError(err);
  if (http) {
    const code = typeof http.code === "number" ? http.code : null;
    const status = http.status;
    const message = typeof http.message === "string" && http.message !== ""
      ? http.message
      : `HTTP ${status}`;
    if (code !== null && PERMANENT_ERROR_CODES.has(code)) return { kind: "permanent", code, status, message };
    if (status === 429 || status >= 500 || (code !== null && TRANSIENT_ERROR_CODES.has(code))) {
      return { kind: "transient", code, status, message };
    }
    if (status >= 400) return { kind: "permanent", code, status, message };
    return { kind: "transient", code, status, message };
  }

  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ProviderCallError) {
    return { kind: err.reached === "no" ? "transient" : "unknown", code: null, status: null, message };
  }
  const errno = typeof err === "object" && err !== null && "code" in err && typeof err.code === "string"
    ? err.code
    : null;
  if (errno !== null && NOT_CONNECTED_CODES.has(errno)) {
    return { kind: "transient", code: null, status: null, message };
  }
  if (err instanceof Error && /^Required parameter /.test(err.message)) {
    return { kind: "permanent", code: null, status: null, message };
  }
  // No answer could be read: whether the provider acted on the request is not known.
  return { kind: "unknown", code: null, status: null, message };
}
