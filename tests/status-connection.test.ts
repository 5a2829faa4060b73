import assert from "node:assert/strict";
import { ROOT } from "@herald/scripts/lib/config.ts";
import { firstFreePort } from "@herald/scripts/lib/proc.ts";
import { startFunctionsServer } from "@herald/scripts/lib/stack.ts";
import { connect, messageSid, phone, postTwilioWebhook, senderPhone, stack } from "./support.ts";

// The status callbacks' batches go one after another, and on one connection of their own
// (_shared/db.ts, serialDb): through the isolate's pool they took its connections in turn, the
// one idle longest first, so once the pool had grown every connection in it kept serving them.

Deno.test("twilio-status: its batches run on one connection of their own, however many the pool holds", async () => {
  const sql = connect();
  // The functions server's connections, told apart from every other by their application_name.
  const app = `herald-serial-${Deno.pid}`;
  const dbUrl = new URL(stack.dbUrl);
  dbUrl.searchParams.set("application_name", app);
  const port = await firstFreePort(54480);
  const functionsUrl = `http://127.0.0.1:${port}/functions/v1`;
  const server = await startFunctionsServer(port, {
    ...Deno.env.toObject(),
    HERALD_DB_URL: dbUrl.toString(),
    HERALD_DB_POOL_SIZE: "5",
    HERALD_FUNCTIONS_URL: functionsUrl,
    FUNCTIONS_ONLY: "health,twilio-status",
  }, `${ROOT}/.local/test-functions-serial.log`);
  const backends = async (running?: string) =>
    (await sql`select count(*)::int as n from pg_stat_activity
               where application_name = ${app} and (${running ?? null}::text is null or query like ${running ?? ""})`)[0]
      .n as number;
  try {
    // The pool grown: health checks at once, each on a connection of the pool.
    await Promise.all(Array.from({ length: 10 }, async () => {
      const res = await fetch(`${functionsUrl}/health`);
      assert.equal(res.status, 200, await res.text());
    }));
    const pooled = await backends();
    assert.ok(pooled >= 2, `the pool holds ${pooled} connection(s); the test needs it grown`);

    // Callbacks one after another: each its own batch.
    for (let i = 0; i < 3 * pooled; i++) {
      const res = await postTwilioWebhook("twilio-status", {
        MessageSid: messageSid(),
        AccountSid: Deno.env.get("TWILIO_ACCOUNT_SID")!,
        From: senderPhone(),
        To: phone(),
        MessageStatus: "delivered",
      }, { functionsUrl });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, { outcome: "unknown_sid" });
    }
    assert.equal(await backends("%apply_status_callbacks%"), 1, "every batch on the same one connection");
    assert.equal(await backends(), pooled + 1, "the pool's connections, and that one beside them");
  } finally {
    await server.stop();
    await sql.end();
  }
});
