import assert from "node:assert/strict";
import { parse } from "csv-parse/sync";
import { addSender, asUser, callFunction, connect, createUser, createWorkspace, phone } from "@herald/tests/support.ts";

/** A workspace that can schedule SMS: schedule_message refuses a channel with no sender. */
async function smsWorkspace(...args: Parameters<typeof createWorkspace>) {
  const id = await createWorkspace(...args);
  await addSender(args[0], id);
  return id;
}

Deno.test("export-queue: RFC 4180 CSV a spreadsheet opens, formulas neutralised, only the caller's workspace", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const other = await createUser(sql, "other");
    const ws = await smsWorkspace(sql, owner);
    const otherWs = await smsWorkspace(sql, other);
    const [c] = await sql`insert into contacts (workspace_id, phone, first_name, last_name)
                          values (${ws}, ${phone()}, '=HYPERLINK("http://x")', 'O"Brien, Jr.') returning id::text`;
    const [o] = await sql`insert into contacts (workspace_id, phone) values (${otherWs}, ${phone()}) returning id::text`;
    for (const body of ["plain", "@SUM(A1)", "line one\r\nline two", "-2+3", "+1 415", "-42"]) {
      await asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, ${body})`);
    }
    await asUser(sql, other, (tx) => tx`select public.schedule_message(${o.id}::uuid, 'not yours')`);

    const res = await fetch(`${Deno.env.get("HERALD_TEST_FUNCTIONS_URL")}/export-queue`, {
      headers: { authorization: `Bearer ${owner.token}` },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /^text\/csv/);
    const text = await res.text();
    assert.ok(text.includes("\r\n"), "records end with CRLF");
    const rows: string[][] = parse(text, { relax_column_count: false });
    assert.equal(rows[0][0], "message_id");
    const header = rows[0];
    const data = rows.slice(1).map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
    assert.equal(data.length, 6, "only the caller's workspace");
    const bodies = data.map((d) => d.body).sort();
    assert.deepEqual(bodies, ["'+1 415", "'-2+3", "'@SUM(A1)", "-42", "line one\r\nline two", "plain"],
      "formulas neutralised; a number alone is a number, not a formula");
    assert.equal(data[0].first_name, `'=HYPERLINK("http://x")`);
    assert.equal(data[0].last_name, 'O"Brien, Jr.');
  } finally {
    await sql.end();
  }
});

Deno.test("export-queue: a header row even when empty; filters; bad input refused", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const ws = await smsWorkspace(sql, owner);
    const empty = await callFunction("export-queue", { token: owner.token });
    assert.equal(empty.status, 200);
    assert.equal(empty.text.split("\r\n").filter(Boolean).length, 1);
    assert.ok(empty.text.startsWith("message_id,workspace_id,status"));

    const [c] = await sql`insert into contacts (workspace_id, phone) values (${ws}, ${phone()}) returning id::text`;
    await asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, 'tomorrow', now() + interval '1 day')`);
    const m = await asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, 'cancel me')::text as id`);
    await asUser(sql, owner, (tx) => tx`select public.cancel_message(${m[0].id}::uuid)`);

    const cancelled = await callFunction("export-queue?status=cancelled", { token: owner.token });
    assert.equal(parse(cancelled.text).length, 2);
    const to = encodeURIComponent(new Date(Date.now() + 3600_000).toISOString());
    const early = await callFunction(`export-queue?status=scheduled&to=${to}`, { token: owner.token });
    assert.equal(parse(early.text).length, 1, "the message tomorrow is after `to`");

    const refused = async (query: string) => {
      const res = await callFunction(`export-queue?${query}`, { token: owner.token });
      assert.equal(res.status, 400, res.text);
      const { error } = res.body as { error: { code: string; message: string } };
      assert.equal(error.code, "invalid_query");
      return error.message;
    };
    assert.match(await refused("status=bogus"), /^status: unknown status bogus; use scheduled, queued, /);
    assert.match(await refused("from=yesterday"), /^from: expected a date \(2026-12-01\) or a date-time/);
    assert.match(await refused("to=2026-02-30"), /^to: expected a date/, "a day the calendar does not have");
    assert.match(await refused("from=2026-12-01T25:00"), /^from: expected a date/);
    assert.equal(await refused("from=2026-12-02&to=2026-12-01"), "from is after to");
    assert.equal(await refused("nope=1"), "nope: unknown field");
    assert.equal((await callFunction("export-queue")).status, 401);
  } finally {
    await sql.end();
  }
});

