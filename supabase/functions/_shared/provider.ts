// The Twilio client as configured for this deployment (the sandbox locally, Twilio in production).

import { env, required } from "./env.ts";
import { createTwilioClient, type TwilioClient } from "./twilio.ts";

/** How long one provider call may take; leases are stretched over it. */
export const PROVIDER_TIMEOUT_MS = 15_000;

let client: TwilioClient | undefined;

export function provider(): TwilioClient {
  client ??= createTwilioClient({
    accountSid: required("TWILIO_ACCOUNT_SID"),
    authToken: required("TWILIO_AUTH_TOKEN"),
    apiBase: env().TWILIO_API_BASE,
    timeoutMs: PROVIDER_TIMEOUT_MS,
  });
  return client;
}
