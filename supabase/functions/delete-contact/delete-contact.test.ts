import assert from "node:assert/strict";
import { asUser, callFunction, connect, createUser, createWorkspace, phone, sandboxClient } from "@herald/tests/support.ts";

Deno.test("delete-contact: hard delete erases the contact and its Twilio records", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const ws = await createWorkspace(sql, owner);
    const to = phone();
    const [{ id: contactId }] = await sql`
      insert into contacts (workspace_id, phone, first_name) values (${ws}, ${to}, 'Ada') returning id::text`;
    // A message that really went through the provider: its sid exists at the sandbox.
    const sent = await sandboxClient().messages.create({ to, from: "+15005550006", body: "hello Ada" });
    const [{ id: messageId }] = await sql`
      insert into messages (workspace_id, contact_id, body, status, lease_expires_at)
      values (${ws}, ${contactId}, 'hello Ada', 'sending', now() + interval '1 minute') returning id::text`;
    await sql`update messages set status = 'sent', lease_expires_at = null, provider_sid = ${sent.sid}, sent_at = now()
              where id = ${messageId}`;
    await sql`insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid, provider_status)
              values (${ws}, ${messageId}, 1, ${sent.sid}, 'queued')`;
    await sql`insert into messages (workspace_id, contact_id, body, send_at) values (${ws}, ${contactId}, 'later', now() + interval '1 day')`;

    const res = await callFunction("delete-contact", { token: owner.token, body: { contact_id: contactId, hard: true } });
    assert.equal(res.status, 200, res.text);
    const body = res.body as Record<string, Record<string, number>>;
    assert.deepEqual(body.provider_erasure, { requested: 1, erased: 1, failed: 0 });
    assert.equal(body.cancelled.messages, 1);
    assert.equal(body.deleted["public.messages"], 2);
    assert.equal(body.deleted["public.message_attempts"], 1);

    const [{ n }] = await sql`select count(*)::int as n from messages where contact_id = ${contactId}`;
    assert.equal(n, 0);
    await assert.rejects(sandboxClient().messages(sent.sid).fetch(), (e: { status?: number }) => e.status === 404);
    const [erasure] = await sql`select erased_at is not null as erased from herald.provider_erasures where provider_sid = ${sent.sid}`;
    assert.equal(erasure.erased, true);
  } finally {
    await sql.end();
  }
});

Deno.test("delete-contact: soft delete by an agent; hard delete needs an admin", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const agent = await createUser(sql, "agent");
    const ws = await createWorkspace(sql, owner);
    await sql`insert into workspace_members (workspace_id, user_id, role) values (${ws}, ${agent.id}, 'agent')`;
    const [{ id }] = await sql`insert into contacts (workspace_id, phone) values (${ws}, ${phone()}) returning id::text`;

    const hard = await callFunction("delete-contact", { token: agent.token, body: { contact_id: id, hard: true } });
    assert.equal(hard.status, 403, hard.text);
    const soft = await callFunction("delete-contact", { token: agent.token, body: { contact_id: id } });
    assert.equal(soft.status, 200, soft.text);
    assert.equal((soft.body as { mode: string }).mode, "soft");
    assert.equal("provider_erasure" in (soft.body as object), false);
    const again = await callFunction("delete-contact", { token: agent.token, body: { contact_id: id } });
    assert.equal(again.status, 409, again.text);
    const [row] = await asUser(sql, owner, (tx) => tx`select deleted_at is not null as deleted from contacts where id = ${id}`);
    assert.equal(row.deleted, true);
  } finally {
    await sql.end();
  }
});

Deno.test("delete-contact: refuses bad calls with clear errors and changes nothing", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const stranger = await createUser(sql, "stranger");
    const ws = await createWorkspace(sql, owner);
    const [{ id }] = await sql`insert into contacts (workspace_id, phone) values (${ws}, ${phone()}) returning id::text`;

    assert.equal((await callFunction("delete-contact", { body: { contact_id: id } })).status, 401);
    assert.equal((await callFunction("delete-contact", { token: "not.a.jwt", body: { contact_id: id } })).status, 401);
    // A 400 names each field that failed and what is wrong with it.
    const refused = async (body: unknown) => {
      const res = await callFunction("delete-contact", { token: owner.token, body });
      assert.equal(res.status, 400, res.text);
      const { error } = res.body as { error: { code: string; message: string } };
      assert.equal(error.code, "invalid_body");
      return error.message;
    };
    assert.equal(await refused({}), "contact_id: required");
    assert.equal(await refused(""), "body: required");
    assert.equal(await refused("{not json"), "body: not valid JSON");
    assert.equal(await refused([id]), "body: expected object, received array");
    assert.equal(await refused({ contact_id: "nope" }), "contact_id: not a valid uuid");
    assert.equal(
      await refused({ contact_id: 42, hard: "yes", extra: 1 }),
      "contact_id: expected string, received number; hard: expected boolean, received string; extra: unknown field",
    );
    const other = await callFunction("delete-contact", { token: stranger.token, body: { contact_id: id, hard: true } });
    assert.equal(other.status, 404, other.text);
    const missing = await callFunction("delete-contact", { token: owner.token, body: { contact_id: crypto.randomUUID() } });
    assert.equal(missing.status, 404);
    const get = await callFunction("delete-contact", { token: owner.token, method: "GET" });
    assert.equal(get.status, 405);

    const [row] = await sql`select deleted_at from contacts where id = ${id}`;
    assert.equal(row.deleted_at, null);
  } finally {
    await sql.end();
  }
});
