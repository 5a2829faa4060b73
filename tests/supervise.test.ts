import assert from "node:assert/strict";
import { createTwilioClient } from "@herald/shared/twilio.ts";
import { LOCAL_TWILIO } from "@herald/scripts/lib/config.ts";
import { localKeys, Stack } from "@herald/scripts/lib/stack.ts";
import { firstFreePort } from "@herald/scripts/lib/proc.ts";
import { stack as testStack, waitFor } from "./support.ts";

// The stack as `npm start` runs it (Stack.supervise), on ports of its own against the test
// database: a service killed with SIGKILL comes back alone, the others keep their pids, and the
// sandbox's record outlives the sandbox, as Twilio's does.

async function isAlive(pid: number): Promise<boolean> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  return stat !== "" && !/^\d+ \(.*\) Z /.test(stat);
}

Deno.test({
  name: "supervise: a killed functions server or sandbox is restarted alone, and the sandbox still has its record",
  // The supervised children's output goes to the test's own stdout.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dbPort = Number(new URL(testStack.dbUrl).port);
    const functions = await firstFreePort(54460);
    const sandbox = await firstFreePort(functions + 1);
    const stack = new Stack({ db: dbPort, functions, sandbox }, "/nonexistent: the test stack's cluster is not ours", true);
    const dir = await Deno.makeTempDir({ prefix: "herald-supervise-" });
    const lines: string[] = [];
    const supervisor = stack.supervise(await localKeys(), {
      sandboxRecord: `${dir}/sandbox/messages.jsonl`,
      log: (line) => lines.push(line),
      firstDelayMs: 200,
    });
    await supervisor.start();
    try {
      const health = async () => (await fetch(`${stack.urls.functions}/health`).then((r) => r.json()).catch(() => null))?.ok === true;
      assert.equal(await health(), true);
      const twilio = createTwilioClient({ ...LOCAL_TWILIO, apiBase: stack.urls.sandbox });
      const sent = await twilio.messages.create({ to: "+14155550100", from: "+15005550006", body: "remember me" });
      const before = supervisor.pids();

      Deno.kill(before.functions, "SIGKILL");
      await waitFor("the functions server to be back", async () => supervisor.pids().functions !== before.functions && await health());
      assert.ok(await isAlive(before.sandbox), "the sandbox was not touched");
      assert.equal(supervisor.pids().sandbox, before.sandbox);
      assert.deepEqual(lines.slice(0, 2), [
        "functions was killed (SIGKILL); restarting it in 200 ms",
        `functions is back (pid ${supervisor.pids().functions})`,
      ]);

      const functionsNow = supervisor.pids().functions;
      Deno.kill(before.sandbox, "SIGKILL");
      const back = await waitFor("the sandbox to be back, with the message", async () => {
        if (supervisor.pids().sandbox === before.sandbox) return null;
        return await twilio.messages(sent.sid).fetch().catch(() => null);
      });
      assert.equal(back!.body, "remember me", "the restarted sandbox still has what it accepted");
      assert.equal(supervisor.pids().functions, functionsNow, "the functions server was not touched");
      assert.ok(lines.includes("sandbox was killed (SIGKILL); restarting it in 200 ms"), lines.join("\n"));
    } finally {
      const pids = Object.values(supervisor.pids());
      await supervisor.stop();
      for (const pid of pids) assert.equal(await isAlive(pid), false, `pid ${pid} stopped`);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