Deno.test("export-queue: an E.164 phone is exported as itself, so the file re-imports", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const ws = await smsWorkspace(sql, owner);
    const number = phone();
    const [c] = await sql`insert into contacts (workspace_id, phone, first_name) values (${ws}, ${number}, 'Ada') returning id::text`;
    await asUser(sql, owner, (tx) => tx`select public.schedule_message(${c.id}::uuid, 'hello', now() + interval '1 day')`);

    const res = await callFunction("export-queue", { token: owner.token });
    const [header, row] = parse(res.text) as string[][];
    const exported = row[header.indexOf("phone")];
    assert.equal(exported, number, "no leading quote on a phone number");

    // Read back into Herald, as an import of the file would: the number passes contacts_phone_e164.
    const other = await smsWorkspace(sql, owner, "Imported");
    const [imported] = await asUser(sql, owner, (tx) =>
      tx`insert into contacts (workspace_id, phone, first_name) values (${other}, ${exported}, ${row[header.indexOf("first_name")]})
         returning phone`);
    assert.equal(imported.phone, number);
  } finally {
    await sql.end();
  }
});

Deno.test("export-queue: from/to take a local day, a local time or an instant, and bound send_at", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const ny = await smsWorkspace(sql, owner, "New York Co", "America/New_York");
    const tokyo = await smsWorkspace(sql, owner, "Tokyo Co", "Asia/Tokyo");
    const [a] = await sql`insert into contacts (workspace_id, phone) values (${ny}, ${phone()}) returning id::text`;
    const [b] = await sql`insert into contacts (workspace_id, phone) values (${tokyo}, ${phone()}) returning id::text`;
    // A day a month ahead (pg_cron leaves future messages alone); 09:00 in New York on it, as an instant.
    const [{ day, nextDay, dayBefore, morningUtc }] = await sql`
      select to_char(d, 'YYYY-MM-DD') as day, to_char(d + 1, 'YYYY-MM-DD') as "nextDay",
             to_char(d - 1, 'YYYY-MM-DD') as "dayBefore",
             to_char((d + time '09:00') at time zone 'America/New_York' at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') as "morningUtc"
      from (select current_date + 30 as d) x`;
    const schedule = (contact: string, body: string, sendAt: string) =>
      asUser(sql, owner, (tx) => tx`select public.schedule_message(${contact}::uuid, ${body}, ${sendAt}::text::timestamptz)`);
    await schedule(a.id, "ny day before 23:59", `${dayBefore} 23:59 America/New_York`);
    await schedule(a.id, "ny 00:00", `${day} 00:00 America/New_York`);
    await schedule(a.id, "ny 09:00", `${day} 09:00 America/New_York`);
    await schedule(a.id, "ny 23:30", `${day} 23:30 America/New_York`); // already the next day in UTC
    await schedule(a.id, "ny next day 00:00", `${nextDay} 00:00 America/New_York`);
    await schedule(b.id, "tokyo 00:30", `${day} 00:30 Asia/Tokyo`); // still the day before in UTC and in New York

    const bodies = async (query: string) => {
      const res = await callFunction(`export-queue?${query}`, { token: owner.token });
      assert.equal(res.status, 200, res.text);
      const [header, ...rows] = parse(res.text) as string[][];
      return rows.map((r) => r[header.indexOf("body")]);
    };
    // Rows come one workspace after another (in workspace id order), each workspace's in send_at order.
    const both = await bodies(`from=${day}&to=${day}`);
    const nyFirst = ny < tokyo;
    assert.deepEqual(both, nyFirst ? ["ny 00:00", "ny 09:00", "ny 23:30", "tokyo 00:30"] : ["tokyo 00:30", "ny 00:00", "ny 09:00", "ny 23:30"],
      "a date is each workspace's own local day, from its first instant to its last");
    assert.deepEqual(await bodies(`from=${day}T09:00&workspace_id=${ny}`), ["ny 09:00", "ny 23:30", "ny next day 00:00"],
      "a date-time without offset is a wall-clock time in the workspace's zone");
    assert.deepEqual(await bodies(`from=${morningUtc}Z&to=${morningUtc}.000%2B00:00`), ["ny 09:00"],
      "a date-time with Z or an offset is an instant; both bounds are inclusive");
    assert.deepEqual(await bodies(`from=${day}T11:00:00%2B02:00&to=${day}T23:00:00%2B02:00`), ["ny 09:00"],
      "any offset (+02:00 here)");
    assert.deepEqual(await bodies(`to=${dayBefore}&workspace_id=${ny}`), ["ny day before 23:59"],
      "to a date includes that whole day and nothing after");
  } finally {
    await sql.end();
  }
});
