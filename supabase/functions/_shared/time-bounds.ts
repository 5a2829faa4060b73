// The `from` / `to` query values of a function that filters by time. A person writes a day or a
// time as they think of it, in their workspace's zone; a program writes an instant:
//
//   2026-12-01                    the workspace's local day: from its start, or to its end
//   2026-12-01T09:00[:00[.000]]   a wall-clock time in the workspace's zone
//   2026-12-01T14:00:00Z, …+01:00 an instant
//
// Parsed here into what the SQL needs: either an instant, or a local timestamp that the query
// turns into an instant through each row's workspace time zone (`local at time zone w.timezone`).

import { z } from "zod";

export interface TimeBound {
  /** A timestamptz (an instant), or null. */
  instant: string | null;
  /** A timestamp without zone, in the workspace's zone, or null. */
  local: string | null;
}

export const NO_BOUND: TimeBound = { instant: null, local: null };

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$/;
const EXPECTED = "expected a date (2026-12-01) or a date-time (2026-12-01T09:00 in the workspace's zone, " +
  "or 2026-12-01T14:00:00Z / 2026-12-01T09:00:00-05:00 for an instant)";

function isCalendarDate(y: string, m: string, d: string): boolean {
  const t = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
  return t.getUTCFullYear() === Number(y) && t.getUTCMonth() === Number(m) - 1 && t.getUTCDate() === Number(d);
}

/** Parses one bound; `end` makes a bare date mean the end of that day (for `to`). */
export function parseTimeBound(value: string, end: boolean): TimeBound | null {
  const date = DATE.exec(value);
  if (date) {
    if (!isCalendarDate(date[1], date[2], date[3])) return null;
    // The last microsecond of the day: PostgreSQL timestamps have microsecond resolution, so
    // `<= this` is exactly "before the next day".
    return { instant: null, local: `${value}T${end ? "23:59:59.999999" : "00:00:00.000000"}` };
  }
  const dt = DATE_TIME.exec(value);
  if (!dt) return null;
  const [, y, mo, d, h, mi, s = "00", frac = "", offset] = dt;
  if (!isCalendarDate(y, mo, d) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return null;
  const local = `${y}-${mo}-${d}T${h}:${mi}:${s}${(frac || ".").padEnd(7, "0")}`;
  return offset ? { instant: `${local}${offset}`, local: null } : { instant: null, local };
}

/** A zod field for an optional `from` (start) or `to` (end) query value. */
export function timeBound(end: boolean) {
  return z.string().optional().transform((s, ctx): TimeBound => {
    if (s === undefined) return NO_BOUND;
    const bound = parseTimeBound(s, end);
    if (!bound) {
      ctx.addIssue({ code: "custom", message: EXPECTED });
      return z.NEVER;
    }
    return bound;
  });
}

/** True when `from` is provably after `to` (both instants, or both in the workspace's zone). */
export function boundsInverted(from: TimeBound, to: TimeBound): boolean {
  if (from.instant && to.instant) return new Date(from.instant) > new Date(to.instant);
  if (from.local && to.local) return from.local > to.local;
  return false;
}
