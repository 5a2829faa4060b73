// Deletion bench: what delete_contact() and preview_delete() cost at production sizes, against
// the naive way (an app with no foreign keys or rules deleting row by row itself).
//
// Fixtures are loaded set-based as postgres, bypassing the RPCs (Herald's insert triggers still
// run, so every message has the ledger rows the triggers write). Every timed delete gets its own
// freshly generated contact, and the touched tables are vacuumed before each run, so no run wades
// through what an earlier one left behind; Herald's deletes run as a member with PostgREST's role
// and claims, in a transaction that is rolled back.

import postgres from "postgres";
import {
  actAs,
  backendPid,
  type BackendTiming,
  type Line,
  median,
  type Member,
  profiled,
  rolledBack,
  type Sql,
  type Suite,
  type SuiteContext,
  timeCase,
  timed,
  timedOnBackend,
  type TimingLine,
} from "./lib.ts";

const MEMBER: Member = { userId: "00000000-0000-4000-8000-00000000be01", email: "bench@herald.local" };
const CONTACTS_WS = "00000000-0000-4000-8000-00000000be0c";
const PREVIEW_WS = "00000000-0000-4000-8000-00000000be0a";

/** Per contact copy: 10,000 pending messages and 100 active enrollments. */
const PENDING_PER_CONTACT = 10_000;
const ENROLLMENTS_PER_CONTACT = 100;
/** Sent history per contact copy, each with its provider attempt (queued for erasure on a hard delete). */
const HISTORY_PER_CONTACT = 200;
const PREVIEW_CONTACTS = 1_000;
const PREVIEW_MESSAGES = 100_000;

const TARGET_SOFT_MS = 300;
const TARGET_HARD_MS = 1_500;
const TARGET_PREVIEW_MS = 200;

async function loadMember(sql: Sql) {
  await sql`
    insert into auth.users (id, aud, role, email)
    values (${MEMBER.userId}, 'authenticated', 'authenticated', ${MEMBER.email})
    on conflict (id) do nothing`;
}

/**
 * `copies` identical contacts in one workspace, each with 100 enrollments (step 1 pending),
 * 9,900 more pending one-off messages (every tenth already queued), 200 delivered messages with
 * their provider attempts, 5 tags and 3 variables. Messages of different contacts are interleaved
 * in the heap, as they are when many contacts are scheduled over time.
 */
