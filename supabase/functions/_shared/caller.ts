// Who is calling. The gateway (Supabase's, or scripts/functions-server.ts locally) has already
// rejected requests without a valid JWT where verify_jwt = true; where the JWT secret is
// configured the function verifies again rather than trust its position behind the gateway.

import { env } from "./env.ts";
import { HttpError } from "./http.ts";
import { bearerToken, type JwtClaims, verifyJwt } from "./jwt.ts";

function decodeClaims(token: string): JwtClaims {
  try {
    const body = token.split(".")[1];
    return JSON.parse(atob(body.replaceAll("-", "+").replaceAll("_", "/")));
  } catch {
    throw new HttpError(401, "invalid_jwt", "the bearer token is not a JWT");
  }
}

export async function callerClaims(req: Request): Promise<JwtClaims> {
  const token = bearerToken(req);
  const secret = env().SUPABASE_JWT_SECRET;
  return secret ? await verifyJwt(token, secret) : decodeClaims(token);
}

/** A signed-in user's claims; service and anon keys are refused. */
export async function requireUser(req: Request): Promise<JwtClaims & { sub: string }> {
  const claims = await callerClaims(req);
  if (claims.role !== "authenticated" || typeof claims.sub !== "string") {
    throw new HttpError(403, "user_required", "call this function with a signed-in user's JWT");
  }
  return claims as JwtClaims & { sub: string };
}

export async function requireServiceRole(req: Request): Promise<JwtClaims> {
  const claims = await callerClaims(req);
  if (claims.role !== "service_role") {
    throw new HttpError(403, "service_role_required", "only the service role may call this function");
  }
  return claims;
}
