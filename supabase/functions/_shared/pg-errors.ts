// Herald's RPCs raise stable SQLSTATEs (see the README); this maps them to HTTP statuses so a
// function passes the database's own message through with the right code.

import { HttpError } from "./http.ts";

const STATUS_BY_SQLSTATE: Record<string, [number, string]> = {
  "22023": [400, "invalid_parameter"],
  "22P02": [400, "invalid_input_syntax"],
  "23505": [409, "conflict"],
  "23514": [400, "check_violation"],
  "42501": [403, "forbidden"],
  "55000": [409, "wrong_state"],
  // The role's statement_timeout cut the work short (a lock held elsewhere, or too much asked at once).
  "57014": [503, "statement_timeout"],
  "P0002": [404, "not_found"],
};

interface PostgresErrorLike {
  code?: string;
  message?: string;
  hint?: string;
}

/** Re-throws a Postgres error with a known SQLSTATE as an HttpError; anything else unchanged. */
export function rethrowAsHttp(err: unknown): never {
  const e = err as PostgresErrorLike;
  const mapped = e && typeof e.code === "string" ? STATUS_BY_SQLSTATE[e.code] : undefined;
  if (mapped) {
    throw new HttpError(mapped[0], mapped[1], e.hint ? `${e.message} (${e.hint})` : String(e.message));
  }
  throw err;
}
