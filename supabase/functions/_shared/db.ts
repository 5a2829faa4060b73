// Database access for the functions. Herald talks SQL through HERALD_DB_URL (on a hosted project,
// the transaction pooler) or else SUPABASE_DB_URL, and for work done on a user's behalf takes on
// that user exactly as PostgREST does (the role's own settings, the role, the JWT claims, all
// transaction-local) so RLS and the role's statement_timeout apply.

import postgres from "postgres";
import { env } from "./env.ts";
import type { JwtClaims } from "./jwt.ts";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

export interface Connection {
  url: string;
  /** Named prepared statements: only where one client keeps one server connection. */
  prepare: boolean;
}

/**
 * A transaction pooler (Supavisor on port 6543, PgBouncer in transaction mode) hands each
 * transaction whichever server connection is free, so a statement prepared on one is missing on
 * the next ("prepared statement … does not exist"): postgres.js must not name its statements
 * there. `pgbouncer=true` is the marker other clients use for such a URL; it is not a server
 * setting, so it is taken off the URL (postgres.js would send it to the server as one).
 */
export function connection(rawUrl: string): Connection {
  const url = new URL(rawUrl);
  const marked = url.searchParams.get("pgbouncer") === "true";
  url.searchParams.delete("pgbouncer");
  return { url: url.toString(), prepare: !(marked || url.port === "6543") };
}

let pool: Sql | undefined;

export function db(): Sql {
  if (!pool) {
    const e = env();
    const { url, prepare } = connection((e.HERALD_DB_URL ?? e.SUPABASE_DB_URL)!);
    pool = postgres(url, {
      max: e.HERALD_DB_POOL_SIZE,
      idle_timeout: 20,
      connect_timeout: 10,
      prepare,
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

/**
 * Runs fn in one transaction as the JWT's role with its claims, as PostgREST does. A role's own
 * settings (`alter role authenticated set statement_timeout = '8s'`) apply at login only, and
 * nobody logs in as `authenticated`: PostgREST reads them from the catalog and sets them
 * transaction-locally before switching role, and so does this, in the same single statement.
 * Only settings the connected user may set are taken (context `user`, or SET granted), as
 * PostgREST does; the isolation level is left alone (Herald's RPCs are written for read committed).
 * Read from pg_roles on every call rather than cached: an `alter role … set` takes effect on the
 * next request, without a reload.
 */
export function asCaller<T>(claims: JwtClaims, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  const role = claims.role === "service_role" ? "service_role" : "authenticated";
  return db().begin(async (tx) => {
    await tx`
      select pg_catalog.set_config('role', ${role}, true),
             pg_catalog.set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)
      from (
        select count(pg_catalog.set_config(s.name, s.value, true))
        from (
          select pg_catalog.split_part(c.setting, '=', 1) as name,
                 pg_catalog.substr(c.setting, pg_catalog.strpos(c.setting, '=') + 1) as value
          from pg_catalog.pg_roles r, pg_catalog.unnest(r.rolconfig) as c(setting)
          where r.rolname = ${role}
        ) s
        join pg_catalog.pg_settings ps on ps.name = s.name
        where s.name <> 'default_transaction_isolation'
          and (ps.context = 'user' or pg_catalog.has_parameter_privilege(s.name, 'SET'))
      ) as role_settings`;
    return await fn(tx);
  }) as Promise<T>;
}
