// Database access for the functions. Supabase sets SUPABASE_DB_URL in every function; Herald
// talks SQL through it and, for work done on a user's behalf, takes on that user exactly as
// PostgREST does (role `authenticated` plus the JWT claims, transaction-local) so RLS applies.

import postgres from "postgres";
import { env } from "./env.ts";
import type { JwtClaims } from "./jwt.ts";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

let pool: Sql | undefined;

export function db(): Sql {
  if (!pool) {
    pool = postgres(env().SUPABASE_DB_URL, {
      max: env().HERALD_DB_POOL_SIZE,
      idle_timeout: 20,
      connect_timeout: 10,
      prepare: true,
      onnotice: () => {},
    });
  }
  return pool;
}

export async function closeDb(): Promise<void> {
  const p = pool;
  pool = undefined;
  await p?.end({ timeout: 1 });
}

/** Runs fn in one transaction as the JWT's role with its claims, as PostgREST would. */
export function asCaller<T>(claims: JwtClaims, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  const role = claims.role === "service_role" ? "service_role" : "authenticated";
  return db().begin(async (tx) => {
    await tx`select set_config('role', ${role}, true), set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
    return await fn(tx);
  }) as Promise<T>;
}
