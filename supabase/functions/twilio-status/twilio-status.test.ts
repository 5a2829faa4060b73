import assert from "node:assert/strict";
import type postgres from "postgres";
import { LOCAL_TWILIO } from "@herald/scripts/lib/config.ts";
import { connect, messageSid, phone, postTwilioWebhook, sendingWorkspace, stack, twilioSignature, waitFor } from "@herald/tests/support.ts";
import { statusCallbackParams } from "@herald/sandbox/webhooks.ts";

// Twilio's status callbacks, over HTTP against the served function: signed as Twilio signs them
// (twilio.getExpectedTwilioSignature over the configured public URL and the form fields).

/** A message a dispatcher has claimed and is handing to the provider (attempt 1, no sid yet). */
async function sendingMessage(sql: postgres.Sql) {
  const { workspaceId } = await sendingWorkspace(sql);
  const [c] = await sql`insert into contacts (workspace_id, phone) values (${workspaceId}, ${phone()}) returning id::text`;
  const [m] = await sql`
    insert into messages (workspace_id, contact_id, body, status, lease_expires_at, attempts)
    values (${workspaceId}, ${c.id}, 'status callbacks', 'sending', now() + interval '1 minute', 1) returning id::text`;
  await sql`insert into message_attempts (workspace_id, message_id, attempt_no, provider_status)
            values (${workspaceId}, ${m.id}, 1, 'requested')`;
  return { workspaceId, messageId: m.id as string, sid: messageSid() };
}

/** A message the provider has accepted (status sent) under a sid of our own, so no sandbox callback races ours. */
async function sentMessage(sql: postgres.Sql) {
  const m = await sendingMessage(sql);
  const [{ status }] = await sql`select herald.record_send_result(${m.messageId}::uuid, 1, 'sent', ${m.sid}, 'queued')::text as status`;
  assert.equal(status, "sent");
  return m;
}

function callback(sid: string, status: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...statusCallbackParams({ sid, accountSid: LOCAL_TWILIO.accountSid, from: "+15005550006", to: "+14155550100", status }),
    ...extra,
  };
}

/** Everything a callback could change about one message. */
async function snapshot(sql: postgres.Sql, messageId: string, sid: string) {
  const [m] = await sql`select status, delivered_at, last_error_code, updated_at from messages where id = ${messageId}`;
  const [a] = await sql`select provider_status, error_code, last_callback_at from message_attempts where message_id = ${messageId}`;
  const [{ events }] = await sql`select count(*)::int as events from message_events where message_id = ${messageId}`;
  const [{ callbacks }] = await sql`select count(*)::int as callbacks from provider_events where provider_sid = ${sid}`;
  return { message: { ...m }, attempt: { ...a }, events, callbacks };
}

