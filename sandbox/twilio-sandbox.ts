/**
 * Local Twilio stand-in for development and tests (see CONTRACT.md, "Twilio sandbox").
 *
 * Speaks the subset of Twilio's 2010-04-01 Messages API that Herald uses, in Twilio's wire format,
 * so the real `twilio` client can be pointed at it. Outcomes are chosen by the `To` number (Twilio's
 * magic test numbers plus a few extensions), status callbacks and inbound webhooks are signed with
 * the library's own `getExpectedTwilioSignature`, and `GET /` is an inbox page to reply from.
 *
 * This file is the program: it reads its configuration from the environment and serves until
 * SIGTERM or SIGINT. The parts are modules of their own: behaviour.ts (numbers, lifecycles,
 * segments, the Message resource), webhooks.ts (signed callbacks and inbound webhooks), inbox.ts
 * (the page), record.ts (the record on disk, with SANDBOX_RECORD), server.ts (`startSandbox`, for
 * tests that want a sandbox of their own).
 *
 * Run: deno run -A --config supabase/functions/deno.json sandbox/twilio-sandbox.ts
 */
import { z } from "zod";
import { describeIssues } from "@herald/shared/http.ts";
import { sidSchema } from "@herald/shared/sids.ts";
import { startSandbox } from "./server.ts";

const nonEmpty = (v: unknown) => (v === "" ? undefined : v);

const EnvSchema = z.object({
  TWILIO_ACCOUNT_SID: z.preprocess(nonEmpty, z.string({ error: "is required" }).pipe(sidSchema("AC"))),
  TWILIO_AUTH_TOKEN: z.preprocess(nonEmpty, z.string({ error: "is required" }).min(1)),
  SANDBOX_PORT: z.preprocess(nonEmpty, z.coerce.number().int().min(0).max(65535).default(54330)),
  SANDBOX_INBOUND_URL: z.preprocess(
    nonEmpty,
    z.url().default("http://127.0.0.1:54321/functions/v1/twilio-inbound"),
  ),
  /** Where the sandbox keeps its record across restarts; memory only when unset. */
  SANDBOX_RECORD: z.preprocess(nonEmpty, z.string().optional()),
});

async function main(): Promise<void> {
  const env = EnvSchema.safeParse(Deno.env.toObject());
  if (!env.success) {
    console.error(`twilio-sandbox: invalid configuration: ${describeIssues(env.error)}`);
    Deno.exit(1);
  }
  const sandbox = await startSandbox({
    accountSid: env.data.TWILIO_ACCOUNT_SID,
    authToken: env.data.TWILIO_AUTH_TOKEN,
    port: env.data.SANDBOX_PORT,
    inboundUrl: env.data.SANDBOX_INBOUND_URL,
    recordPath: env.data.SANDBOX_RECORD,
  });
  const kept = env.data.SANDBOX_RECORD ? `; ${sandbox.messages().length} message(s) on record in ${env.data.SANDBOX_RECORD}` : "";
  console.log(`twilio-sandbox listening on ${sandbox.url} (inbound webhook: ${env.data.SANDBOX_INBOUND_URL}${kept})`);
  const stop = async () => {
    await sandbox.close();
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, stop);
}

if (import.meta.main) await main();
