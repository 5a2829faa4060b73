/**
 * record.ts: with a record file, a restarted sandbox still has what it accepted (Twilio's memory
 * outlives a crash, and Herald's look-ups after one depend on it), carries on the lifecycles that
 * were under way, and a reset forgets it all.
 */
import assert from "node:assert/strict";
import { createTwilioClient } from "@herald/shared/twilio.ts";
import { type Sandbox, startSandbox } from "./server.ts";
import { ACCOUNT_SID, AUTH_TOKEN, FROM, OK_TO, rejectsWith, statusesFor, withReceiver } from "./testing.ts";

async function withRecordFile(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "herald-sandbox-record-" });
  try {
    await fn(`${dir}/sandbox/messages.jsonl`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sandboxOn(recordPath: string, opts: { callbackDelayMs?: number } = {}) {
  return startSandbox({ port: 0, accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, recordPath, ...opts });
}

async function allDelivered(sandbox: Sandbox): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (sandbox.messages().some((m) => m.status !== "delivered")) {
    assert.ok(Date.now() < deadline, "every message delivered");
    await new Promise((r) => setTimeout(r, 10));
  }
}

const lineCount = async (path: string) => (await Deno.readTextFile(path)).split("\n").filter(Boolean).length;

Deno.test("a restarted sandbox still has its messages, deletions, redactions and create requests", async () => {
  await withRecordFile(async (path) => {
    const first = await sandboxOn(path, { callbackDelayMs: 1 });
    const client = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: first.url });
    const kept = await client.messages.create({ to: OK_TO, from: FROM, body: "kept" });
    const redacted = await client.messages.create({ to: OK_TO, from: FROM, body: "secret" });
    const gone = await client.messages.create({ to: OK_TO, from: FROM, body: "deleted" });
    await rejectsWith(client.messages.create({ to: "+15005550004", from: FROM, body: "refused" }), 400, 21610);
    await allDelivered(first);
    await client.messages(redacted.sid).update({ body: "" });
    await client.messages(gone.sid).remove();
    const before = first.messages();
    await first.close();

    const second = await sandboxOn(path);
    try {
      assert.deepEqual(second.messages(), before, "the same messages, in the same order, with their callbacks");
      const again = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: second.url });
      assert.equal((await again.messages(kept.sid).fetch()).body, "kept");
      assert.equal((await again.messages(redacted.sid).fetch()).body, "");
      await rejectsWith(again.messages(gone.sid).fetch(), 404, 20404);
      const listed = await again.messages.list({ to: OK_TO });
      assert.deepEqual(listed.map((m) => m.sid), [redacted.sid, kept.sid], "newest first, as before the restart");
      const snapshot = await (await fetch(`${second.url}/_sandbox/messages`)).json();
      assert.deepEqual(snapshot.create_requests_by_to, { [OK_TO]: 3, "+15005550004": 1 });
      assert.deepEqual(snapshot.create_requests.map((r: { error_code: number | null }) => r.error_code), [null, null, null, 21610]);
    } finally {
      await second.close();
    }
  });
});

Deno.test("a message on its way when the sandbox stopped goes on to delivered after the restart, callbacks and all", async () => {
  await withReceiver(async (receiver) => {
    await withRecordFile(async (path) => {
      // Slow enough that the first sandbox stops before the message is even queued.
      const first = await sandboxOn(path, { callbackDelayMs: 5_000 });
      const client = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: first.url });
      const m = await client.messages.create({
        to: OK_TO,
        from: FROM,
        body: "in flight",
        statusCallback: `${receiver.base}/status`,
      });
      await first.close();
      assert.deepEqual(statusesFor(receiver.received, m.sid), []);

      const second = await sandboxOn(path, { callbackDelayMs: 1 });
      try {
        await receiver.waitFor((r) => statusesFor(r, m.sid).length === 3);
        assert.deepEqual(statusesFor(receiver.received, m.sid), ["queued", "sent", "delivered"]);
        // The receiver has the last callback a moment before the sandbox has its answer.
        const deadline = Date.now() + 3_000;
        while (second.messages()[0].callbacks.some((c) => !c.delivered) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 10));
        }
        const [stored] = second.messages();
        assert.equal(stored.status, "delivered");
        assert.deepEqual(stored.callbacks.map((c) => [c.status, c.delivered]), [["queued", true], ["sent", true], ["delivered", true]]);
      } finally {
        await second.close();
      }
    });
  });
});

Deno.test("the record is compacted on start, a torn last line is skipped, and a reset empties it", async () => {
  await withRecordFile(async (path) => {
    const first = await sandboxOn(path, { callbackDelayMs: 1 });
    const client = createTwilioClient({ accountSid: ACCOUNT_SID, authToken: AUTH_TOKEN, apiBase: first.url });
    const sids: string[] = [];
    for (let i = 0; i < 40; i++) sids.push((await client.messages.create({ to: OK_TO, from: FROM, body: `m${i}` })).sid);
    await allDelivered(first);
    await first.close();
    // created + queued + sent + delivered per message, plus one request line each.
    assert.equal(await lineCount(path), 40 * 5);
    await Deno.writeTextFile(path, '{"message":{"resource":{"sid":"SMtorn', { append: true });

    const second = await sandboxOn(path);
    try {
      assert.equal(second.messages().length, 40);
      assert.deepEqual(second.messages().map((m) => m.sid), sids);
      assert.equal(await lineCount(path), 40 * 2, "one line per message and per request");
      const reset = await fetch(`${second.url}/_sandbox/reset`, { method: "POST" });
      await reset.body?.cancel();
      assert.equal(await lineCount(path), 0);
    } finally {
      await second.close();
    }
    const third = await sandboxOn(path);
    assert.deepEqual(third.messages(), [], "a reset sandbox restarts empty");
    await third.close();
  });
});
