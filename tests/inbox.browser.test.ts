import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { asUser, connect, dispatchOnce, phone, senderPhone, sendingWorkspace, stack, waitFor } from "./support.ts";

// The sandbox's inbox page as a person uses it: Debian's Chromium, driven by Playwright, replies
// to a message Herald sent, and the contact's stop_on_reply enrollment stops.

const CHROMIUM = "/usr/bin/chromium";
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Debian's Chromium is not on a fresh machine: install it (as root, or through passwordless sudo). */
async function ensureChromium(): Promise<void> {
  if (await exists(CHROMIUM)) return;
  const prefix = Deno.uid() === 0 ? [] : ["sudo", "-n"];
  const apt = async (args: string[]) => {
    const [cmd, ...rest] = [...prefix, "apt-get", ...args];
    const out = await new Deno.Command(cmd, {
      args: rest,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { ok: out.success, log: new TextDecoder().decode(out.stderr).slice(-2000) };
  };
  const install = ["install", "-y", "--no-install-recommends", "chromium"];
  let r = await apt(install);
  if (!r.ok) {
    // A fresh machine may have no package lists yet.
    await apt(["update", "-qq"]);
    r = await apt(install);
  }
  if (!r.ok || !(await exists(CHROMIUM))) {
    throw new Error(`could not install Debian's chromium (run as root: apt-get install -y --no-install-recommends chromium):\n${r.log}`);
  }
}

Deno.test({
  name: "inbox (browser): a reply typed in the sandbox inbox stops the contact's stop_on_reply enrollment",
  // Playwright keeps its pipe to the browser and a few timers alive past close().
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await ensureChromium();
    const sql = connect();
    const profile = await Deno.makeTempDir({ prefix: "herald-chromium-" });
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
      const [c] = await sql`insert into contacts (workspace_id, phone, first_name) values (${workspaceId}, ${contactPhone}, 'Grace')
                            returning id::text`;
      const enrollmentId = await asUser(sql, owner, async (tx) => {
        const [r] = await tx`select public.enroll_contact(${seq.id}::uuid, ${c.id}::uuid)::text as id`;
        return r.id as string;
      });

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

      const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
      });
      try {
        const page = await context.newPage();
        await page.goto(`${stack.sandboxUrl}/`);
        const sid = step1.provider_sid as string;
        await page.getByTestId(`message-${sid}`).waitFor();
        assert.equal(await page.getByTestId(`message-to-${sid}`).textContent(), contactPhone);
        assert.equal(await page.getByTestId(`message-body-${sid}`).textContent(), step1.body);

        const reply = "Sounds good, call me on Thursday";
        await page.getByTestId(`reply-body-${sid}`).fill(reply);
        await Promise.all([
          page.waitForURL(`${stack.sandboxUrl}/`, { waitUntil: "load" }),
          page.getByTestId(`reply-send-${sid}`).click(),
        ]);
        // Back on the inbox: the reply is listed, and Herald's webhook took it.
        const replyItem = page.getByTestId(`contact-${contactPhone}`).locator("li.msg.in", { hasText: reply });
        await replyItem.waitFor();
        assert.match(await replyItem.locator(".status").textContent() ?? "", /webhook 200/);
        if (Deno.env.get("HERALD_TEST_SCREENSHOT")) await page.screenshot({ path: Deno.env.get("HERALD_TEST_SCREENSHOT")! });
      } finally {
        await context.close();
      }

      const stopped = await waitFor("the enrollment to stop", async () => {
        const [e] = await sql`select status, stopped_reason from sequence_enrollments where id = ${enrollmentId}`;
        return e.status === "cancelled" ? e : null;
      });
      assert.deepEqual({ ...stopped }, { status: "cancelled", stopped_reason: "replied" });
      const [after2] = await sql`select status, cancel_reason from messages where id = ${step2.id}`;
      assert.deepEqual({ ...after2 }, { status: "cancelled", cancel_reason: "replied" }, "step 2 will not go out");
      const [contact] = await sql`select opted_out_at, last_inbound_at is not null as replied from contacts where id = ${c.id}`;
      assert.deepEqual({ ...contact }, { opted_out_at: null, replied: true });
    } finally {
      await sql.end();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
