// Twilio's resource identifiers, defined once for the functions, the sandbox and the tests: two
// letters naming the resource type (AC account, SM/MM message) and 32 lowercase hex digits.

import { z } from "zod";

type Prefixes = [string, ...string[]];

/** Matches a sid with one of these prefixes, e.g. `sidPattern("SM", "MM")`. */
export function sidPattern(...prefixes: Prefixes): RegExp {
  return new RegExp(`^(?:${prefixes.join("|")})[0-9a-f]{32}$`);
}

/** A string schema for such a sid, whose message says what a valid one looks like. */
export function sidSchema(...prefixes: Prefixes) {
  return z.string().regex(sidPattern(...prefixes), `must be ${prefixes.join(" or ")} followed by 32 hex digits`);
}

export const ACCOUNT_SID = sidPattern("AC");
/** A message's sid: SM for SMS and WhatsApp, MM for a message with media. */
export const MESSAGE_SID = sidPattern("SM", "MM");

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** A fresh random sid of this type, as Twilio mints them. */
export function newSid(prefix: string): string {
  let out = prefix;
  for (const b of crypto.getRandomValues(new Uint8Array(16))) out += HEX[b];
  return out;
}