async function loadContactCopies(sql: Sql, copies: number): Promise<string[]> {
  const ws = CONTACTS_WS;
  const oneOffs = PENDING_PER_CONTACT - ENROLLMENTS_PER_CONTACT;
  await sql.begin(async (tx) => {
    await tx`insert into public.workspaces (id, name) values (${ws}, 'bench: contact deletes')`;
    await tx`insert into public.workspace_members (workspace_id, user_id, role) values (${ws}, ${MEMBER.userId}, 'owner')`;
    await tx`insert into public.senders (workspace_id, channel, phone_number, status, is_default)
             values (${ws}, 'sms', '+15550000001', 'connected', true)`;
    await tx`insert into public.sequences (workspace_id, name, status)
             select ${ws}, 'sequence ' || g, 'active' from generate_series(1, ${ENROLLMENTS_PER_CONTACT}::int) g`;
    await tx`insert into public.sequence_steps (workspace_id, sequence_id, position, delay, body)
             select s.workspace_id, s.id, p, p * interval '1 day', 'Hello {{first_name}}, step ' || p
             from public.sequences s cross join generate_series(1, 3) p where s.workspace_id = ${ws}`;
    await tx`insert into public.contacts (workspace_id, phone, first_name, last_name)
             select ${ws}, '+1555' || lpad(g::text, 7, '0'), 'Copy', g::text from generate_series(1, ${copies}::int) g`;
    await tx`insert into public.contact_tags (workspace_id, contact_id, tag)
             select c.workspace_id, c.id, 'tag-' || t from public.contacts c cross join generate_series(1, 5) t
             where c.workspace_id = ${ws}`;
    await tx`insert into public.contact_variables (workspace_id, contact_id, key, value)
             select c.workspace_id, c.id, 'k' || v, 'value ' || v from public.contacts c cross join generate_series(1, 3) v
             where c.workspace_id = ${ws}`;
    await tx`insert into public.sequence_enrollments (workspace_id, sequence_id, contact_id, current_position)
             select c.workspace_id, s.id, c.id, 1 from public.contacts c
             join public.sequences s on s.workspace_id = c.workspace_id where c.workspace_id = ${ws}`;
    await tx`insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id)
             select e.workspace_id, e.contact_id, 'sms', 'Hello Copy, step 1', now() + interval '1 day', e.id, st.id
             from public.sequence_enrollments e
             join public.sequence_steps st on st.workspace_id = e.workspace_id and st.sequence_id = e.sequence_id
                                          and st.position = 1
             where e.workspace_id = ${ws}`;
    await tx`insert into public.messages (workspace_id, contact_id, channel, body, send_at, status)
             select c.workspace_id, c.id, 'sms', 'Reminder ' || g, now() + g * interval '1 minute',
                    (case when g % 10 = 0 then 'queued' else 'scheduled' end)::public.message_status
             from generate_series(1, ${oneOffs}::int) g cross join public.contacts c
             where c.workspace_id = ${ws} order by g, c.id`;
    await tx`insert into public.messages (workspace_id, contact_id, channel, body, send_at, status, attempts,
                                          provider_sid, sent_at, delivered_at)
             select c.workspace_id, c.id, 'sms', 'Earlier ' || g, now() - g * interval '1 hour', 'delivered', 1,
                    'SM' || md5(c.id::text || g), now() - g * interval '1 hour', now() - g * interval '1 hour'
             from generate_series(1, ${HISTORY_PER_CONTACT}::int) g cross join public.contacts c
             where c.workspace_id = ${ws} order by g, c.id`;
    await tx`insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_sid, provider_status,
                                                  requested_at, responded_at)
             select m.workspace_id, m.id, 1, m.provider_sid, 'delivered', m.sent_at, m.sent_at
             from public.messages m where m.workspace_id = ${ws} and m.status = 'delivered'`;
  });
  const rows = await sql`select id from public.contacts where workspace_id = ${ws} order by phone`;
  return rows.map((r) => r.id as string);
}

/**
 * A workspace of 1,000 contacts and 100,000 messages taken through their lifecycle with
 * set-based updates, so message_events holds what the triggers write for each transition:
 * 80% sent (most delivered, some undelivered or failed, each with a provider attempt), 5%
 * cancelled, the rest pending (sequence steps, appointment reminders, retries of failures).
 */
