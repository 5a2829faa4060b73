// Sending as Twilio works, over HTTP on the served stack with the sandbox as witness: WhatsApp's
// 24-hour window and content templates, and send-by deadlines as Twilio's ValidityPeriod. Every
// message is transactional, so the legal hours for marketing do not depend on when this runs.

import assert from "node:assert/strict";
import {
  asUser,
  connect,
  dispatchOnce,
  phone,
  sandboxRecord,
  sendingWorkspace,
  senderPhone,
  stack,
  waitFor,
} from "./support.ts";

const CONTENT_SID = "HX0123456789abcdef0123456789abcdef";

async function requestsTo(to: string) {
  return (await sandboxRecord()).create_requests.filter((r) => r.to === to);
}

Deno.test({
  name: "WhatsApp: free-form inside the 24-hour window, the template outside it, nothing without one",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    try {
      const { owner, workspaceId } = await sendingWorkspace(sql);
      const waSender = senderPhone();
      await sql`insert into senders (workspace_id, channel, phone_number, status, mps, is_default)
                values (${workspaceId}, 'whatsapp', ${waSender}, 'connected', 100, true)`;
      const [writer, silent] = [phone(), phone()];
      const [{ id: writerId }] = await sql`
        insert into contacts (workspace_id, phone, first_name) values (${workspaceId}, ${writer}, 'Wren') returning id::text`;
      const [{ id: silentId }] = await sql`
        insert into contacts (workspace_id, phone, first_name) values (${workspaceId}, ${silent}, 'Ada') returning id::text`;
      await sql`insert into contact_variables (workspace_id, contact_id, key, value) values (${workspaceId}, ${silentId}, 'order', 'A-17')`;
      const [{ id: templateId }] = await sql`
        insert into message_templates (workspace_id, name, channel, content_sid, body, variables)
        values (${workspaceId}, 'order ready', 'whatsapp', ${CONTENT_SID}, 'Hi {{1}}, order {{2}} is ready.',
                array['{{first_name}}', '{{var.order}}'])
        returning id::text`;

      // The writer writes on WhatsApp: the sandbox (Twilio) opens her window and posts the signed
      // inbound webhook, which opens it at Herald. Herald's copy is then set an hour back, as if
      // she had written an hour ago: still inside the window.
      const inbound = await fetch(`${stack.sandboxUrl}/_sandbox/inbound`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ from: `whatsapp:${writer}`, to: `whatsapp:${waSender}`, body: "Is my order ready?" }),
      });
      assert.equal(inbound.status, 200, await inbound.text());
      const [{ opened }] = await sql`select last_whatsapp_inbound_at is not null as opened from contacts where id = ${writerId}`;
      assert.ok(opened, "the inbound WhatsApp message opened the window at Herald");
      await sql`update contacts set last_whatsapp_inbound_at = now() - interval '1 hour' where id = ${writerId}`;

      const ids = await asUser(sql, owner, async (tx) => {
        const schedule = async (query: Promise<{ id: string }[]>) => (await query)[0].id;
        return {
          freeForm: await schedule(tx`
            select public.schedule_message(contact_id => ${writerId}::uuid, body => 'Yes, it is ready.',
                                           channel => 'whatsapp', category => 'transactional')::text as id`),
          noTemplate: await schedule(tx`
            select public.schedule_message(contact_id => ${silentId}::uuid, body => 'Your order is ready.',
                                           channel => 'whatsapp', category => 'transactional')::text as id`),
          template: await schedule(tx`
            select public.schedule_message(contact_id => ${silentId}::uuid, template_id => ${templateId}::uuid,
                                           channel => 'whatsapp', category => 'transactional')::text as id`),
        };
      });
      await sql`select herald.queue_due_messages()`;
      await dispatchOnce();
      const claims = await sql`select message_id::text from message_attempts where message_id = any (${Object.values(ids)}::uuid[])`;
      assert.deepEqual(claims.map((a) => a.message_id).sort(), [ids.freeForm, ids.template].sort(),
        "one attempt each for the two that can go; the message without a template is not even claimed");

      const status = async (id: string) => (await sql`select status from messages where id = ${id}`)[0].status as string;
      await waitFor("the free-form and the template message to be delivered", async () =>
        (await status(ids.freeForm)) === "delivered" && (await status(ids.template)) === "delivered");
      assert.equal(await status(ids.noTemplate), "failed");

      // At the sandbox: the writer got the text; the silent contact only the template, filled.
      const toWriter = await requestsTo(`whatsapp:${writer}`);
      assert.deepEqual(toWriter.map((r) => [r.http_status, r.content_sid]), [[201, null]], "one free-form create for the writer");
      const toSilent = await requestsTo(`whatsapp:${silent}`);
      assert.equal(toSilent.length, 1, "one create for the silent contact: the message without a template never reached Twilio");
      assert.equal(toSilent[0].content_sid, CONTENT_SID);
      assert.deepEqual(JSON.parse(toSilent[0].content_variables ?? "null"), { 1: "Ada", 2: "A-17" }, "the variables filled");
      const record = await sandboxRecord();
      const bodies = record.messages.filter((m) => m.to === `whatsapp:${silent}`).map((m) => [m.body, m.status]);
      assert.deepEqual(bodies, [[`[${CONTENT_SID}] {{1}} Ada · {{2}} A-17`, "delivered"]], "rendered by the sandbox as sent");

      const failed = await asUser(sql, owner, (tx) => tx`select last_error, last_error_code from failed_messages where id = ${ids.noTemplate}`);
      assert.equal(failed.length, 1);
      assert.match(failed[0].last_error, /^template required: WhatsApp delivers free-form text only within 24 hours/);
      const [ledger] = await sql`select reason from message_events where message_id = ${ids.noTemplate} order by id desc limit 1`;
      assert.equal(ledger.reason, "template_required");
    } finally {
      await sql.end();
    }
  },
});

