// Who is calling. Every function verifies its caller itself rather than trust its position behind
// a gateway (verify_jwt can be switched off per function, and a deploy flag is easy to get wrong):
// user functions take a signed-in user's verified JWT; dispatch takes only the project's service key.

import { timingSafeEqual } from "node:crypto";
import { env } from "./env.ts";
import { HttpError } from "./http.ts";
import { bearerToken, bearerTokenOrNull, type JwtClaims, requireAudience, verifyJwt } from "./jwt.ts";

export type UserClaims = JwtClaims & { role: "authenticated"; sub: string };

/** A signed-in user's verified claims; anon and service tokens are refused with 403 user_required. */
export async function requireUser(req: Request): Promise<UserClaims> {
  const claims = await verifyJwt(bearerToken(req));
  if (claims.role !== "authenticated" || typeof claims.sub !== "string" || claims.sub === "") {
    throw new HttpError(403, "user_required", "call this function with a signed-in user's JWT (role 'authenticated')");
  }
  requireAudience(claims, "authenticated");
  return claims as UserClaims;
}

const encoder = new TextEncoder();

async function sha256(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
}

let serviceKeyDigests: Promise<Uint8Array[]> | undefined;

/** The legacy service_role key and the project's secret keys (sb_secret_…), as digests. */
function acceptedServiceKeys(): Promise<Uint8Array[]> {
  if (!serviceKeyDigests) {
    const e = env();
    const keys = [e.SUPABASE_SERVICE_ROLE_KEY, e.SUPABASE_SECRET_KEY, ...(e.SUPABASE_SECRET_KEYS ?? [])]
      .filter((k): k is string => !!k);
    serviceKeyDigests = Promise.all(keys.map(sha256));
  }
  return serviceKeyDigests;
}

/**
 * Passes only a request carrying one of the project's service keys, in `Authorization: Bearer`
 * (as pg_cron's call sends it) or in `apikey` (where Supabase sends the new secret keys). The keys
 * are opaque strings here: a legacy service_role key is matched as a whole, never decoded, so no
 * other token with `role: service_role` in it gets through. Digests of equal length compared with
 * timingSafeEqual: the time taken says nothing about how much of a guess was right.
 */
export async function requireServiceKey(req: Request): Promise<void> {
  const presented = [bearerTokenOrNull(req), req.headers.get("apikey")].filter((k): k is string => !!k);
  if (presented.length === 0) {
    throw new HttpError(401, "missing_credentials", "call this function with the service key: 'Authorization: Bearer <key>' or 'apikey: <key>'");
  }
  const accepted = await acceptedServiceKeys();
  if (accepted.length === 0) {
    throw new HttpError(500, "auth_misconfigured", "the function has no service key to compare with: SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS");
  }
  let match = false;
  for (const candidate of await Promise.all(presented.map(sha256))) {
    for (const key of accepted) match = timingSafeEqual(candidate, key) || match;
  }
  if (!match) throw new HttpError(403, "service_role_required", "only the project's service key may call this function");
}