async function loadPreviewWorkspace(sql: Sql) {
  const ws = PREVIEW_WS;
  const oneOffs = PREVIEW_MESSAGES / PREVIEW_CONTACTS - 2; // + 1 sequence step + (on average) 1 reminder
  await sql.begin(async (tx) => {
    await tx`insert into public.workspaces (id, name) values (${ws}, 'bench: preview')`;
    await tx`insert into public.workspace_members (workspace_id, user_id, role) values (${ws}, ${MEMBER.userId}, 'owner')`;
    await tx`insert into public.senders (workspace_id, channel, phone_number, status, is_default)
             values (${ws}, 'sms', '+15550000002', 'connected', true),
                    (${ws}, 'whatsapp', '+15550000003', 'connected', true)`;
    await tx`insert into public.whatsapp_groups (workspace_id, sender_id, external_id, name)
             select s.workspace_id, s.id, 'group-' || g, 'Group ' || g
             from public.senders s cross join generate_series(1, 20) g where s.workspace_id = ${ws} and s.channel = 'whatsapp'`;
    await tx`insert into public.campaigns (workspace_id, name, status)
             select ${ws}, 'campaign ' || g, 'active' from generate_series(1, 2) g`;
    await tx`insert into public.campaign_groups (workspace_id, campaign_id, group_id)
             select c.workspace_id, c.id, g.id from public.campaigns c
             join public.whatsapp_groups g on g.workspace_id = c.workspace_id where c.workspace_id = ${ws}`;
    await tx`insert into public.sequences (workspace_id, name, status)
             select ${ws}, 'sequence ' || g, 'active' from generate_series(1, 5) g`;
    await tx`insert into public.sequence_steps (workspace_id, sequence_id, position, delay, body)
             select s.workspace_id, s.id, p, p * interval '1 day', 'Hello {{first_name}}, step ' || p
             from public.sequences s cross join generate_series(1, 3) p where s.workspace_id = ${ws}`;
    await tx`insert into public.queue_settings (workspace_id, default_sequence_id)
             select ${ws}, id from public.sequences where workspace_id = ${ws} order by name limit 1`;
    await tx`insert into public.contacts (workspace_id, phone, first_name, last_name)
             select ${ws}, '+1666' || lpad(g::text, 7, '0'), 'Lead', g::text
             from generate_series(1, ${PREVIEW_CONTACTS}::int) g`;
    await tx`insert into public.contact_tags (workspace_id, contact_id, tag)
             select c.workspace_id, c.id, 'tag-' || t from public.contacts c cross join generate_series(1, 3) t
             where c.workspace_id = ${ws}`;
    await tx`insert into public.sequence_enrollments (workspace_id, sequence_id, contact_id, current_position)
             select c.workspace_id, s.id, c.id, 1
             from (select c.*, row_number() over (order by c.phone) as n from public.contacts c where c.workspace_id = ${ws}) c
             join (select s.*, row_number() over (order by s.name) - 1 as k from public.sequences s where s.workspace_id = ${ws}) s
               on s.k = c.n % 5`;
    await tx`insert into public.appointments (workspace_id, contact_id, title, starts_at)
             select c.workspace_id, c.id, 'Call', now() + interval '7 days'
             from (select c.*, row_number() over (order by c.phone) as n from public.contacts c where c.workspace_id = ${ws}) c
             where c.n % 2 = 0`;
    await tx`insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id)
             select e.workspace_id, e.contact_id, 'sms', 'Hello Lead, step 1', now() + interval '1 day', e.id, st.id
             from public.sequence_enrollments e
             join public.sequence_steps st on st.workspace_id = e.workspace_id and st.sequence_id = e.sequence_id
                                          and st.position = 1
             where e.workspace_id = ${ws}`;
    await tx`insert into public.messages (workspace_id, contact_id, channel, body, send_at, appointment_id)
             select a.workspace_id, a.contact_id, 'sms', 'See you soon', a.starts_at - r * interval '1 day', a.id
             from public.appointments a cross join generate_series(1, 2) r where a.workspace_id = ${ws}`;

    // One-off messages, planned first so retries can point at the failures they re-send.
    await tx`create temporary table bench_plan on commit drop as
             select gen_random_uuid() as id, c.id as contact_id, g
             from generate_series(1, ${oneOffs}::int) g cross join public.contacts c
             where c.workspace_id = ${ws} order by g, c.id`;
    await tx`create index on bench_plan (contact_id, g)`;
    await tx`insert into public.messages (id, workspace_id, contact_id, sender_id, channel, body, send_at, campaign_id, retry_of)
             select p.id, ${ws}, p.contact_id, s.id, 'sms', 'Message ' || p.g,
                    case when p.g % 20 < 17 then now() - (${oneOffs}::int - p.g) * interval '1 hour'
                         else now() + p.g * interval '1 hour' end,
                    case when p.g <= 10 then (select id from public.campaigns where workspace_id = ${ws}
                                              order by name limit 1 offset p.g % 2) end,
                    f.id
             from bench_plan p
             join public.senders s on s.workspace_id = ${ws} and s.channel = 'sms'
             left join bench_plan f on p.g % 20 = 17 and f.contact_id = p.contact_id and f.g = p.g - 2
             order by p.g, p.contact_id`;
    const history = "(select id from bench_plan where g % 20 < 16)";
    await tx.unsafe(`update public.messages set status = 'queued' where id in ${history}`);
    await tx.unsafe(
      `update public.messages set status = 'sending', attempts = 1, lease_expires_at = now() + interval '1 minute'
                     where id in ${history}`,
    );
    await tx.unsafe(
      `insert into public.message_attempts (workspace_id, message_id, attempt_no, provider_sid, provider_status,
                                                          requested_at, responded_at)
                     select m.workspace_id, m.id, 1, 'SM' || md5(m.id::text), 'queued', m.send_at, m.send_at
                     from public.messages m where m.id in ${history}`,
    );
    await tx.unsafe(`update public.messages m set status = 'sent', lease_expires_at = null, sent_at = m.send_at,
                            provider_sid = 'SM' || md5(m.id::text)
                     where id in ${history}`);
    await tx.unsafe(`update public.messages set status = 'delivered', delivered_at = sent_at
                     where id in (select id from bench_plan where g % 20 < 14)`);
    await tx.unsafe(`update public.messages set status = 'undelivered', last_error_code = 30003, failed_at = sent_at
                     where id in (select id from bench_plan where g % 20 = 14)`);
    await tx.unsafe(`update public.messages set status = 'failed', last_error_code = 30008, failed_at = sent_at
                     where id in (select id from bench_plan where g % 20 = 15)`);
    await tx.unsafe(
      `update public.messages set status = 'cancelled', cancel_reason = 'user_cancelled', cancelled_at = now()
                     where id in (select id from bench_plan where g % 20 = 16)`,
    );
    // A few opt-outs: their pending messages are cancelled and their numbers suppressed, by trigger.
    await tx`update public.contacts set opted_out_at = now()
             where workspace_id = ${ws} and phone in (select '+1666' || lpad(g::text, 7, '0') from generate_series(1, 10) g)`;
  });
}

