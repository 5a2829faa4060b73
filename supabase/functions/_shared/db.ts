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

function open(max: number): Sql {
  const e = env();
  const { url, prepare } = connection((e.HERALD_DB_URL ?? e.SUPABASE_DB_URL)!);
  return postgres(url, { max, idle_timeout: 20, connect_timeout: 10, prepare, onnotice: () => {} });
}

let pool: Sql | undefined;
let serial: Sql | undefined;

/** The isolate's pool: up to HERALD_DB_POOL_SIZE connections. */
export function db(): Sql {
  return pool ??= open(env().HERALD_DB_POOL_SIZE);
}

/**
 * One connection of its own, for calls made one after another (the status callbacks' batches,
 * _shared/status-batcher.ts). postgres.js gives each query the pool's connection idle the
 * longest, so a sequence of calls through the pool takes its connections in turn: once the pool
 * has grown (a burst, or another function's calls in the same process, as in the local functions
 * server) every one of them keeps serving the sequence, each a backend with its own plans and
 * caches to keep warm. On the bench's callbacks after dispatch had filled the pool, one
 * connection of their own took PostgreSQL's CPU per callback from ~250 µs to ~175 and the rate
 * at 32 in flight from 2,800-3,000/s to 3,300-4,000. An isolate that only takes status callbacks
 * now holds one connection, not up to HERALD_DB_POOL_SIZE.
 */
export function serialDb(): Sql {
  return serial ??= open(1);
}

export async function closeDb(): Promise<void> {
  const opened = [pool, serial];
  pool = serial = undefined;
  await Promise.all(opened.map((p) => p?.end({ timeout: 1 })));
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
