import assert from "node:assert/strict";
import { parse } from "csv-parse/sync";
import { asUser, callFunction, connect, createUser, createWorkspace, phone } from "@herald/tests/support.ts";

Deno.test("export-queue: RFC 4180 CSV a spreadsheet opens, formulas neutralised, only the caller's workspace", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const other = await createUser(sql, "other");
    const ws = await createWorkspace(sql, owner);
    const otherWs = await createWorkspace(sql, other);
    const [c] = await sql`insert into contacts (workspace_id, phone, first_name, last_name)
                          values (${ws}, ${phone()}, '=HYPERLINK("http://x")', 'O"Brien, Jr.') returning id::text`;
    const [o] = await sql`insert into contacts (workspace_id, phone) values (${otherWs}, ${phone()}) returning id::text`;
    for (const body of ["plain", "@SUM(A1)", "line one\r\nline two", "-2+3"]) {
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
    assert.equal(data.length, 4, "only the caller's workspace");
    const bodies = data.map((d) => d.body).sort();
    assert.deepEqual(bodies, ["'-2+3", "'@SUM(A1)", "line one\r\nline two", "plain"]);
    assert.equal(data[0].first_name, `'=HYPERLINK("http://x")`);
    assert.equal(data[0].last_name, 'O"Brien, Jr.');
    assert.match(data[0].phone, /^'\+1415/, "a leading + is neutralised too");
  } finally {
    await sql.end();
  }
});

Deno.test("export-queue: a header row even when empty; filters; bad input refused", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const ws = await createWorkspace(sql, owner);
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
    assert.equal(await refused("from=yesterday"), "from: not a valid datetime");
    assert.equal(await refused("nope=1"), "nope: unknown field");
    assert.equal((await callFunction("export-queue")).status, 401);
  } finally {
    await sql.end();
  }
});
