// Function configuration, read once from the environment and validated, so a missing variable
// is named at start-up instead of failing a request later.

import { z } from "zod";
import { sidSchema } from "./sids.ts";

/** A JSON object of named keys, as Supabase provides SUPABASE_SECRET_KEYS: {"default":"sb_secret_…"}. */
const NamedKeys = z.string().transform((s, ctx) => {
  try {
    const parsed = z.record(z.string(), z.string().min(1)).parse(JSON.parse(s));
    return Object.values(parsed);
  } catch {
    ctx.addIssue({ code: "custom", message: 'must be a JSON object of named keys, e.g. {"default":"sb_secret_…"}' });
    return z.NEVER;
  }
});

const Env = z.object({
  /**
   * The database URL the functions use; set it as a function secret to the project's transaction
   * pooler (port 6543). Falls back to SUPABASE_DB_URL, which Supabase sets to a direct connection.
   */
  HERALD_DB_URL: z.string().url().optional(),
  SUPABASE_DB_URL: z.string().url().optional(),
  /** Connections each function isolate may open (postgres.js pool size). */
  HERALD_DB_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(5),
  SUPABASE_URL: z.string().url().optional(),
  /**
   * The HS256 secret user JWTs are signed with, where the project signs with a shared secret:
   * Supabase's local secret locally. HERALD_JWT_SECRET is the name to use on a hosted project
   * (SUPABASE_-prefixed secrets are reserved there).
   */
  HERALD_JWT_SECRET: z.string().min(32).optional(),
  SUPABASE_JWT_SECRET: z.string().min(32).optional(),
  /** Where the project's public signing keys are; default <SUPABASE_URL>/auth/v1/.well-known/jwks.json. */
  HERALD_JWKS_URL: z.string().url().optional(),
  /** The keys `dispatch` accepts: the legacy service_role key and the new secret keys. */
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1).optional(),
  SUPABASE_SECRET_KEYS: NamedKeys.optional(),
  SUPABASE_SECRET_KEY: z.string().min(1).optional(),
  TWILIO_ACCOUNT_SID: sidSchema("AC").optional(),
  TWILIO_AUTH_TOKEN: z.string().min(1).optional(),
  /** Only for local development and tests: the Twilio sandbox's origin. Unset in production. */
  TWILIO_API_BASE: z.string().url().optional(),
  /** The public origin Twilio calls back (…/functions/v1); signatures are computed over it. */
  HERALD_FUNCTIONS_URL: z.string().url().optional(),
}).refine((e) => e.HERALD_DB_URL || e.SUPABASE_DB_URL, {
  message: "set HERALD_DB_URL (the transaction pooler's URL) or SUPABASE_DB_URL",
  path: ["HERALD_DB_URL"],
});

export type HeraldEnv = z.infer<typeof Env>;

let cached: HeraldEnv | undefined;

export function env(): HeraldEnv {
  if (cached) return cached;
  const parsed = Env.safeParse(Deno.env.toObject());
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`Herald function configuration is invalid: ${problems}`);
  }
  cached = parsed.data;
  return cached;
}

/** Narrows an optional variable to a required one, naming it when absent. */
export function required<K extends keyof HeraldEnv>(key: K): NonNullable<HeraldEnv[K]> {
  const value = env()[key];
  if (value === undefined || value === null) {
    throw new Error(`Herald function configuration is missing ${String(key)}; set it with \`supabase secrets set\``);
  }
  return value as NonNullable<HeraldEnv[K]>;
}
