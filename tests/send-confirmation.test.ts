import assert from "node:assert/strict";
import {
  asUser,
  callFunction,
  connect,
  dispatchOnce,
  messageSid,
  phone,
  postTwilioWebhook,
  sandboxRecord,
  sendingWorkspace,
  waitFor,
} from "./support.ts";

// Over HTTP on the served stack, with the sandbox as witness: eight messages on a 1-mps sender
// are claimed at once and go out one a second. While the dispatcher waits for their slots, one
// contact texts STOP, one is soft-deleted and one is hard-deleted through delete-contact: none
// of the three gets anything; the other five do.

Deno.test({
  name: "dispatch: STOP, a soft delete and a hard delete during the slot wait reach nobody",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    try {
      const { owner, workspaceId, senderNumber } = await sendingWorkspace(sql, { mps: 1 });
      const phones = Array.from({ length: 8 }, phone);
      const contacts: string[] = [];
      for (const p of phones) {
        const [c] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${p}) returning id::text`;
        contacts.push(c.id);
        // One at a time, so send_at (and with it the slot order) follows this list.
        await asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, ${"slot test " + p}, category => 'transactional')`);
      }
      await sql`select herald.queue_due_messages()`;

      const dispatching = dispatchOnce(20);
      await waitFor("the eight to be claimed", async () => {
        // (the first slot is now: it may be sent already)
        const [{ n }] = await sql`select count(*)::int as n from message_attempts where workspace_id = ${workspaceId}`;
        return n === 8;
      });
      // The last three slots are 5 to 7 seconds away.
      const [stopped, softDeleted, hardDeleted] = [5, 6, 7];
      const stop = await postTwilioWebhook("twilio-inbound", {
        MessageSid: messageSid(),
        From: phones[stopped],
        To: senderNumber,
        Body: "STOP",
      });
      assert.equal(stop.status, 200, stop.text);
      await asUser(sql, owner, (tx) => tx`select public.delete_contact(${contacts[softDeleted]}::uuid)`);
      const hard = await callFunction("delete-contact", { token: owner.token, body: { contact_id: contacts[hardDeleted], hard: true } });
      assert.equal(hard.status, 200, hard.text);

      const summary = await dispatching;
      assert.equal(summary.claimed, 8);
      assert.equal(summary.sent, 5, JSON.stringify(summary));

      const record = await sandboxRecord();
      const sentTo = phones.map((p) => record.create_requests_by_to[p] ?? 0);
      assert.deepEqual(sentTo, [1, 1, 1, 1, 1, 0, 0, 0], "the sandbox received the first five and none of the last three");

      const rows = await sql`select contact_id::text, status, cancel_reason from messages where workspace_id = ${workspaceId}`;
      const byContact = new Map(rows.map((r) => [r.contact_id, `${r.status}${r.cancel_reason ? ":" + r.cancel_reason : ""}`]));
      assert.equal(byContact.get(contacts[stopped]), "cancelled:contact_opted_out");
      assert.equal(byContact.get(contacts[softDeleted]), "cancelled:contact_deleted");
      assert.equal(byContact.has(contacts[hardDeleted]), false, "the hard-deleted contact's message is gone");
      assert.equal(rows.filter((r) => r.status === "sent" || r.status === "delivered").length, 5);
    } finally {
      await sql.end();
    }
  },
});
