import assert from "node:assert/strict";
import { connect, createUser, createWorkspace, stack } from "./support.ts";

// export-queue streams to clients that may read slowly. It must not hold a database transaction
// (and its snapshot and locks) open for as long as a client takes to read, and a failure after
// the 200 has gone out must reach the client as a failure, not as a CSV that simply stops.

const ROWS = 10_000;
const EXPORT_QUERY = "%join public.contacts c on c.workspace_id = m.workspace_id%";

async function exportWorkspace() {
  const sql = connect();
  const owner = await createUser(sql, "exporter");
  const ws = await createWorkspace(sql, owner);
  await sql`insert into contacts (workspace_id, phone, first_name)
            select ${ws}, '+1646' || lpad(i::text, 7, '0'), 'Reader ' || i from generate_series(1, ${ROWS}) i`;
  await sql`insert into messages (workspace_id, contact_id, body, send_at)
            -- about 15 MB of CSV: more than the sockets between the client and the database buffer
            select workspace_id, id, repeat('A message long enough to fill the socket buffers. ', 28) || first_name,
                   now() + interval '1 day' from contacts where workspace_id = ${ws}`;
  // What autovacuum does within a minute of a bulk load; without it the plan is the test's problem.
  await sql`analyze contacts, messages`;
  const res = await fetch(`${stack.functionsUrl}/export-queue?workspace_id=${ws}`, { headers: { authorization: `Bearer ${owner.token}` } });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  assert.ok(!first.done && first.value.byteLength > 0);
  return { sql, reader, firstLines: first.value.filter((b) => b === 10).length };
}

/** Reads the rest; the error if reading failed, else the bytes and line ends read. */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<{ error: unknown; bytes: number; lines: number }> {
  let bytes = 0;
  let lines = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { error: null, bytes, lines };
      bytes += value.byteLength;
      for (const b of value) if (b === 10) lines++;
    }
  } catch (error) {
    return { error, bytes, lines };
  }
}

Deno.test({
  name: "export-queue: no transaction stays open while a slow client reads",
  sanitizeResources: false,
  fn: async () => {
    const { sql, reader, firstLines } = await exportWorkspace();
    try {
      await new Promise((r) => setTimeout(r, 5000)); // the client pauses
      // A page takes well under a second; a transaction open for most of the pause waits on the client.
      const open = await sql`select pid, state, now() - xact_start as open_for from pg_stat_activity
                             where xact_start is not null and query ilike ${EXPORT_QUERY} and pid <> pg_backend_pid()
                               and xact_start < now() - interval '4 seconds'`;
      assert.deepEqual(open.map((r) => ({ ...r })), [], "the export held a transaction open while its client paused");
      const rest = await drain(reader);
      assert.equal(rest.error, null);
      assert.equal(firstLines + rest.lines, ROWS + 1, "every row once, after the header");
    } finally {
      await reader.cancel().catch(() => {});
      await sql.end();
    }
  },
});

Deno.test({
  name: "export-queue: a failure mid-stream reaches the client as a failed read, not a short CSV",
  sanitizeResources: false,
  fn: async () => {
    const { sql, reader } = await exportWorkspace();
    try {
      // While the client pauses, something holds an exclusive lock on contacts (a migration, say)
      // for longer than the export will wait for it.
      const holding = sql.begin(async (tx) => {
        await tx`set local lock_timeout = '3s'`;
        await tx`lock table public.contacts in access exclusive mode`;
        const result = await drain(reader);
        return result;
      });
      const result = await holding.catch((err) => ({ error: `could not lock contacts: ${err.message}`, bytes: -1, lines: 0 }));
      assert.notEqual(result.bytes, -1, String(result.error));
      assert.ok(result.error, `the client read ${result.bytes} more bytes and a clean end of the CSV`);
    } finally {
      await reader.cancel().catch(() => {});
      await sql.end();
    }
  },
});
