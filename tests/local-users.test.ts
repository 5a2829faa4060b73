import assert from "node:assert/strict";
import type postgres from "postgres";
import { ensureLocalUser, parseUserArgs } from "@herald/scripts/lib/users.ts";
import { userToken } from "@herald/scripts/lib/stack.ts";
import { asUser, callFunction, connect, createUser, createWorkspace, phone, stack } from "./support.ts";

// `npm run stack -- user <email> --workspace <id> --role <role>` (scripts/lib/users.ts): the user
// and membership it makes, and a token that acts with exactly that role: an agent's call works,
// an admin's call is refused (42501, 403 over HTTP) until the same command makes them admin.

/** Runs fn as the token's bearer, as PostgREST does: role authenticated and the token's claims. */
function withToken<T>(sql: postgres.Sql, token: string, fn: (tx: postgres.TransactionSql) => Promise<T>) {
  const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
  const claims = atob(payload.padEnd(payload.length + (4 - payload.length % 4) % 4, "="));
  return sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${claims}, true)`;
    return await fn(tx);
  }) as Promise<T>;
}

async function sqlstate(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  return "no error";
}

Deno.test("stack user: an agent's token works for an agent's calls and is refused an admin's, until the command makes it admin", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const workspaceId = await createWorkspace(sql, owner);
    const contactId = await asUser(sql, owner, async (tx) => {
      const [c] = await tx`insert into contacts (workspace_id, phone, first_name) values (${workspaceId}, ${phone()}, 'Ada') returning id::text`;
      return c.id as string;
    });
    const email = `Agent-${crypto.randomUUID().slice(0, 8)}@Example.com`;

    const agent = await ensureLocalUser(stack.dbUrl, parseUserArgs([email, "--workspace", workspaceId, "--role", "agent"]));
    assert.equal(agent.email, email.toLowerCase(), "kept in lower case, as GoTrue does");
    assert.equal(agent.created, true);
    assert.deepEqual(agent.membership, { workspaceId, workspaceName: "Test Co", role: "agent", previousRole: null });
    const token = await userToken(agent);

    // What an agent may do: read the queue, soft-delete and restore a contact.
    const exported = await callFunction("export-queue", { token });
    assert.equal(exported.status, 200, exported.text);
    const soft = await callFunction("delete-contact", { token, body: { contact_id: contactId } });
    assert.equal(soft.status, 200, soft.text);
    assert.equal((soft.body as { mode: string }).mode, "soft");
    await withToken(sql, token, (tx) => tx`select public.restore_contact(${contactId}::uuid)`);

    // What it may not: a hard delete, preparing the queue.
    const hard = await callFunction("delete-contact", { token, body: { contact_id: contactId, hard: true } });
    assert.equal(hard.status, 403, hard.text);
    assert.deepEqual(hard.body, {
      error: { code: "forbidden", message: "not a member of this workspace with role admin or higher" },
    });
    assert.equal(await sqlstate(withToken(sql, token, (tx) => tx`select public.delete_contact(${contactId}::uuid, true)`)), "42501");
    assert.equal(await sqlstate(withToken(sql, token, (tx) => tx`select public.prepare_queue(${workspaceId}::uuid)`)), "42501");
    const [still] = await sql`select deleted_at from contacts where id = ${contactId}`;
    assert.equal(still.deleted_at, null, "the refused calls changed nothing");

    // The same command again, as admin: same user, role changed, and the same token now may.
    const admin = await ensureLocalUser(stack.dbUrl, parseUserArgs([email, "--workspace", workspaceId, "--role", "admin"]));
    assert.equal(admin.id, agent.id);
    assert.equal(admin.created, false);
    assert.deepEqual(admin.membership, { workspaceId, workspaceName: "Test Co", role: "admin", previousRole: "agent" });
    const again = await ensureLocalUser(stack.dbUrl, parseUserArgs([email, "--workspace", workspaceId]));
    assert.equal(again.membership?.role, "admin", "without --role an existing membership keeps its role");
    const hardNow = await callFunction("delete-contact", { token, body: { contact_id: contactId, hard: true } });
    assert.equal(hardNow.status, 200, hardNow.text);
    assert.equal((hardNow.body as { mode: string }).mode, "hard");
  } finally {
    await sql.end();
  }
});

Deno.test("stack user: refused requests change nothing and say what to do", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "owner");
    const workspaceId = await createWorkspace(sql, owner);
    const email = `nobody-${crypto.randomUUID().slice(0, 8)}@example.com`;

    await assert.rejects(
      ensureLocalUser(stack.dbUrl, parseUserArgs([email, "--workspace", crypto.randomUUID()])),
      /there is no workspace [0-9a-f-]{36}/,
    );
    const [{ count }] = await sql`select count(*)::int from auth.users where email = ${email}`;
    assert.equal(count, 0, "no user left behind by a refused membership");

    await assert.rejects(
      ensureLocalUser(stack.dbUrl, parseUserArgs([owner.email, "--workspace", workspaceId, "--role", "agent"])),
      (err: { code?: string; message?: string }) => err.code === "23514" && /at least one owner/.test(err.message ?? ""),
    );
    const [m] = await sql`select role from workspace_members where workspace_id = ${workspaceId} and user_id = ${owner.id}`;
    assert.equal(m.role, "owner", "the last owner is still owner");
  } finally {
    await sql.end();
  }
});

Deno.test("stack user: arguments are checked before anything touches the database", () => {
  const ws = "00000000-0000-4000-8000-0000000000a1";
  assert.deepEqual(parseUserArgs(["A@B.co"]), { email: "a@b.co", workspaceId: undefined, role: undefined, dbUrl: undefined });
  assert.deepEqual(parseUserArgs(["a@b.co", `--workspace=${ws}`, "--role=owner", "--db-url", "postgresql://h/db"]), {
    email: "a@b.co",
    workspaceId: ws,
    role: "owner",
    dbUrl: "postgresql://h/db",
  });
  const refused: [string[], RegExp][] = [
    [[], /an email is required/],
    [["not-an-email"], /'not-an-email' is not an email address/],
    [["a@b.co", "c@d.co"], /one email only/],
    [["a@b.co", "--workspace"], /--workspace needs a value/],
    [["a@b.co", "--workspace", "demo"], /--workspace takes a workspace id \(a uuid\), not 'demo'/],
    [["a@b.co", "--workspace", ws, "--role", "boss"], /--role is one of owner, admin, agent, not 'boss'/],
    [["a@b.co", "--role", "admin"], /--role applies to a membership: give --workspace <id> too/],
    [["a@b.co", "--team", "x"], /unknown option --team/],
    [["a@b.co", "--db-url", "localhost:54322"], /--db-url takes a postgresql:\/\/ URL, not 'localhost:54322'/],
  ];
  for (const [args, message] of refused) assert.throws(() => parseUserArgs(args), message, args.join(" "));
});
