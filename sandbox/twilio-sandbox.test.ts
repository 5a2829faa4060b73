/**
 * twilio-sandbox.ts, the program `npm start` and the test stack run: configuration from the
 * environment, a missing variable named, a clean exit on SIGTERM.
 */
import assert from "node:assert/strict";
import { sidPattern } from "@herald/shared/sids.ts";
import { createTwilioClient } from "@herald/shared/twilio.ts";
import { DENO_CONFIG } from "@herald/scripts/lib/config.ts";
import { ACCOUNT_SID, AUTH_TOKEN, FROM, OK_TO } from "./testing.ts";

const SANDBOX_MAIN = new URL("./twilio-sandbox.ts", import.meta.url).pathname;

function sandboxCommand(env: Record<string, string>, piped: boolean): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_CONFIG, SANDBOX_MAIN],
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", ...env },
    clearEnv: true,
    stdout: piped ? "piped" : "null",
    stderr: "piped",
  });
}

Deno.test("as a program: a missing variable is named and the exit code is 1", async () => {
  const out = await sandboxCommand({ TWILIO_ACCOUNT_SID: ACCOUNT_SID }, false).output();
  assert.equal(out.code, 1);
  assert.match(new TextDecoder().decode(out.stderr), /TWILIO_AUTH_TOKEN: is required/);
});

Deno.test("as a program: serves from env and exits 0 on SIGTERM", async () => {
  const child = sandboxCommand({
    TWILIO_ACCOUNT_SID: ACCOUNT_SID,
    TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    SANDBOX_PORT: "0",
  }, true).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  const stderrText = (async () => {
    let text = "";
    for await (const chunk of stderr) text += chunk;
    return text;
  })();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  try {
    while (!/listening on (http:\S+)/.test(seen)) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`sandbox exited early: ${seen}`);
      seen += value;
    }
    const base = /listening on (http:\S+)/.exec(seen)![1];
    const client = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: base });
    const m = await client.messages.create({ to: OK_TO, from: FROM, body: "from a child process" });
    assert.match(m.sid, sidPattern("SM"));
  } finally {
    child.kill("SIGTERM");
    await lines.cancel();
  }
  const status = await child.status;
  assert.equal(status.code, 0, await stderrText);
});
