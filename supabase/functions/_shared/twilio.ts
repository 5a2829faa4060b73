/**
 * The Twilio client the edge functions use, and how its failures are classified.
 *
 * It is the real `twilio` library. For local development and tests the only change is where requests
 * go: with `apiBase` set, a RequestClient subclass rewrites the twilio.com origin to the sandbox, so
 * the library's own auth, form encoding, paging and RestException handling are exercised unchanged.
 */
import twilio from "twilio";
// Type-only: the library ships these as CommonJS declarations that the root export does not re-export.
import type RequestClientTypes from "twilio/lib/base/RequestClient";
import type * as HttpResponse from "twilio/lib/http/response";

export type TwilioClient = twilio.Twilio;

export interface TwilioClientConfig {
  accountSid: string;
  authToken: string;
  /** e.g. "http://127.0.0.1:54330"; when set, every *.twilio.com request goes there instead. */
  apiBase?: string;
  /** Per-request timeout in milliseconds (the library's default is 30 000). */
  timeoutMs?: number;
}

function isTwilioHost(hostname: string): boolean {
  return hostname === "twilio.com" || hostname.endsWith(".twilio.com");
}

/** Replaces a twilio.com origin with `apiBase` (keeping any path prefix it has); other URLs pass. */
export function rewriteTwilioUri(uri: string, apiBase: string): string {
  const target = new URL(uri);
  if (!isTwilioHost(target.hostname)) return uri;
  return `${apiBase.replace(/\/+$/, "")}${target.pathname}${target.search}`;
}

/** The library's own HTTP client, pointed somewhere else. */
class RedirectingRequestClient extends twilio.RequestClient {
  readonly #apiBase: string;

  constructor(apiBase: string, options: RequestClientTypes.RequestClientOptions) {
    super(options);
    this.#apiBase = apiBase;
  }

  override request<TData>(
    opts: RequestClientTypes.RequestOptions<TData>,
  ): Promise<HttpResponse.default<TData>> {
    return super.request({ ...opts, uri: rewriteTwilioUri(opts.uri, this.#apiBase) });
  }
}

export function createTwilioClient(cfg: TwilioClientConfig): TwilioClient {
  if (!cfg.apiBase) {
    return twilio(cfg.accountSid, cfg.authToken, cfg.timeoutMs ? { timeout: cfg.timeoutMs } : {});
  }
  const base = new URL(cfg.apiBase); // fail fast on a malformed base, not on the first send
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new Error(`apiBase must be an http(s) URL, got ${cfg.apiBase}`);
  }
  const httpClient = new RedirectingRequestClient(cfg.apiBase, {
    ...(cfg.timeoutMs ? { timeout: cfg.timeoutMs } : {}),
  });
  return twilio(cfg.accountSid, cfg.authToken, { httpClient });
}

/**
 * Checks `X-Twilio-Signature`. Pass the public URL Twilio was given (from configuration), not
 * `req.url`: proxies in front of the function rewrite the host and scheme.
 */
export function signatureValid(
  authToken: string,
  signature: string | null | undefined,
  url: string,
  params: Record<string, string>,
): boolean {
  if (!signature) return false;
  return twilio.validateRequest(authToken, signature, url, params);
}

/** Twilio errors that no retry can fix: the number itself is unusable or has opted out. */
export const PERMANENT_ERROR_CODES: ReadonlySet<number> = new Set([21211, 21612, 21408, 21610, 21614]);

/**
 * Codes that describe a temporary condition: API rate limit / server errors, and the delivery
 * errors for queue overflow (30001), carrier congestion (30017) and sender rate limits (30022).
 * Other 30xxx delivery codes (30003 unreachable, 30008 unknown…) are final for that message.
 */
export const TRANSIENT_ERROR_CODES: ReadonlySet<number> = new Set([20429, 20500, 20503, 30001, 30017, 30022]);

/** Error codes of sockets that failed or timed out before any HTTP answer (Node and Deno names). */
const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "ERR_NETWORK",
  "ERR_SOCKET_CONNECTION_TIMEOUT",
]);

export interface ProviderErrorClass {
  kind: "permanent" | "transient";
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
 * Decides whether a failed send may be retried.
 * Permanent: the permanent codes above, and any other 4xx. Transient: 429, 5xx, transient codes,
 * and failures before an HTTP answer (network errors, timeouts). The client's own argument checks
 * ("Required parameter … missing") are permanent: they fail the same way every time.
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
  const errno = typeof err === "object" && err !== null && "code" in err && typeof err.code === "string"
    ? err.code
    : null;
  if (errno !== null && NETWORK_ERROR_CODES.has(errno)) {
    return { kind: "transient", code: null, status: null, message };
  }
  if (err instanceof Error && /^Required parameter /.test(err.message)) {
    return { kind: "permanent", code: null, status: null, message };
  }
  // Anything else happened before Twilio answered; a bounded retry is safer than dropping the message.
  return { kind: "transient", code: null, status: null, message };
}