async function counts(sql: Sql, ws: string) {
  const [r] = await sql`
    select (select count(*) from public.messages where workspace_id = ${ws})::int as messages,
           (select count(*) from public.messages where workspace_id = ${ws} and status in ('scheduled', 'queued'))::int as pending,
           (select count(*) from public.message_events where workspace_id = ${ws})::int as events,
           (select count(*) from public.message_attempts where workspace_id = ${ws})::int as attempts,
           (select count(*) from public.contacts where workspace_id = ${ws})::int as contacts`;
  return r as { messages: number; pending: number; events: number; attempts: number; contacts: number };
}

type Counts = { cancelled?: Record<string, number>; deleted?: Record<string, number> };

function expectCounts(what: string, got: Counts, cancelled: Record<string, number>, deleted: Record<string, number>) {
  for (const [k, v] of Object.entries(cancelled)) {
    if (got.cancelled?.[k] !== v) throw new Error(`${what}: cancelled.${k} = ${got.cancelled?.[k]}, expected ${v}`);
  }
  for (const [k, v] of Object.entries(deleted)) {
    if (got.deleted?.[k] !== v) throw new Error(`${what}: deleted.${k} = ${got.deleted?.[k]}, expected ${v}`);
  }
}

/** delete_contact() as a member, in a rolled-back transaction; the time is the RPC's round trip. */
async function heraldDelete(sql: Sql, contactId: string, hard: boolean): Promise<BackendTiming<Counts>> {
  return await rolledBack(sql, async (tx) => {
    await actAs(tx, MEMBER);
    const pid = await backendPid(tx);
    const t = await timedOnBackend(pid, () => tx`select public.delete_contact(${contactId}, ${hard}) as r`);
    return { ...t, result: t.result[0].r as Counts };
  });
}

/**
 * The naive way, transposed to Herald's tables: the database has no foreign keys and no rules,
 * and the application walks the children itself, one statement per row, each in its own
 * transaction (autocommit), then deletes the parent. session_replication_role = replica gives
 * this session exactly that world: Herald's triggers and foreign-key actions do not fire (so it
 * may delete ledger rows and messages one by one, which Herald otherwise refuses).
 */
async function naiveHardDelete(sql: Sql, contactId: string) {
  const ws = CONTACTS_WS;
  await sql`set session_replication_role = replica`;
  try {
    const messages = await sql`select id from public.messages where workspace_id = ${ws} and contact_id = ${contactId}`;
    for (const m of messages) {
      const events =
        await sql`select id from public.message_events where workspace_id = ${ws} and message_id = ${m.id}`;
      for (const e of events) await sql`delete from public.message_events where id = ${e.id}`;
      const attempts =
        await sql`select id from public.message_attempts where workspace_id = ${ws} and message_id = ${m.id}`;
      for (const a of attempts) await sql`delete from public.message_attempts where id = ${a.id}`;
      await sql`delete from public.messages where workspace_id = ${ws} and id = ${m.id}`;
    }
    for (const table of ["sequence_enrollments", "appointments", "contact_activities"]) {
      const rows = await sql`select id from ${
        sql("public." + table)
      } where workspace_id = ${ws} and contact_id = ${contactId}`;
      for (const r of rows) await sql`delete from ${sql("public." + table)} where id = ${r.id}`;
    }
    const tags = await sql`select tag from public.contact_tags where contact_id = ${contactId}`;
    for (const t of tags) await sql`delete from public.contact_tags where contact_id = ${contactId} and tag = ${t.tag}`;
    const vars = await sql`select key from public.contact_variables where contact_id = ${contactId}`;
    for (const v of vars) {
      await sql`delete from public.contact_variables where contact_id = ${contactId} and key = ${v.key}`;
    }
    await sql`delete from public.contacts where id = ${contactId}`;
  } finally {
    await sql`set session_replication_role = origin`;
  }
}

