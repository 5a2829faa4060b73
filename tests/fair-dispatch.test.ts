import assert from "node:assert/strict";
import { connect, dispatchOnce, phone, sandboxRecord, sendingWorkspace } from "./support.ts";

// 3,000 due messages in one workspace and one in another: the next dispatch call sends the other
// workspace's message, rather than leaving it behind the whole backlog.

Deno.test({
  name: "dispatch: one workspace's backlog does not hold back another workspace's due message",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    try {
      const busy = await sendingWorkspace(sql, { mps: 1000 });
      const quiet = await sendingWorkspace(sql, { mps: 1 });
      await sql`insert into contacts (workspace_id, phone)
                select ${busy.workspaceId}, '+1628555' || lpad(i::text, 4, '0') from generate_series(1, 3000) i`;
      await sql`insert into messages (workspace_id, contact_id, body, send_at, status, category)
                select workspace_id, id, 'backlog', now() - interval '1 hour', 'queued', 'transactional' from contacts where workspace_id = ${busy.workspaceId}`;
      const to = phone();
      const [c] = await sql`insert into contacts (workspace_id, phone) values (${quiet.workspaceId}, ${to}) returning id::text`;
      await sql`insert into messages (workspace_id, contact_id, body, send_at, status, category)
                values (${quiet.workspaceId}, ${c.id}, 'Your code is 4242', now() - interval '1 second', 'queued', 'transactional')`;
      await sql`analyze contacts, messages`;

      const summary = await dispatchOnce(200);
      assert.equal(summary.claimed, 200, JSON.stringify(summary));
      assert.equal((await sandboxRecord()).create_requests_by_to[to], 1, "the other workspace's message went out in this call");
      // The backlog is for later calls; leave nothing of it due for the tests after this one.
      await sql`update messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now()
                where workspace_id = ${busy.workspaceId} and status = 'queued'`;
    } finally {
      await sql.end();
    }
  },
});