Deno.test("twilio-status: a missing or wrong signature is refused with 403 and changes nothing", async () => {
  const sql = connect();
  try {
    const { messageId, sid } = await sentMessage(sql);
    const before = await snapshot(sql, messageId, sid);
    const params = callback(sid, "delivered");

    const missing = await postTwilioWebhook("twilio-status", params, { signature: null });
    assert.equal(missing.status, 403);
    assert.deepEqual(missing.body, {
      error: { code: "invalid_signature", message: "X-Twilio-Signature is missing or does not match this request" },
    });
    const wrongToken = await postTwilioWebhook("twilio-status", params, {
      signature: twilioSignature("twilio-status", params, "not-the-auth-token"),
    });
    assert.equal(wrongToken.status, 403, "signed with another auth token");
    const tampered = await postTwilioWebhook("twilio-status", params, {
      signature: twilioSignature("twilio-status", callback(sid, "sent")),
    });
    assert.equal(tampered.status, 403, "signed for other fields");
    const otherUrl = await postTwilioWebhook("twilio-status", params, { signature: twilioSignature("twilio-inbound", params) });
    assert.equal(otherUrl.status, 403, "signed for another URL");
    const garbage = await postTwilioWebhook("twilio-status", params, { signature: "bm90IGEgc2lnbmF0dXJl" });
    assert.equal(garbage.status, 403, "a signature that is no HMAC at all");

    assert.deepEqual(await snapshot(sql, messageId, sid), before, "the message, its attempt, the ledger and the inbox are untouched");
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-status: a body that is not form-encoded or is malformed is refused with 400 and changes nothing", async () => {
  const sql = connect();
  try {
    const { messageId, sid } = await sentMessage(sql);
    const before = await snapshot(sql, messageId, sid);
    const params = callback(sid, "delivered");

    const asJson = await postTwilioWebhook("twilio-status", params, {
      raw: { body: JSON.stringify(params), contentType: "application/json" },
    });
    assert.equal(asJson.status, 400);
    assert.equal((asJson.body as { error: { code: string } }).error.code, "invalid_body");

    const badSid = "MessageSid: must be SM or MM followed by 32 hex digits";
    const malformed: Array<[Record<string, string>, string | RegExp]> = [
      [callback("SM123", "delivered"), badSid], // not SM + 32 hex digits
      [callback(`XX${sid.slice(2)}`, "delivered"), badSid], // not a message sid
      [callback(sid, "exploded"), /^MessageStatus: must be one of accepted, scheduled, /], // not a Twilio status
      [callback(sid, "undelivered", { ErrorCode: "30003; drop table messages" }), "ErrorCode: must be a number"],
      [Object.fromEntries(Object.entries(params).filter(([k]) => k !== "MessageStatus")), "MessageStatus: required"],
    ];
    for (const [p, message] of malformed) {
      const res = await postTwilioWebhook("twilio-status", p); // correctly signed: only the content is wrong
      assert.equal(res.status, 400, `expected 400 for ${JSON.stringify(p)}, got ${res.status} ${res.text}`);
      const { error } = res.body as { error: { code: string; message: string } };
      assert.equal(error.code, "invalid_callback");
      if (typeof message === "string") assert.equal(error.message, message);
      else assert.match(error.message, message);
    }
    assert.deepEqual(await snapshot(sql, messageId, sid), before);
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-status: a body over 64 KiB is refused with 413, its length declared or streamed, and changes nothing", async () => {
  const sql = connect();
  try {
    const { messageId, sid } = await sentMessage(sql);
    const before = await snapshot(sql, messageId, sid);
    const params = callback(sid, "delivered", { Padding: "x".repeat(64 * 1024) });
    const form = new URLSearchParams(params).toString();

    // fetch declares a string body's length: refused on the header, before a byte is read.
    const declared = await postTwilioWebhook("twilio-status", params);
    assert.equal(declared.status, 413, declared.text);
    assert.equal((declared.body as { error: { code: string } }).error.code, "payload_too_large");

    // A stream goes chunked, with no length to go by: refused once the bytes read pass the limit.
    const bytes = new TextEncoder().encode(form);
    const streamed = await fetch(`${stack.functionsUrl}/twilio-status`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilioSignature("twilio-status", params),
      },
      body: new ReadableStream({
        start(c) {
          for (let at = 0; at < bytes.byteLength; at += 8192) c.enqueue(bytes.slice(at, at + 8192));
          c.close();
        },
      }),
    });
    assert.equal(streamed.status, 413);
    assert.equal((await streamed.json()).error.code, "payload_too_large");

    assert.deepEqual(await snapshot(sql, messageId, sid), before);
    // The same callback at its usual size, length declared, is read whole and applied.
    const ok = await postTwilioWebhook("twilio-status", callback(sid, "delivered"));
    assert.equal(ok.status, 200, ok.text);
    const [{ status }] = await sql`select status::text from messages where id = ${messageId}`;
    assert.equal(status, "delivered");
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-status: a replayed callback (same I-Twilio-Idempotency-Token) is a duplicate", async () => {
  const sql = connect();
  try {
    const { messageId, sid } = await sentMessage(sql);
    const params = callback(sid, "delivered");
    const token = `${sid}-delivered`;
    const first = await postTwilioWebhook("twilio-status", params, { idempotencyToken: token });
    assert.equal(first.status, 200);
    assert.deepEqual(first.body, { outcome: "applied" });
    const after = await snapshot(sql, messageId, sid);
    assert.equal(after.message.status, "delivered");
    assert.equal(after.attempt.provider_status, "delivered");

    const replay = await postTwilioWebhook("twilio-status", params, { idempotencyToken: token });
    assert.equal(replay.status, 200, "a replay is acknowledged, so Twilio stops retrying");
    assert.deepEqual(replay.body, { outcome: "duplicate" });
    const final = await snapshot(sql, messageId, sid);
    assert.deepEqual({ ...final, attempt: { ...final.attempt, last_callback_at: null } },
      { ...after, attempt: { ...after.attempt, last_callback_at: null } }, "the replay changed nothing");
    assert.equal(final.callbacks, 1, "stored once");

    // Without Twilio's token the same callback is stored again, and still changes nothing.
    const untokened = await postTwilioWebhook("twilio-status", params);
    assert.deepEqual(untokened.body, { outcome: "unchanged" });
    const [{ status }] = await sql`select status from messages where id = ${messageId}`;
    assert.equal(status, "delivered");
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-status: out of order (delivered, then sent, then queued) ends delivered", async () => {
  const sql = connect();
  try {
    const { messageId, sid } = await sentMessage(sql);
    const outcomes = [];
    for (const status of ["delivered", "sent", "queued"]) {
      const res = await postTwilioWebhook("twilio-status", callback(sid, status), { idempotencyToken: `${sid}-${status}` });
      assert.equal(res.status, 200);
      outcomes.push((res.body as { outcome: string }).outcome);
    }
    assert.deepEqual(outcomes, ["applied", "unchanged", "unchanged"]);
    const final = await snapshot(sql, messageId, sid);
    assert.equal(final.message.status, "delivered");
    assert.ok(final.message.delivered_at);
    assert.equal(final.attempt.provider_status, "delivered", "the attempt keeps the furthest status too");
    const ledger = await sql`select coalesce(from_status::text, '-') || '>' || to_status as step from message_events
                             where message_id = ${messageId} order by id`;
    assert.deepEqual(ledger.map((e) => e.step), ["->sending", "sending>sent", "sent>delivered"]);
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-status: undelivered with an error code fails the message with that code", async () => {
  const sql = connect();
  try {
    const { messageId, sid } = await sentMessage(sql);
    const res = await postTwilioWebhook("twilio-status", callback(sid, "undelivered", { ErrorCode: "30003" }), {
      idempotencyToken: `${sid}-undelivered`,
    });
    assert.deepEqual(res.body, { outcome: "applied" });
    const final = await snapshot(sql, messageId, sid);
    assert.equal(final.message.status, "undelivered");
    assert.equal(final.message.last_error_code, 30003);
    assert.deepEqual([final.attempt.provider_status, final.attempt.error_code], ["undelivered", 30003]);
    // a late delivered cannot revive it
    const late = await postTwilioWebhook("twilio-status", callback(sid, "delivered"), { idempotencyToken: `${sid}-delivered` });
    assert.deepEqual(late.body, { outcome: "unchanged" });
    assert.equal((await snapshot(sql, messageId, sid)).message.status, "undelivered");
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-status: an unknown sid is answered 200 (unknown_sid) and kept", async () => {
  const sql = connect();
  try {
    const sid = messageSid();
    const res = await postTwilioWebhook("twilio-status", callback(sid, "delivered"), { idempotencyToken: `${sid}-delivered` });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { outcome: "unknown_sid" });
    const rows = await sql`select outcome, message_id, provider_status from provider_events where provider_sid = ${sid}`;
    assert.deepEqual(rows.map((r) => ({ ...r })), [{ outcome: "unknown_sid", message_id: null, provider_status: "delivered" }]);
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-status: a callback that beats the dispatcher's record of the sid is applied, not lost", async () => {
  const sql = connect(6);
  try {
    // Before: Twilio's failed callback arrives before the dispatcher has recorded the sid. It is
    // answered 200 (unknown_sid) and Twilio will not send it again; recording the sid applies it.
    const early = await sendingMessage(sql);
    const res = await postTwilioWebhook("twilio-status", callback(early.sid, "failed", { ErrorCode: "30008" }), {
      idempotencyToken: `${early.sid}-failed`,
    });
    assert.deepEqual(res.body, { outcome: "unknown_sid" });
    const [{ status }] = await sql`select herald.record_send_result(${early.messageId}::uuid, 1, 'sent', ${early.sid}, 'queued')::text as status`;
    assert.equal(status, "failed");
    const after = await snapshot(sql, early.messageId, early.sid);
    assert.deepEqual([after.message.status, after.message.last_error_code, after.attempt.provider_status], ["failed", 30008, "failed"]);
    // 30008 is transient: applying it scheduled the message again, as a new one. That resend is
    // not this test's to send; cancelled here, it cannot turn up in a later test's dispatch.
    const resent = await sql`update messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now()
                             where retry_of = ${early.messageId} and status = 'scheduled' returning id`;
    assert.equal(resent.length, 1, "the early transient failure was scheduled to be sent again");

    // During: the callback arrives while the dispatcher's transaction recording the sid is still
    // open. It waits for that transaction instead of missing the sid.
    const racing = await sendingMessage(sql);
    let posted: ReturnType<typeof postTwilioWebhook> | undefined;
    await sql.begin(async (tx) => {
      await tx`select herald.record_send_result(${racing.messageId}::uuid, 1, 'sent', ${racing.sid}, 'queued')`;
      posted = postTwilioWebhook("twilio-status", callback(racing.sid, "delivered"), { idempotencyToken: `${racing.sid}-delivered` });
      await waitFor("the callback to wait for the dispatcher's transaction", async () => {
        const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity
                                  where wait_event_type = 'Lock' and wait_event = 'advisory'`;
        return n > 0;
      });
    });
    assert.deepEqual((await posted!).body, { outcome: "applied" });
    assert.equal((await snapshot(sql, racing.messageId, racing.sid)).message.status, "delivered");
  } finally {
    await sql.end();
  }
});

// ---- many at once: callbacks that arrive together are applied together ----------------------------

/** `n` messages the provider has accepted, each under a sid of our own (set-based, as the dispatcher leaves them). */
async function sentMessages(sql: postgres.Sql, n: number) {
  const { workspaceId } = await sendingWorkspace(sql);
  const rows = await sql`
    with c as (
      insert into contacts (workspace_id, phone)
      select ${workspaceId}, '+1415' || lpad((floor(random() * 1e7))::int::text, 7, '0') || g from generate_series(1, ${n}::int) g
      returning id
    ), m as (
      insert into messages (workspace_id, contact_id, body, status, attempts, provider_sid, sent_at)
      select ${workspaceId}, c.id, 'batched callbacks', 'sent', 1, 'SM' || md5(random()::text || c.id), now() from c
      returning id, provider_sid
    )
    insert into message_attempts (workspace_id, message_id, attempt_no, provider_sid, provider_status, responded_at)
    select ${workspaceId}, m.id, 1, m.provider_sid, 'queued', now() from m
    returning message_id::text, provider_sid as sid`;
  return { workspaceId, messages: rows.map((r) => ({ messageId: r.message_id as string, sid: r.sid as string })) };
}

Deno.test("twilio-status: concurrent callbacks, redeliveries among them, are each stored once and answered with their own outcome", async () => {
  const sql = connect();
  try {
    const { workspaceId, messages } = await sentMessages(sql, 60);
    const unknown = Array.from({ length: 5 }, () => messageSid());
    const calls: { sid: string; status: string; token: string; expect: string[] }[] = [
      // every message delivered, and the first 20 of those callbacks redelivered at the same time
      ...messages.map((m) => ({ sid: m.sid, status: "delivered", token: `${m.sid}-delivered`, expect: ["applied", "duplicate"] })),
      ...messages.slice(0, 20).map((m) => ({ sid: m.sid, status: "delivered", token: `${m.sid}-delivered`, expect: ["applied", "duplicate"] })),
      // a sent that arrives with (or after) its delivered: never takes it back
      ...messages.slice(20, 40).map((m) => ({ sid: m.sid, status: "sent", token: `${m.sid}-sent`, expect: ["unchanged"] })),
      ...unknown.map((sid) => ({ sid, status: "delivered", token: `${sid}-delivered`, expect: ["unknown_sid"] })),
    ];
    const answers = await Promise.all(calls.map((c) => postTwilioWebhook("twilio-status", callback(c.sid, c.status), { idempotencyToken: c.token })));

    for (const [k, res] of answers.entries()) {
      assert.equal(res.status, 200, `${calls[k].token}: ${res.text}`);
      assert.ok(calls[k].expect.includes((res.body as { outcome: string }).outcome), `${calls[k].token}: ${res.text}`);
    }
    // Of a callback and its redelivery, one is applied and the other is the duplicate.
    const byToken = new Map<string, string[]>();
    answers.forEach((res, k) => byToken.set(calls[k].token, [...(byToken.get(calls[k].token) ?? []), (res.body as { outcome: string }).outcome]));
    for (const m of messages.slice(0, 20)) assert.deepEqual(byToken.get(`${m.sid}-delivered`)!.sort(), ["applied", "duplicate"]);
    for (const m of messages.slice(20)) assert.deepEqual(byToken.get(`${m.sid}-delivered`), ["applied"]);

    const ids = messages.map((m) => m.messageId);
    const [state] = await sql`
      select count(*) filter (where m.status = 'delivered' and m.delivered_at is not null)::int as delivered,
             count(*) filter (where a.provider_status = 'delivered')::int as attempts_delivered,
             (select count(*)::int from message_events e where e.message_id = any (${ids}::uuid[]) and e.to_status = 'delivered'
                and e.from_status = 'sent' and e.reason = 'provider_delivered' and e.actor = 'provider') as ledger_steps
      from messages m join message_attempts a on a.message_id = m.id where m.id = any (${ids}::uuid[])`;
    assert.deepEqual({ ...state }, { delivered: 60, attempts_delivered: 60, ledger_steps: 60 }, "each delivered once, in its ledger once");
    const stored = await sql`
      select idempotency_token as token, outcome, count(*)::int as n, count(distinct received_at)::int as instants
      from provider_events where idempotency_token = any (${calls.map((c) => c.token)}::text[]) group by 1, 2`;
    assert.equal(stored.length, 60 + 20 + 5, "every token stored");
    assert.ok(stored.every((r) => r.n === 1), "and stored once");
    assert.deepEqual(
      stored.filter((r) => r.outcome === "unknown_sid").map((r) => r.token).sort(),
      unknown.map((sid) => `${sid}-delivered`).sort(),
      "the unknown sids kept for their replay",
    );
    assert.equal((await sql`select count(*)::int as n from provider_events where workspace_id = ${workspaceId} and outcome = 'applied'`)[0].n, 60);
    // An event's received_at is its transaction's start: callbacks applied in one call share it.
    const [{ instants }] = await sql`
      select count(distinct received_at)::int as instants from provider_events where idempotency_token = any (${calls.map((c) => c.token)}::text[])`;
    assert.ok(instants < 85, `85 callbacks were stored in ${instants} transactions: some went together`);
  } finally {
    await sql.end();
  }
});

Deno.test("twilio-status: a callback the database refuses fails alone with 500; the rest of its batch is stored", async () => {
  const sql = connect(6);
  // Refuses the one callback that carries the marker, as a constraint or a full disk would.
  await sql.unsafe(`
    create function public.test_refuse_marked_callback() returns trigger language plpgsql as $$
    begin raise exception 'refused for the test'; end $$;
    create trigger test_refuse_marked_callback before insert on public.provider_events
      for each row when (new.payload ? 'HeraldTestFault') execute function public.test_refuse_marked_callback();`);
  try {
    const { messages } = await sentMessages(sql, 12);
    const [blocker, ...rest] = messages;
    const poison = rest[0];
    const post = (m: { sid: string }) =>
      postTwilioWebhook("twilio-status", callback(m.sid, "delivered", m === poison ? { HeraldTestFault: "1" } : {}), {
        idempotencyToken: `${m.sid}-delivered`,
      });
    // The function's batch under way held: its callback waits for its sid's lock, held here.
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtextextended(${blocker.sid}, 0))`;
      const blocked = [post(blocker)];
      await waitFor("the batch under way to wait for the lock", async () => {
        const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and wait_event = 'advisory'`;
        return n >= 1;
      });
      // These arrive while it waits: they go together, in the next batch.
      const together = rest.map(post);
      await new Promise((r) => setTimeout(r, 1000));
      return { blocked, together };
    }).then(async ({ blocked, together }) => {
      for (const res of await Promise.all(blocked)) assert.deepEqual(res.body, { outcome: "applied" });
      // Their batch fails on the refused one; each is then tried alone, so only that one fails.
      // (Twilio does not reliably send a callback again after a 500: failing its batch-mates
      // too would lose their statuses.)
      const answers = await Promise.all(together);
      rest.forEach((m, i) => {
        if (m === poison) {
          assert.equal(answers[i].status, 500, answers[i].text);
          assert.deepEqual(answers[i].body, { error: { code: "internal_error", message: "the function failed; see its logs" } });
        } else {
          assert.deepEqual(answers[i].body, { outcome: "applied" }, answers[i].text);
        }
      });
    });
    const tokens = rest.map((m) => `${m.sid}-delivered`);
    const stored = await sql`select idempotency_token as token, outcome from provider_events where idempotency_token = any (${tokens}::text[])`;
    assert.deepEqual(
      stored.map((r) => r.token).sort(),
      rest.filter((m) => m !== poison).map((m) => `${m.sid}-delivered`).sort(),
      "each stored once, the refused one not at all",
    );
    assert.ok(stored.every((r) => r.outcome === "applied"));
    const [{ sent }] = await sql`select count(*)::int as sent from messages where id = ${poison.messageId}::uuid and status = 'sent'`;
    assert.equal(sent, 1, "the refused one is not applied");
    // Sent again, it fails again, alone.
    assert.equal((await post(poison)).status, 500);
  } finally {
    await sql.unsafe(`drop trigger if exists test_refuse_marked_callback on public.provider_events;
                      drop function if exists public.test_refuse_marked_callback();`);
    await sql.end();
  }
});

Deno.test("twilio-status: a form field with a NUL character is refused with 400 (it could never be stored)", async () => {
  const sql = connect();
  try {
    const { messageId, sid } = await sentMessage(sql);
    const before = await snapshot(sql, messageId, sid);
    const res = await postTwilioWebhook("twilio-status", callback(sid, "delivered", { Body: "a\u0000b" }));
    assert.equal(res.status, 400, res.text);
    assert.deepEqual(res.body, { error: { code: "invalid_callback", message: "Body: must not contain a NUL character" } });
    const huge = await postTwilioWebhook("twilio-status", callback(sid, "undelivered", { ErrorCode: "99999999999" }));
    assert.deepEqual(huge.body, { error: { code: "invalid_callback", message: "ErrorCode: must be at most 2147483647" } });
    assert.deepEqual(await snapshot(sql, messageId, sid), before);
  } finally {
    await sql.end();
  }
});
