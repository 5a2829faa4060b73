// What both Twilio webhooks share: read the form body, check X-Twilio-Signature against the
// public URL Twilio was given (not req.url: proxies rewrite it), then validate the fields.

import type { z } from "zod";
import { env, required } from "./env.ts";
import { HttpError, parseInput } from "./http.ts";
import { signatureValid } from "./twilio.ts";

/** The functions' public base URL (…/functions/v1), as configured or derived from SUPABASE_URL. */
export function publicFunctionsUrl(): string {
  const configured = env().HERALD_FUNCTIONS_URL;
  if (configured) return configured.replace(/\/+$/, "");
  const base = env().SUPABASE_URL;
  if (!base) throw new Error("set HERALD_FUNCTIONS_URL (or SUPABASE_URL) so Twilio's signatures can be checked");
  return `${base.replace(/\/+$/, "")}/functions/v1`;
}

export interface TwilioWebhook<T> {
  /** Every form field as posted (what the database stores). */
  params: Record<string, string>;
  /** The fields the function uses, validated by its schema. */
  fields: T;
  /** Twilio's I-Twilio-Idempotency-Token: the same on every redelivery of one webhook. */
  idempotencyToken: string | null;
}

/** Twilio's webhooks are a few kilobytes; anything past this is refused before it is read. */
export const MAX_WEBHOOK_BYTES = 64 * 1024;

/** The body as text, or 413 as soon as it is known to exceed the limit (declared or streamed). */
async function readBounded(req: Request, limit: number): Promise<string> {
  const tooLarge = () => new HttpError(413, "payload_too_large", `the body exceeds ${limit} bytes`);
  const length = req.headers.get("content-length");
  const declared = Number(length);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  if (!req.body) return "";
  // A declared length within the limit is the body's length (the server frames the body by it),
  // so it is read whole, without pulling it through a stream reader chunk by chunk.
  if (length !== null && Number.isFinite(declared)) return await req.text();
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/**
 * The webhook's form, once its signature holds (403 otherwise), validated by `schema`: a field
 * that fails is a 400 `invalidCode` that names it.
 */
export async function verifiedTwilioWebhook<S extends z.ZodType>(
  req: Request,
  functionName: string,
  schema: S,
  invalidCode: string,
): Promise<TwilioWebhook<z.output<S>>> {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "use POST");
  const type = req.headers.get("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded")) {
    throw new HttpError(400, "invalid_body", "expected an application/x-www-form-urlencoded body");
  }
  const params: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(await readBounded(req, MAX_WEBHOOK_BYTES))) params[k] = v;

  const url = `${publicFunctionsUrl()}/${functionName}${new URL(req.url).search}`;
  if (!signatureValid(required("TWILIO_AUTH_TOKEN"), req.headers.get("x-twilio-signature"), url, params)) {
    throw new HttpError(403, "invalid_signature", "X-Twilio-Signature is missing or does not match this request");
  }
  // PostgreSQL's text and jsonb hold no NUL character: such a form could never be stored, and
  // would fail every callback applied with it.
  const withNul = Object.entries(params).find(([k, v]) => k.includes("\0") || v.includes("\0"));
  if (withNul) {
    throw new HttpError(400, invalidCode, `${withNul[0].replaceAll("\0", "\\0")}: must not contain a NUL character`);
  }
  const fields = parseInput(schema, params, invalidCode, "form");
  return { params, fields, idempotencyToken: req.headers.get("i-twilio-idempotency-token") };
}
