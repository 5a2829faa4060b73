import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";
import { CHROMIUM, ensureDebianPackages } from "@herald/scripts/lib/debian.ts";
import { LOCAL_TWILIO } from "@herald/scripts/lib/config.ts";
import { startSandbox } from "@herald/sandbox/server.ts";
import { createTwilioClient } from "@herald/shared/twilio.ts";
import { asUser, connect, daytimeZone, dispatchOnce, phone, sandboxClient, senderPhone, sendingWorkspace, stack, waitFor } from "./support.ts";

// The sandbox's inbox page as a person uses it: Debian's Chromium, driven by Playwright. It shows
// what Herald sends as it happens (no reload), each row reading the way the message went, times in
// the viewer's zone; a reply typed there stops the contact's stop_on_reply enrollment; a STOP marks
// the number opted out; and a thousand messages still render quickly.

// As the machine notes say: without the background-networking flags Chromium keeps dialling
// Google's hosts, which this machine's closed network refuses.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Runs `fn` with a page in a fresh profile of Debian's Chromium (installed if missing, as `npm
 * test` does before the Deno tests), and closes and removes it all whatever happens.
 */
async function withPage(options: { timezoneId?: string; locale?: string }, fn: (page: Page) => Promise<void>) {
  await ensureDebianPackages(CHROMIUM);
  const profile = await Deno.makeTempDir({ prefix: "herald-chromium-" });
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM.files[0],
      headless: true,
      args: CHROMIUM_ARGS,
      ...options,
    });
    try {
      await fn(await context.newPage());
    } finally {
      await context.close();
    }
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/**
 * Waits until the element with this test id reads exactly `text` (the page updates itself). Long:
 * in the test stack the sandbox may still be posting the callbacks of an earlier test's thousands
 * of messages, and this message's next status waits for its previous callback.
 */
async function waitForText(page: Page, testid: string, text: string): Promise<void> {
  await waitFor(`${testid} to read "${text}"`, async () => {
    const now = await page.getByTestId(testid).textContent({ timeout: 100 }).catch(() => null);
    return now?.replace(/\s+/g, " ").trim() === text;
  }, 90_000);
}

const VIEWER_ZONE = "Asia/Kolkata";

Deno.test({
  name: "inbox (browser): live rows that read right, a reply that stops the enrollment, and a STOP that marks the number",
  // Playwright keeps its pipe to the browser and a few timers alive past close().
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    try {
      const { owner, workspaceId } = await sendingWorkspace(sql);
      // A number of its own, so the reply routes to this workspace alone.
      const number = senderPhone();
      await sql`update senders set phone_number = ${number} where workspace_id = ${workspaceId}`;
      const [seq] = await sql`insert into sequences (workspace_id, name, status, stop_on_reply)
                              values (${workspaceId}, 'Welcome', 'active', true) returning id::text`;
      await sql`insert into sequence_steps (workspace_id, sequence_id, position, delay, body) values
                (${workspaceId}, ${seq.id}, 1, '0', 'Hi {{first_name}}, shall we talk this week?'),
                (${workspaceId}, ${seq.id}, 2, '1 day', 'Just following up, {{first_name}}')`;
      const contactPhone = phone();
      // Step 1 is marketing, sent with the real clock: Grace lives where it is day now.
      const [c] = await sql`insert into contacts (workspace_id, phone, first_name, timezone)
                            values (${workspaceId}, ${contactPhone}, 'Grace', ${daytimeZone()}) returning id::text`;
      const enrollmentId = await asUser(sql, owner, async (tx) => {
        const [r] = await tx`select public.enroll_contact(${seq.id}::uuid, ${c.id}::uuid)::text as id`;
        return r.id as string;
      });

      await withPage({ timezoneId: VIEWER_ZONE, locale: "en-US" }, async (page) => {
        await page.goto(`${stack.sandboxUrl}/`);
        // Set on this document only: still there later means the page never reloaded.
        await page.evaluate(() => Object.assign(globalThis, { openedOnce: true }));

        // Step 1 goes out: the cron job's queueing, then the dispatcher over HTTP.
        const step1 = await waitFor("step 1 to be sent", async () => {
          await sql`select herald.queue_due_messages()`;
          await dispatchOnce();
          const [m] = await sql`select m.provider_sid, m.body from messages m join sequence_steps s on s.id = m.step_id
                                where m.enrollment_id = ${enrollmentId} and s.position = 1 and m.status in ('sent', 'delivered')`;
          return m;
        });
        assert.equal(step1.body, "Hi Grace, shall we talk this week?");
        const [step2] = await sql`select m.id::text, m.status from messages m join sequence_steps s on s.id = m.step_id
                                  where m.enrollment_id = ${enrollmentId} and s.position = 2`;
        assert.equal(step2.status, "scheduled", "sending step 1 scheduled step 2");

        const sid = step1.provider_sid as string;
        // It shows up, and its callbacks move it to delivered, with the page left as it was.
        await waitForText(page, `message-status-${sid}`, "delivered");
        assert.equal(await page.evaluate(() => "openedOnce" in globalThis), true, "updated in place, not reloaded");
        assert.equal(await page.getByTestId(`message-route-${sid}`).textContent(), `to ${contactPhone} from ${number}`);
        assert.equal(await page.getByTestId(`message-body-${sid}`).textContent(), step1.body);
        const iso = await page.getByTestId(`message-time-${sid}`).getAttribute("datetime");
        assert.equal(
          await page.getByTestId(`message-time-${sid}`).textContent(),
          new Date(iso!).toLocaleString("en-US", { timeZone: VIEWER_ZONE }),
          "shown in the viewer's time zone",
        );

        // A refresh while someone is typing keeps what they typed.
        await page.getByTestId(`reply-body-${sid}`).fill("Sounds good");
        const other = await sandboxClient().messages.create({ to: phone(), from: "+15005550006", body: "someone else" });
        await page.getByTestId(`message-${other.sid}`).waitFor();
        assert.equal(await page.getByTestId(`reply-body-${sid}`).inputValue(), "Sounds good");

        const reply = "Sounds good, call me on Thursday";
        await page.getByTestId(`reply-body-${sid}`).fill(reply);
        await Promise.all([
          page.waitForURL(`${stack.sandboxUrl}/`, { waitUntil: "load" }),
          page.getByTestId(`reply-send-${sid}`).click(),
        ]);
        // Back on the inbox: the reply is listed, reads from the contact to Herald's number, and
        // Herald's webhook took it.
        const replyItem = page.getByTestId(`contact-${contactPhone}`).locator("li.msg.in", { hasText: reply });
        await replyItem.waitFor();
        assert.match(await replyItem.locator(".status").textContent() ?? "", /webhook 200/);
        assert.equal(await replyItem.locator(".route").textContent(), `from ${contactPhone} to ${number}`);

        const stopped = await waitFor("the enrollment to stop", async () => {
          const [e] = await sql`select status, stopped_reason from sequence_enrollments where id = ${enrollmentId}`;
          return e.status === "cancelled" ? e : null;
        });
        assert.deepEqual({ ...stopped }, { status: "cancelled", stopped_reason: "replied" });
        const [after2] = await sql`select status, cancel_reason from messages where id = ${step2.id}`;
        assert.deepEqual({ ...after2 }, { status: "cancelled", cancel_reason: "replied" }, "step 2 will not go out");
        const [contact] = await sql`select opted_out_at, last_inbound_at is not null as replied from contacts where id = ${c.id}`;
        assert.deepEqual({ ...contact }, { opted_out_at: null, replied: true });

        // STOP from the handset (not through the page): the page marks the number by itself.
        await page.evaluate(() => Object.assign(globalThis, { openedOnce: true }));
        assert.equal(await page.getByTestId(`opted-out-${contactPhone}`).count(), 0);
        const stop = await fetch(`${stack.sandboxUrl}/_sandbox/inbound`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ from: contactPhone, to: number, body: "STOP" }),
        });
        assert.equal((await stop.json()).webhook_status, 200);
        await page.getByTestId(`opted-out-${contactPhone}`).waitFor({ timeout: 15_000 });
        assert.equal(await page.evaluate(() => "openedOnce" in globalThis), true, "marked in place, not reloaded");
        const [optedOut] = await sql`select opted_out_at is not null as opted_out from contacts where id = ${c.id}`;
        assert.equal(optedOut.opted_out, true, "and Herald opted the contact out");
        if (Deno.env.get("HERALD_TEST_SCREENSHOT")) await page.screenshot({ path: Deno.env.get("HERALD_TEST_SCREENSHOT")! });
      });
    } finally {
      await sql.end();
    }
  },
});

Deno.test({
  name: "inbox (browser): with 1,000 messages the page lists the newest 100 quickly, lists more on demand, and still updates live",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sandbox = await startSandbox({ port: 0, accountSid: LOCAL_TWILIO.accountSid, authToken: LOCAL_TWILIO.authToken, callbackDelayMs: 1 });
    try {
      const client = createTwilioClient({ ...LOCAL_TWILIO, apiBase: sandbox.url });
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) =>
          client.messages.create({ to: phone(), from: "+15005550006", body: `Message ${batch * 100 + i}: your appointment is tomorrow at 10` })));
      }
      await withPage({}, async (page) => {
        const started = performance.now();
        await page.goto(`${sandbox.url}/`, { waitUntil: "load" });
        const loadMs = performance.now() - started;
        assert.equal(await page.locator("li.msg").count(), 100);
        assert.match(await page.getByTestId("inbox-summary").textContent() ?? "", /^1,000 messages · newest 100 listed/);
        await Promise.all([page.waitForURL(/limit=200/), page.getByTestId("show-more").click()]);
        assert.equal(await page.locator("li.msg").count(), 200);

        const everything = performance.now();
        await page.goto(`${sandbox.url}/?limit=1000`, { waitUntil: "load" });
        const allMs = performance.now() - everything;
        assert.equal(await page.locator("li.msg").count(), 1000);
        console.log(`inbox with 1,000 messages: newest 100 loaded in ${loadMs.toFixed(0)} ms, all 1,000 in ${allMs.toFixed(0)} ms`);
        assert.ok(loadMs < 2_000, `the first page loaded in ${loadMs.toFixed(0)} ms`);

        await page.goto(`${sandbox.url}/`, { waitUntil: "load" });
        const late = await client.messages.create({ to: phone(), from: "+15005550006", body: "one more" });
        await page.getByTestId(`message-${late.sid}`).waitFor({ timeout: 15_000 });
        assert.equal(await page.locator("li.msg").count(), 100, "still the newest 100");
      });
    } finally {
      await sandbox.close();
    }
  },
});
