// Two sessions calling prepare_queue at once must queue each lead once. Two
// separate connections, as the same admin, call prepare_queue for the same workspace at the same
// moment (a barrier releases both), with room for every lead; each holds its transaction open a
// little after the call so the other really runs while it is in flight. A third connection
// watches pg_stat_activity to show that one call did wait for the other.

import assert from "node:assert/strict";
import type postgres from "postgres";
import { asUser, connect, createUser, createWorkspace, phone, queueSetup, type TestUser } from "./support.ts";

const LEADS_PER_ROUND = 40;

async function addLeads(sql: postgres.Sql, workspaceId: string, n: number): Promise<string[]> {
  const rows = await sql`
    insert into contacts (workspace_id, phone, first_name)
    select ${workspaceId}, p, 'Lead ' || i from unnest(${Array.from({ length: n }, phone)}::text[]) with ordinality t(p, i)
    returning id::text`;
  return rows.map((r) => r.id as string);
}

/** Both sessions call prepare_queue at once; returns what each call returned, and whether one waited. */
async function race(sessions: postgres.Sql[], user: TestUser, workspaceId: string, dates: string[]) {
  const watcher = connect(1);
  let arrived = 0;
  let release!: () => void;
  const barrier = new Promise<void>((resolve) => (release = resolve));
  let running = true;
  let sawWait = false;
  const watching = (async () => {
    while (running) {
      const [{ n }] = await watcher`
        select count(*)::int as n from pg_stat_activity
        where wait_event_type = 'Lock' and query like '%prepare_queue%' and pid <> pg_backend_pid()`;
      if (n > 0) sawWait = true;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    const counts = await Promise.all(sessions.map((session, i) =>
      asUser(session, user, async (tx) => {
        if (++arrived === sessions.length) release();
        await barrier;
        const [{ n }] = await tx`select public.prepare_queue(${workspaceId}::uuid, ${dates[i]}::date) as n`;
        await tx`select pg_sleep(0.3)`;
        return n as number;
      })
    ));
    return { counts, sawWait };
  } finally {
    running = false;
    await watching;
    await watcher.end();
  }
}

Deno.test("prepare_queue: two sessions calling it at once queue each lead once", async () => {
  const sql = connect();
  const sessions = [connect(1), connect(1)];
  try {
    const admin = await createUser(sql, "admin");
    const workspaceId = await createWorkspace(sql, admin, "Race Co", "UTC");
    const { sequenceId, stepIds } = await queueSetup(sql, workspaceId, {
      capacity: 1000,
      steps: [{ delay: "0", body: "Hi {{first_name}}" }, { delay: "1 day", body: "Again, {{first_name}}" }],
    });
    const [{ d1, d2 }] = await sql`
      select ((now() at time zone 'UTC')::date + 1)::text as d1, ((now() at time zone 'UTC')::date + 2)::text as d2`;

    const all: string[] = [];
    let waits = 0;
    // Same day twice, then two different days at once: either way no lead may be queued twice.
    for (const dates of [[d1, d1], [d1, d1], [d1, d2]]) {
      all.push(...await addLeads(sql, workspaceId, LEADS_PER_ROUND));
      const { counts, sawWait } = await race(sessions, admin, workspaceId, dates);
      assert.equal(counts[0] + counts[1], LEADS_PER_ROUND, `the two calls together queued every new lead once: ${counts}`);
      if (sawWait) waits++;
    }
    assert.ok(waits > 0, "in at least one round one call waited on the other's lock: the calls did overlap");

    const perLead = await sql`
      select c.id::text,
             (select count(*)::int from queue_entries q where q.workspace_id = c.workspace_id and q.contact_id = c.id) as entries,
             (select count(*)::int from sequence_enrollments e
              where e.workspace_id = c.workspace_id and e.contact_id = c.id and e.sequence_id = ${sequenceId}) as enrollments,
             (select count(*)::int from messages m
              where m.workspace_id = c.workspace_id and m.contact_id = c.id and m.step_id = ${stepIds[0]}) as first_steps,
             (select count(*)::int from messages m where m.workspace_id = c.workspace_id and m.contact_id = c.id) as messages,
             c.lead_status
      from contacts c where c.workspace_id = ${workspaceId}`;
    assert.equal(perLead.length, all.length);
    for (const lead of perLead) {
      assert.deepEqual(
        { entries: lead.entries, enrollments: lead.enrollments, first_steps: lead.first_steps, messages: lead.messages, status: lead.lead_status },
        { entries: 1, enrollments: 1, first_steps: 1, messages: 1, status: "queued" },
        `lead ${lead.id}`,
      );
    }
    const [{ activities }] = await sql`
      select count(*)::int as activities from contact_activities where workspace_id = ${workspaceId} and kind = 'queued'`;
    assert.equal(activities, all.length, "one queued activity per lead");
  } finally {
    await Promise.all([sql.end(), ...sessions.map((s) => s.end())]);
  }
});