Deno.test({
  name: "a deadline reaches Twilio as ValidityPeriod, the seconds left",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sql = connect();
    try {
      const { owner, workspaceId } = await sendingWorkspace(sql);
      const [withDeadline, without] = [phone(), phone()];
      const contacts = await sql`
        insert into contacts (workspace_id, phone) values (${workspaceId}, ${withDeadline}), (${workspaceId}, ${without})
        returning id::text, phone`;
      const idOf = (p: string) => contacts.find((c) => c.phone === p)!.id;
      const ids = await asUser(sql, owner, async (tx) => [
        (await tx`select public.schedule_message(contact_id => ${idOf(withDeadline)}::uuid, body => 'Your table is held until 8.',
                                                  category => 'transactional', expires_at => now() + interval '2 hours')::text as id`)[0].id,
        (await tx`select public.schedule_message(contact_id => ${idOf(without)}::uuid, body => 'No hurry.',
                                                  category => 'transactional')::text as id`)[0].id,
      ]);
      await sql`select herald.queue_due_messages()`;
      await dispatchOnce();

      const [{ left }] = await sql`select extract(epoch from expires_at - now())::float8 as left from messages where id = ${ids[0]}`;
      const withDeadlineRequests = await requestsTo(withDeadline);
      assert.equal(withDeadlineRequests.length, 1, "sent once");
      const [request] = withDeadlineRequests;
      const validity = Number(request.validity_period);
      assert.ok(Number.isInteger(validity) && validity <= 7200 && validity >= Math.floor(left),
        `ValidityPeriod ${request.validity_period}: the whole seconds left of two hours when it was sent`);
      assert.deepEqual((await requestsTo(without)).map((r) => r.validity_period), [null], "no deadline, no ValidityPeriod");
      await waitFor("both to be delivered", async () => {
        const [{ n }] = await sql`select count(*)::int as n from messages where id = any (${ids}::uuid[]) and status = 'delivered'`;
        return n === 2;
      });
    } finally {
      await sql.end();
    }
  },
});
