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
    const schedule = () => asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, 'Your appointment is tomorrow', category => 'transactional')`);

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

Deno.test("reaper: a sender deleted under an expired lease stops nobody; the other workspace's message is reaped and sent", async () => {
  const sql = connect();
  try {
    const gone = await sendingWorkspace(sql);
    const other = await sendingWorkspace(sql);
    const [goneTo, otherTo] = [phone(), phone()];
    for (const [w, to] of [[gone, goneTo], [other, otherTo]] as const) {
      const [c] = await sql`insert into contacts (workspace_id, phone) values (${w.workspaceId}, ${to}) returning id::text`;
      await asUser(sql, w.owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, 'in flight', category => 'transactional')`);
    }
    await sql`select herald.queue_due_messages()`;
    // Both dispatchers claim and die; one workspace deletes its only sender meanwhile.
    const claimed = await sql`select message_id from herald.claim_messages(100)
                              where workspace_id in (${gone.workspaceId}, ${other.workspaceId})`;
    assert.equal(claimed.length, 2);
    await asUser(sql, gone.owner, (tx) => tx`delete from senders where id = ${gone.senderId}`);
    await sql`update messages set lease_expires_at = now() - interval '1 second'
              where workspace_id in (${gone.workspaceId}, ${other.workspaceId})`;

    await sql`select herald.reap_expired_leases()`; // raises nothing
    const rows = await sql`select workspace_id::text, status, cancel_reason from messages
                           where workspace_id in (${gone.workspaceId}, ${other.workspaceId})`;
    const by = Object.fromEntries(rows.map((r) => [r.workspace_id, `${r.status}${r.cancel_reason ? ":" + r.cancel_reason : ""}`]));
    assert.deepEqual(by, { [gone.workspaceId]: "cancelled:sender_deleted", [other.workspaceId]: "queued" });

    await dispatchOnce();
    const record = await sandboxRecord();
    assert.equal(record.create_requests_by_to[otherTo], 1, "the other workspace's message went out");
    assert.equal(record.create_requests_by_to[goneTo] ?? 0, 0);
  } finally {
    await sql.end();
  }
});