/** The naive soft delete: cancel each pending message and stop each enrollment one by one, then flag the contact. */
async function naiveSoftDelete(sql: Sql, contactId: string) {
  const ws = CONTACTS_WS;
  const pending = await sql`select id from public.messages
                            where workspace_id = ${ws} and contact_id = ${contactId} and status in ('scheduled', 'queued')`;
  for (const m of pending) {
    await sql`update public.messages set status = 'cancelled', cancel_reason = 'contact_deleted', cancelled_at = now()
              where id = ${m.id}`;
  }
  const enrollments = await sql`select id from public.sequence_enrollments
                                where workspace_id = ${ws} and contact_id = ${contactId} and status = 'active'`;
  for (const e of enrollments) {
    await sql`update public.sequence_enrollments
              set status = 'cancelled', stopped_reason = 'contact_deleted', completed_at = now() where id = ${e.id}`;
  }
  await sql`update public.contacts set deleted_at = now() where id = ${contactId}`;
}


/**
 * Vacuums what a delete touches, outside the timing. Herald's runs roll back and the copies'
 * messages share heap and index pages, so without this every run would wade through the dead
 * rows of the runs before it (autovacuum keeps a live database close to this state).
 */
async function settle(sql: Sql) {
  await sql.unsafe(`vacuum public.messages, public.message_events, public.message_attempts, public.sequence_enrollments,
                           public.contacts, public.contact_activities, public.deletion_log, herald.provider_erasures`);
}


