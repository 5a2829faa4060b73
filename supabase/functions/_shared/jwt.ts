// JWT verification for the functions, in the two ways a Supabase project signs its users' tokens,
// and nothing else: no path reads a token's claims without checking its signature.
//
//   secret  an HS256 shared secret (HERALD_JWT_SECRET, or SUPABASE_JWT_SECRET, which the local
//           stack sets to Supabase's local secret): only HS256 tokens signed with it pass.
//   jwks    no shared secret configured (a hosted project on JWT signing keys): only ES256/RS256
//           tokens signed by a key in the project's JWKS pass, fetched from
//           <SUPABASE_URL>/auth/v1/.well-known/jwks.json (or HERALD_JWKS_URL) and cached per isolate.
//
// jose does the cryptography and the checks (allowed algorithms, key type bound to the algorithm,
// exp/nbf); this module maps its failures to stable HTTP errors. Signing is for local tooling only:
// the stack prints keys and a demo user's token, and tests sign their users' tokens.

import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify, type JWTVerifyGetKey, SignJWT } from "jose";
import { env } from "./env.ts";
import { HttpError } from "./http.ts";

export interface JwtClaims {
  role?: string;
  sub?: string;
  exp?: number;
  aud?: string | string[];
  [claim: string]: unknown;
}

export type JwtMode = "secret" | "jwks";

/** What Supabase Auth signs with besides the legacy HS256 secret (see its JWT guide). */
const ASYMMETRIC_ALGORITHMS = ["ES256", "RS256"];

/** A few seconds of clock skew between Supabase Auth and the function's host. */
const CLOCK_TOLERANCE_SECONDS = 5;

interface Verifier {
  mode: JwtMode;
  key: Uint8Array | JWTVerifyGetKey;
  algorithms: string[];
}

/** The JWKS could not be had (network, timeout, not JSON): the caller's token is not at fault. */
class JwksUnavailable extends Error {}

let cached: Verifier | undefined;

function verifier(): Verifier {
  if (cached) return cached;
  const e = env();
  const secret = e.HERALD_JWT_SECRET ?? e.SUPABASE_JWT_SECRET;
  if (secret) {
    cached = { mode: "secret", key: new TextEncoder().encode(secret), algorithms: ["HS256"] };
    return cached;
  }
  const jwksUrl = e.HERALD_JWKS_URL ?? (e.SUPABASE_URL && `${e.SUPABASE_URL.replace(/\/$/, "")}/auth/v1/.well-known/jwks.json`);
  if (!jwksUrl) {
    throw new HttpError(
      500,
      "auth_misconfigured",
      "the function cannot verify JWTs: set SUPABASE_URL (or HERALD_JWKS_URL) for the project's signing keys, or HERALD_JWT_SECRET for a shared secret",
    );
  }
  // jose's defaults, stated: keys cached for 10 minutes, a token with an unknown kid refetches at
  // most every 30 s (a key rotated in is picked up, a flood of forged kids is not a flood of fetches).
  const remote = createRemoteJWKSet(new URL(jwksUrl), { cacheMaxAge: 600_000, cooldownDuration: 30_000, timeoutDuration: 5_000 });
  const key: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      throw new JwksUnavailable(`the signing keys at ${jwksUrl} could not be read: ${err instanceof Error ? err.message : err}`);
    }
  };
  cached = { mode: "jwks", key, algorithms: ASYMMETRIC_ALGORITHMS };
  return cached;
}

export function jwtMode(): JwtMode {
  return verifier().mode;
}

/**
 * The claims of a token this project signed and that has not expired; an HttpError otherwise:
 * 401 invalid_jwt (malformed, `alg: none`, another algorithm than the mode's, bad signature, unknown
 * key, no exp), 401 jwt_expired, 503 jwks_unavailable when the signing keys cannot be fetched.
 */
export async function verifyJwt(token: string): Promise<JwtClaims> {
  const v = verifier();
  try {
    const options = { algorithms: v.algorithms, clockTolerance: CLOCK_TOLERANCE_SECONDS, requiredClaims: ["exp"] };
    // Two calls only because jose's overloads take a key or a key resolver, not the union.
    const { payload } = typeof v.key === "function"
      ? await jwtVerify(token, v.key, options)
      : await jwtVerify(token, v.key, options);
    return payload as JwtClaims;
  } catch (err) {
    throw jwtError(err, v);
  }
}

function jwtError(err: unknown, v: Verifier): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof JwksUnavailable) {
    console.error(err.message);
    return new HttpError(503, "jwks_unavailable", "the project's JWT signing keys could not be fetched; try again shortly");
  }
  if (err instanceof errors.JWTExpired) return new HttpError(401, "jwt_expired", "the JWT has expired; sign in again");
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new HttpError(401, "invalid_jwt", `the JWT's algorithm is not accepted here (${v.mode} mode accepts ${v.algorithms.join(", ")})`);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return new HttpError(401, "invalid_jwt", "the JWT's signature does not verify");
  if (err instanceof errors.JWKSNoMatchingKey) return new HttpError(401, "invalid_jwt", "the JWT is signed with a key this project does not publish");
  if (err instanceof errors.JWTClaimValidationFailed) return new HttpError(401, "invalid_jwt", `the JWT's claims are not valid: ${err.message}`);
  return new HttpError(401, "invalid_jwt", "the bearer token is not a valid JWT");
}

/** Fails unless the token was issued for `audience` (Supabase Auth issues user tokens for 'authenticated'). */
export function requireAudience(claims: JwtClaims, audience: string): void {
  const aud = claims.aud;
  const ok = typeof aud === "string" ? aud === audience : Array.isArray(aud) && aud.includes(audience);
  if (!ok) throw new HttpError(401, "invalid_jwt", `the JWT was not issued for this API (aud must be '${audience}')`);
}

/** An HS256 token signed with `secret`, as Supabase's legacy keys and local tokens are. */
export async function signJwt(claims: JwtClaims, secret: string): Promise<string> {
  return await new SignJWT(claims as JWTPayload)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(secret));
}

/** The token of 'Authorization: Bearer <token>', or null when there is none. */
export function bearerTokenOrNull(req: Request): string | null {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
  return m ? m[1] : null;
}

export function bearerToken(req: Request): string {
  const token = bearerTokenOrNull(req);
  if (!token) throw new HttpError(401, "missing_jwt", "send the caller's JWT as 'Authorization: Bearer <token>'");
  return token;
}
