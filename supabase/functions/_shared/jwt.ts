// HS256 JWTs as Supabase issues them with a shared JWT secret: verification for the functions
// (the gateway's verify_jwt step, repeated where a function acts on the caller's identity) and
// signing for local tooling (the stack prints a service-role key and a demo user's token).

import { HttpError } from "./http.ts";

const enc = new TextEncoder();

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromB64url(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s.replaceAll("-", "+").replaceAll("_", "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

export interface JwtClaims {
  role?: string;
  sub?: string;
  exp?: number;
  [claim: string]: unknown;
}

export async function signJwt(claims: JwtClaims, secret: string): Promise<string> {
  const header = b64url(enc.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const body = b64url(enc.encode(JSON.stringify(claims)));
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret, "sign"), enc.encode(`${header}.${body}`));
  return `${header}.${body}.${b64url(new Uint8Array(sig))}`;
}

/** Returns the claims of a valid, unexpired HS256 token; throws HttpError 401 otherwise. */
export async function verifyJwt(token: string, secret: string): Promise<JwtClaims> {
  const parts = token.split(".");
  if (parts.length !== 3) throw new HttpError(401, "invalid_jwt", "the bearer token is not a JWT");
  const [header, body, sig] = parts;
  let alg: unknown;
  let claims: JwtClaims;
  try {
    alg = JSON.parse(new TextDecoder().decode(fromB64url(header))).alg;
    claims = JSON.parse(new TextDecoder().decode(fromB64url(body)));
  } catch {
    throw new HttpError(401, "invalid_jwt", "the bearer token is not a JWT");
  }
  if (alg !== "HS256") throw new HttpError(401, "invalid_jwt", `unsupported JWT algorithm ${String(alg)}`);
  const ok = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret, "verify"),
    fromB64url(sig),
    enc.encode(`${header}.${body}`),
  );
  if (!ok) throw new HttpError(401, "invalid_jwt", "the JWT signature does not verify");
  if (typeof claims.exp === "number" && claims.exp < Date.now() / 1000) {
    throw new HttpError(401, "jwt_expired", "the JWT has expired; sign in again");
  }
  return claims;
}

export function bearerToken(req: Request): string {
  const h = req.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  if (!m) throw new HttpError(401, "missing_jwt", "send the caller's JWT as 'Authorization: Bearer <token>'");
  return m[1];
}