export const deletionSuite: Suite = {
  name: "deletion",
  title: "Deletion: delete_contact, preview_delete, and the naive row-by-row way",
  async run({ cluster, runs, profile, log }: SuiteContext): Promise<Line[]> {
    const sql = cluster.sql;
    const naiveRuns = Math.min(runs, 3);
    const profileCopies = profile ? 2 : 0;
    const copies = 2 * (runs + 1) + 2 * naiveRuns + profileCopies;

    log(
      `deletion: loading ${copies} contact copies (${PENDING_PER_CONTACT} pending messages, ` +
        `${ENROLLMENTS_PER_CONTACT} active enrollments, ${HISTORY_PER_CONTACT} delivered each)`,
    );
    // Fixtures load on their own connection with nested loops off, so loading never hangs on how a
    // trigger's join of old_rows to new_rows is planned (a nested loop is n² for the 80,000-row
    // lifecycle updates). The timed runs use the default settings on another connection, so this
    // cannot leak into their cached plans.
    const loader = postgres(cluster.url, { max: 1, onnotice: () => {}, connection: { enable_nestloop: "off" } });
    let loadContacts: { ms: number; result: string[] };
    let loadPreview: { ms: number };
    try {
      await loadMember(loader);
      loadContacts = await timed(() => loadContactCopies(loader, copies));
      log(`deletion: loading a ${PREVIEW_CONTACTS}-contact workspace with ${PREVIEW_MESSAGES} messages`);
      loadPreview = await timed(() => loadPreviewWorkspace(loader));
      await loader.unsafe("vacuum analyze");
    } finally {
      await loader.end({ timeout: 1 });
    }
    const pc = await counts(sql, PREVIEW_WS);
    const cc = await counts(sql, CONTACTS_WS);
    log(
      `deletion: loaded in ${((loadContacts.ms + loadPreview.ms) / 1000).toFixed(1)} s — contacts workspace ` +
        `${cc.messages} messages / ${cc.events} events; preview workspace ${pc.contacts} contacts, ${pc.messages} messages ` +
        `(${pc.pending} pending), ${pc.events} events, ${pc.attempts} attempts`,
    );

    const ids = loadContacts.result;
    const take = (() => {
      let next = 0;
      return () => {
        if (next >= ids.length) throw new Error("bench ran out of contact copies");
        return ids[next++];
      };
    })();
    const perContact = PENDING_PER_CONTACT + HISTORY_PER_CONTACT;

    log("deletion: soft delete");
    const soft = await timeCase(
      `soft delete_contact: ${PENDING_PER_CONTACT / 1000}k pending msgs, ${ENROLLMENTS_PER_CONTACT} enrollments`,
      runs,
      async () => {
        const r = await heraldDelete(sql, take(), false);
        expectCounts("soft delete", r.result, {
          messages: PENDING_PER_CONTACT,
          sequence_enrollments: ENROLLMENTS_PER_CONTACT,
        }, {});
        return r;
      },
      { warmUp: true, before: () => settle(sql), line: { targetMs: TARGET_SOFT_MS } },
    );

    log("deletion: hard delete");
    const hard = await timeCase(
      `hard delete_contact: same contact (+${HISTORY_PER_CONTACT} delivered w/ attempts)`,
      runs,
      async () => {
        const r = await heraldDelete(sql, take(), true);
        expectCounts("hard delete", r.result, {
          messages: PENDING_PER_CONTACT,
          sequence_enrollments: ENROLLMENTS_PER_CONTACT,
        }, { "public.messages": perContact, "public.sequence_enrollments": ENROLLMENTS_PER_CONTACT });
        return r;
      },
      { warmUp: true, before: () => settle(sql), line: { targetMs: TARGET_HARD_MS } },
    );

    log("deletion: preview_delete('workspace')");
    const preview = await timeCase(
      `preview_delete('workspace'): ${PREVIEW_MESSAGES / 1000}k msgs, ${PREVIEW_CONTACTS} contacts`,
      runs,
      async () => {
        const r = await rolledBack(sql, async (tx) => {
          await actAs(tx, MEMBER);
          const pid = await backendPid(tx);
          return await timedOnBackend(pid, () => tx`select public.preview_delete('workspace', ${PREVIEW_WS}) as r`);
        });
        const got = r.result[0].r as { cascade?: Record<string, number> };
        if (got.cascade?.["public.messages"] !== pc.messages) {
          throw new Error(`preview counted ${got.cascade?.["public.messages"]} messages, expected ${pc.messages}`);
        }
        return r;
      },
      { warmUp: true, before: () => settle(sql), line: { targetMs: TARGET_PREVIEW_MS } },
    );

    log(`deletion: naive hard delete, ${naiveRuns} run(s) of ~${2 * perContact} round trips`);
    const naiveHard = await timeCase(
      "naive hard delete (no FKs, row by row from the app)",
      naiveRuns,
      async () => {
        const id = take();
        const t = await timedOnBackend(await backendPid(sql), () => naiveHardDelete(sql, id));
        const [left] =
          await sql`select count(*)::int as n from public.messages where workspace_id = ${CONTACTS_WS} and contact_id = ${id}`;
        if (left.n !== 0) throw new Error(`naive hard delete left ${left.n} messages`);
        return t;
      },
      {
        before: () => settle(sql),
        line: {
          note: "no triggers or FK actions (replica mode: the naive schema has none); autocommit, one statement per row: " +
            "each message's ledger rows and attempts, then the message, then every other child row, then the contact",
        },
      },
    );

    log(`deletion: naive soft delete, ${naiveRuns} run(s)`);
    const naiveSoft = await timeCase(
      "naive soft delete (cancel row by row from the app)",
      naiveRuns,
      async () => {
        const id = take();
        return await timedOnBackend(await backendPid(sql), () => naiveSoftDelete(sql, id));
      },
      {
        before: () => settle(sql),
        line: {
          note: "Herald's triggers on; autocommit: one UPDATE per pending message and per still-active enrollment, " +
            "then the contact",
        },
      },
    );

    if (profile) {
      const asMember = (fn: (tx: postgres.TransactionSql) => Promise<unknown>) => async (p: Sql) => {
        await rolledBack(p, async (tx) => {
          await actAs(tx, MEMBER);
          await fn(tx);
        });
      };
      for (const [line, hardDelete] of [[soft, false], [hard, true]] as const) {
        if (line.samples.length && median(line.samples) >= (line.targetMs ?? Infinity)) {
          log(`deletion: profiling ${hardDelete ? "hard" : "soft"} delete`);
          const id = take();
          line.profile = await profiled(
            cluster.url,
            asMember((tx) => tx`select public.delete_contact(${id}, ${hardDelete})`),
          );
        }
      }
      if (preview.samples.length && median(preview.samples) >= TARGET_PREVIEW_MS) {
        log("deletion: profiling preview_delete");
        preview.profile = await profiled(
          cluster.url,
          asMember((tx) => tx`select public.preview_delete('workspace', ${PREVIEW_WS})`),
        );
      }
    }

    const lines: Line[] = [soft, hard, preview, naiveHard, naiveSoft];
    const ratio = (naive: TimingLine, herald: TimingLine) => {
      if (!naive.samples.length || !herald.samples.length) return "n/a";
      return `${(median(naive.samples) / median(herald.samples)).toFixed(1)}x`;
    };
    lines.push(
      { kind: "figure", label: "ratio naive/Herald, hard delete (median)", value: ratio(naiveHard, hard) },
      { kind: "figure", label: "ratio naive/Herald, soft delete (median)", value: ratio(naiveSoft, soft) },
    );
    return lines;
  },
};

