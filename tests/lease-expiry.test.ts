import assert from "node:assert/strict";
import { asUser, connect, dispatchOnce, phone, sandboxRecord, sendingWorkspace } from "./support.ts";

// After a lost lease the dispatcher asks Twilio whether the message went out before sending it.
// An earlier message with the same text to the same number (one Herald already holds the sid of)
// is not this one: mistaking it would leave this message unsent.

Deno.test("dispatch: the provider look-up after a lost lease ignores messages Herald already holds", async () => {
  const sql = connect();
  try {
    const { owner, workspaceId } = await sendingWorkspace(sql);
    const to = phone();
    const [c] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${to}) returning id::text`;
    const schedule = () => asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, 'Your appointment is tomorrow')`);

    await schedule();
    await sql`select herald.queue_due_messages()`;
    assert.equal((await dispatchOnce()).sent, 1);

    // The same text again; its dispatcher claims it and dies before calling Twilio.
    await schedule();
    await sql`select herald.queue_due_messages()`;
    const claimed = await sql`select message_id from herald.claim_messages(100) where workspace_id = ${workspaceId}`;
    assert.equal(claimed.length, 1);
    await sql`update messages set lease_expires_at = now() - interval '1 second' where id = ${claimed[0].message_id}`;
    await sql`select herald.reap_expired_leases()`;

    const summary = await dispatchOnce();
    assert.equal(summary.sent, 1, JSON.stringify(summary));
    assert.equal((await sandboxRecord()).create_requests_by_to[to], 2, "the second message reached Twilio too");
    const rows = await sql`select status, provider_sid from messages where contact_id = ${c.id} order by created_at`;
    assert.equal(new Set(rows.map((r) => r.provider_sid)).size, 2, "each message has its own sid");
  } finally {
    await sql.end();
  }
});