// ---- purge of soft-deleted contacts ------------------------------------------------------------

const PURGE_CONTACTS = 100_000;
const PURGE_WS = "00000000-0000-4000-8000-00000000be0d";
/** A call is one transaction: its locks are held this long at most (its time budget is 20 s). */
const TARGET_PURGE_CALL_MS = 20_000;

/**
 * 100,000 contacts soft-deleted past retention, each with a delivered message and its ledger, purged
 * the way pg_cron does it: herald.purge_deleted_contacts() called until it finds nothing, each call
 * a bounded batch (at most 2,000 contacts, or 20 s) in a transaction of its own.
 */
export const purgeSuite: Suite = {
  name: "purge",
  title: "Purge of soft-deleted contacts: bounded, resumable calls over 100,000 contacts",
  async run({ cluster, log }: SuiteContext): Promise<Line[]> {
    const sql = cluster.sql;
    log(`purge: loading ${PURGE_CONTACTS.toLocaleString("en")} soft-deleted contacts with a delivered message each`);
    const loader = postgres(cluster.url, { max: 1, onnotice: () => {}, connection: { enable_nestloop: "off" } });
    try {
      await loader`insert into public.workspaces (id, name) values (${PURGE_WS}, 'bench: purge') on conflict (id) do nothing`;
      await loader`insert into public.contacts (workspace_id, phone, deleted_at)
                   select ${PURGE_WS}, '+1717' || lpad(g::text, 7, '0'), now() - interval '40 days'
                   from generate_series(1, ${PURGE_CONTACTS}::int) g`;
      await loader`insert into public.messages (workspace_id, contact_id, body, send_at, status, sent_at, delivered_at)
                   select workspace_id, id, 'delivered long ago', now() - interval '41 days', 'delivered',
                          now() - interval '41 days', now() - interval '41 days'
                   from public.contacts where workspace_id = ${PURGE_WS}`;
      await loader.unsafe("vacuum analyze public.contacts, public.messages, public.message_events");
    } finally {
      await loader.end({ timeout: 1 });
    }

    log("purge: calling purge_deleted_contacts() until nothing is left");
    const calls: number[] = [];
    let purged = 0;
    const started = performance.now();
    for (;;) {
      const t0 = performance.now();
      const [{ n }] = await sql`select herald.purge_deleted_contacts() as n`;
      calls.push(performance.now() - t0);
      purged += n;
      if (n === 0) break;
    }
    const totalMs = performance.now() - started;
    const [{ left }] = await sql`select count(*)::int as left from public.contacts where workspace_id = ${PURGE_WS}`;
    if (purged !== PURGE_CONTACTS || left !== 0) throw new Error(`purged ${purged}, ${left} left`);
    const perCall: TimingLine = {
      kind: "timing",
      label: `purge_deleted_contacts(): one call (≤ 2,000 contacts), ${calls.length} calls`,
      samples: calls.slice(0, -1),
      targetMs: TARGET_PURGE_CALL_MS,
    };
    return [
      perCall,
      {
        kind: "figure",
        label: `${PURGE_CONTACTS.toLocaleString("en")} soft-deleted contacts purged, in all`,
        value: `${(totalMs / 1000).toFixed(1)} s (${Math.round(PURGE_CONTACTS / (totalMs / 1000))} contacts/s)`,
      },
    ];
  },
};
