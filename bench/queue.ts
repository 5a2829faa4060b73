// Lead queue bench: prepare_queue over 100,000 eligible leads (a day's capacity of them,
// and all of them at once), the export-queue function streaming 100,000 messages over HTTP (with
// the memory of the process serving it), and take_lead on a lead with 50 pending messages.
//
// Each case loads its own workspace set-based as postgres (Herald's triggers run) and analyzes
// it as autovacuum would. The RPCs run as a member the way PostgREST calls them (role
// authenticated plus the JWT claims, in a transaction) and are rolled back, so every run starts
// from the same freshly loaded state; the export goes through a functions server started for
// this suite (bench/services.ts) with a signed user JWT.

import postgres from "postgres";
import {
  actAs,
  backendPid,
  type BackendTiming,
  formatMs,
  type Line,
  loadAverage,
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
import {
  type BenchServices,
  logTail,
  mb,
  processMemory,
  sampleRss,
  startBenchServices,
  userToken,
} from "./services.ts";

const ADMIN: Member = { userId: "00000000-0000-4000-8000-00000000be51", email: "bench-queue-admin@herald.local" };
const AGENT: Member = { userId: "00000000-0000-4000-8000-00000000be52", email: "bench-queue-agent@herald.local" };

const LEADS = 100_000;
/** Earlier leads of the prepare workspace, already contacted, with their sent history. */
const HISTORY_CONTACTS = 5_000;
const HISTORY_PER_CONTACT = 4;
/** A day's capacity for the first prepare case: what a team would queue daily, picked from all of LEADS. */
const DAY_CAPACITY = 1_000;
const TARGET_PREPARE_MS = 3_000;
/** A prepare_queue still running after this is cancelled and recorded at this time. */
const PREPARE_TIMEOUT_MS = 180_000;

const EXPORT_MESSAGES = 100_000;
const EXPORT_CONTACTS = 1_000;
const TARGET_EXPORT_MS = 3_000;
const TARGET_EXPORT_MB = 150;

const TAKE_CONTACTS = 1_000;
const TAKE_PENDING = 50;
const TAKE_RUNS = 20;
const TARGET_TAKE_MS = 20;

const ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo"];

async function loadUsers(sql: Sql) {
  for (const m of [ADMIN, AGENT]) {
    await sql`insert into auth.users (id, aud, role, email) values (${m.userId}, 'authenticated', 'authenticated', ${m.email})
              on conflict (id) do nothing`;
  }
}

async function newWorkspace(tx: Sql | postgres.TransactionSql, label: string): Promise<string> {
  const [{ id }] = await tx`insert into public.workspaces (name) values (${"bench: " + label}) returning id::text`;
  await tx`insert into public.workspace_members (workspace_id, user_id, role)
           values (${id}, ${ADMIN.userId}, 'admin'), (${id}, ${AGENT.userId}, 'agent')`;
  // A number of its own (a number belongs to one workspace), from the workspace id.
  const number = `+1555${parseInt(id.replaceAll("-", "").slice(0, 7), 16) % 10_000_000}`.padEnd(12, "0");
  await tx`insert into public.senders (workspace_id, channel, phone_number, status, mps, is_default)
           values (${id}, 'sms', ${number}, 'connected', 10, true)`;
  return id;
}

/** Vacuum and fresh statistics, outside any timing (what autovacuum keeps a live database at). */
async function settle(sql: Sql) {
  await sql.unsafe(`vacuum analyze public.messages, public.message_events, public.contacts, public.sequence_enrollments,
                    public.queue_entries, public.contact_activities, public.message_attempts`);
}

// ---- prepare_queue --------------------------------------------------------------------------------

interface PrepareWorkspace {
  id: string;
  leads: number;
}

/**
 * A workspace with an active 3-step default sequence (templates with {{first_name}}), capacity
 * for all its leads, 100,000 new leads across four time zones with a first name each, and the
 * history of an operating workspace: 5,000 earlier leads already contacted, each through the
 * sequence (enrollment completed) with 4 delivered messages, analyzed as autovacuum would.
 */
async function loadPrepareWorkspace(sql: Sql): Promise<PrepareWorkspace> {
  const id = await sql.begin(async (tx) => {
    const id = await newWorkspace(tx, "prepare");
    const [{ id: seq }] = await tx`
      insert into public.sequences (workspace_id, name, status) values (${id}, 'Welcome', 'active') returning id::text`;
    await tx`
      insert into public.sequence_steps (workspace_id, sequence_id, position, delay, body)
      values (${id}, ${seq}, 1, '0 days', 'Hi {{first_name}}, thanks for your interest! Reply STOP to opt out.'),
             (${id}, ${seq}, 2, '2 days', 'Hi {{first_name}}, any questions?'),
             (${id}, ${seq}, 3, '5 days', 'Last note from us, {{first_name}}.')`;
    await tx`
      insert into public.queue_settings (workspace_id, daily_capacity, window_start, window_end, default_sequence_id)
      values (${id}, ${LEADS}, '09:00', '17:00', ${seq})`;
    await tx`
      insert into public.contacts (workspace_id, phone, first_name, last_name, lead_status, created_at)
      select ${id}, '+1212' || lpad(g::text, 7, '0'), 'Earlier', g::text, 'contacted', now() - interval '30 days'
      from generate_series(1, ${HISTORY_CONTACTS}::int) g`;
    await tx`
      insert into public.sequence_enrollments (workspace_id, sequence_id, contact_id, current_position, status,
                                               enrolled_at, completed_at)
      select ${id}, ${seq}, c.id, 3, 'completed', now() - interval '30 days', now() - interval '23 days'
      from public.contacts c where c.workspace_id = ${id} and c.lead_status = 'contacted'`;
    await tx`
      insert into public.contacts (workspace_id, phone, first_name, last_name, email, timezone, created_at)
      select ${id}, '+1415' || lpad(g::text, 7, '0'), 'Lead' || g, 'Person', 'lead' || g || '@example.com',
             (${ZONES}::text[])[1 + g % 4], now() - interval '1 day' + g * interval '1 millisecond'
      from generate_series(1, ${LEADS}::int) g`;
    return id;
  });
  await sql`
    with c as (select array_agg(id order by phone) as ids from public.contacts
               where workspace_id = ${id} and lead_status = 'contacted')
    insert into public.messages (workspace_id, contact_id, channel, body, send_at, status, attempts, sent_at,
                                 delivered_at)
    select ${id}, c.ids[1 + g % cardinality(c.ids)], 'sms', 'Earlier message ' || g,
           now() - interval '20 days' + g * interval '1 second', 'delivered', 1,
           now() - interval '20 days' + g * interval '1 second', now() - interval '20 days' + g * interval '1 second'
    from c, generate_series(1, ${HISTORY_CONTACTS * HISTORY_PER_CONTACT}::int) g
    order by g`;
  await settle(sql);
  return { id, leads: LEADS };
}

/**
 * One prepare_queue as an admin with the day's capacity set to `capacity`, rolled back. A run
 * still going after PREPARE_TIMEOUT_MS is cancelled (statement_timeout) and counts as that long:
 * a missed target, not a broken bench.
 */
async function prepareOnce(
  sql: Sql,
  ws: PrepareWorkspace,
  capacity: number,
): Promise<BackendTiming<number> & { cancelled?: boolean }> {
  try {
    return await rolledBack(sql, async (tx) => {
      await tx`update public.queue_settings set daily_capacity = ${capacity} where workspace_id = ${ws.id}`;
      await tx.unsafe(`set local statement_timeout = ${PREPARE_TIMEOUT_MS}`);
      await actAs(tx, ADMIN);
      const pid = await backendPid(tx);
      const t = await timedOnBackend(pid, () => tx`select public.prepare_queue(${ws.id}, null) as n`);
      const n = Number(t.result[0].n);
      if (n !== Math.min(capacity, ws.leads)) throw new Error(`prepare_queue queued ${n}, expected ${capacity}`);
      return { ...t, result: n };
    });
  } catch (err) {
    if ((err as { code?: string }).code === "57014") return { ms: PREPARE_TIMEOUT_MS, result: 0, cancelled: true };
    throw err;
  }
}

// ---- export ---------------------------------------------------------------------------------------

async function loadExportWorkspace(sql: Sql): Promise<string> {
  const id = await sql.begin(async (tx) => {
    const id = await newWorkspace(tx, "export");
    await tx`
      insert into public.contacts (workspace_id, phone, first_name, last_name, email, lead_status)
      select ${id}, '+1415' || lpad(g::text, 7, '0'), 'Lead' || g, case when g % 50 = 0 then '=cmd|x' else 'Person' end,
             'lead' || g || '@example.com', 'queued'
      from generate_series(1, ${EXPORT_CONTACTS}::int) g`;
    return id;
  });
  // What the export's default window holds: 60% scheduled ahead, 10% queued, 25% delivered in
  // the last days, 5% cancelled; bodies with commas and quotes, as real templates have.
  await sql`
      with c as (select array_agg(id order by phone) as ids from public.contacts where workspace_id = ${id})
      insert into public.messages (workspace_id, contact_id, channel, body, send_at, status, attempts, sent_at,
                                   delivered_at, cancel_reason, cancelled_at)
      select ${id}, c.ids[1 + g % cardinality(c.ids)], 'sms',
             'Hi, "friend" number ' || g || ': your appointment is confirmed, see you soon!',
             case when k < 70 then now() + interval '1 day' + g * interval '1 second'
                  else now() - interval '3 days' + g * interval '1 second' end,
             (case when k < 60 then 'scheduled' when k < 70 then 'queued' when k < 95 then 'delivered'
                   else 'cancelled' end)::public.message_status,
             case when k between 70 and 94 then 1 else 0 end,
             case when k between 70 and 94 then now() - interval '3 days' + g * interval '1 second' end,
             case when k between 70 and 94 then now() - interval '3 days' + g * interval '1 second' end,
             case when k >= 95 then 'user_cancelled'::public.cancel_reason end,
             case when k >= 95 then now() end
      from c, generate_series(1, ${EXPORT_MESSAGES}::int) g, lateral (select g % 100 as k) kk
      order by g`;
  await settle(sql);
  return id;
}

interface ExportResult {
  ms: number;
  bytes: number;
  rows: number;
  status: number;
}

async function exportOnce(services: BenchServices, token: string, workspaceId: string): Promise<ExportResult> {
  const t0 = performance.now();
  const res = await fetch(`${services.functionsUrl}/export-queue?workspace_id=${workspaceId}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200 || !res.body) {
    const text = await res.text();
    throw new Error(`export-queue answered ${res.status}: ${text.slice(0, 200)}`);
  }
  let bytes = 0;
  let newlines = 0;
  for await (const chunk of res.body) {
    bytes += chunk.length;
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) newlines++;
  }
  return { ms: performance.now() - t0, bytes, rows: newlines - 1, status: res.status };
}

// ---- take_lead --------------------------------------------------------------------------------------

/**
 * 1,000 leads, each enrolled in a 3-step sequence (step 1 pending) with 49 more pending one-off
 * messages, every tenth queued: 50 pending messages and one active enrollment per lead.
 */
async function loadTakeWorkspace(sql: Sql): Promise<{ id: string; contacts: string[] }> {
  const id = await sql.begin(async (tx) => {
    const id = await newWorkspace(tx, "take lead");
    const [{ id: seq }] = await tx`
      insert into public.sequences (workspace_id, name, status) values (${id}, 'Nurture', 'active') returning id::text`;
    await tx`
      insert into public.sequence_steps (workspace_id, sequence_id, position, delay, body)
      select ${id}, ${seq}, p, (p - 1) * interval '2 days', 'Step ' || p || ' for {{first_name}}' from generate_series(1, 3) p`;
    await tx`
      insert into public.contacts (workspace_id, phone, first_name, last_name)
      select ${id}, '+1415' || lpad(g::text, 7, '0'), 'Lead' || g, 'Person' from generate_series(1, ${TAKE_CONTACTS}::int) g`;
    await tx`
      insert into public.sequence_enrollments (workspace_id, sequence_id, contact_id, current_position)
      select ${id}, ${seq}, c.id, 1 from public.contacts c where c.workspace_id = ${id}`;
    return id;
  });
  await sql`
      insert into public.messages (workspace_id, contact_id, channel, body, send_at, enrollment_id, step_id)
      select e.workspace_id, e.contact_id, 'sms', 'Step 1', now() + interval '1 day', e.id, st.id
      from (select e.*, row_number() over (order by e.id) as n from public.sequence_enrollments e
            where e.workspace_id = ${id}) e
      join public.sequence_steps st on st.workspace_id = e.workspace_id and st.sequence_id = e.sequence_id
                                   and st.position = 1
      where e.n <= ${TAKE_CONTACTS}`;
  await sql`
    with c as (select array_agg(id order by phone) as ids from public.contacts where workspace_id = ${id})
    insert into public.messages (workspace_id, contact_id, channel, body, send_at, status)
    select ${id}, c.ids[1 + g % cardinality(c.ids)], 'sms', 'Reminder ' || g,
           now() + interval '1 day' + g * interval '1 second',
           (case when g % 10 = 0 then 'queued' else 'scheduled' end)::public.message_status
    from c, generate_series(1, ${TAKE_CONTACTS * (TAKE_PENDING - 1)}::int) g
    order by g`;
  await settle(sql);
  const rows = await sql`select id::text from public.contacts where workspace_id = ${id} order by phone`;
  return { id, contacts: rows.map((r) => r.id as string) };
}

async function takeOnce(sql: Sql, contactId: string) {
  return await rolledBack(sql, async (tx) => {
    await actAs(tx, AGENT);
    const pid = await backendPid(tx);
    const t = await timedOnBackend(pid, () => tx`select public.take_lead(${contactId}) as r`);
    const r = t.result[0].r as { cancelled?: { messages?: number; sequence_enrollments?: number } };
    if (r.cancelled?.messages !== TAKE_PENDING || r.cancelled?.sequence_enrollments !== 1) {
      throw new Error(`take_lead cancelled ${JSON.stringify(r.cancelled)}, expected ${TAKE_PENDING} messages and 1 enrollment`);
    }
    return t;
  });
}

// ---- the suite ----------------------------------------------------------------------------------------

function missed(line: TimingLine): boolean {
  return line.samples.length > 0 && line.targetMs !== undefined && median(line.samples) >= line.targetMs;
}

export const queueSuite: Suite = {
  name: "queue",
  title: "Lead queue: prepare_queue, export-queue over HTTP, take_lead",
  async run(ctx: SuiteContext): Promise<Line[]> {
    const { cluster, log } = ctx;
    const sql = cluster.sql;
    const lines: Line[] = [{ kind: "figure", label: "load average at start (1/5/15 min)", value: loadAverage() }];
    await loadUsers(sql);

    // -- take_lead ----------------------------------------------------------------------------------
    log(`queue: loading ${TAKE_CONTACTS} leads with ${TAKE_PENDING} pending messages each`);
    const take = await loadTakeWorkspace(sql);
    let next = 0;
    const takeLine = await timeCase(
      `take_lead: lead with ${TAKE_PENDING} pending msgs + 1 enrollment`,
      TAKE_RUNS,
      () => takeOnce(sql, take.contacts[next++]),
      {
        warmUp: true,
        line: {
          targetMs: TARGET_TAKE_MS,
          note: `as an agent, rolled back; a different lead each run (of ${TAKE_CONTACTS} alike in the workspace)`,
        },
      },
    );
    lines.push(takeLine);
    if (ctx.profile && missed(takeLine)) {
      const id = take.contacts[next++];
      takeLine.profile = await profiled(cluster.url, async (p) => {
        await rolledBack(p, async (tx) => {
          await actAs(tx, AGENT);
          await tx`select public.take_lead(${id})`;
        });
      }, 1);
    }

    // -- export over HTTP -----------------------------------------------------------------------------
    log(`queue: loading ${EXPORT_MESSAGES} messages to export`);
    const exportWs = await loadExportWorkspace(sql);
    const [{ n: visible }] = await sql`
      select count(*)::int as n from public.messages
      where workspace_id = ${exportWs} and (send_at >= now() - interval '7 days' or status in ('scheduled', 'queued', 'sending'))`;
    if (visible !== EXPORT_MESSAGES) throw new Error(`export fixture: ${visible} messages in the default window`);
    let services: BenchServices | undefined;
    try {
      // export-queue alone in its functions server, as Supabase's edge runtime gives each function
      // its own worker: the process's memory is then the function's, not every function's.
      services = await startBenchServices(cluster, log, { functionsOnly: ["export-queue"] });
    } catch (err) {
      lines.push({
        kind: "timing",
        label: "export-queue",
        samples: [],
        error: err instanceof Error ? err.message.split("\n")[0] : String(err),
      });
    }
    if (services) {
      try {
        const token = await userToken(AGENT);
        const baseline = processMemory(services.functionsPid);
        let peakKb = 0;
        const results: ExportResult[] = [];
        log(`queue: export-queue, ${ctx.runs} run(s) after a warm-up; functions server pid ${services.functionsPid}`);
        const exp = await timeCase(
          `export-queue: ${EXPORT_MESSAGES / 1000}k messages as CSV over HTTP`,
          ctx.runs,
          async () => {
            const sampler = sampleRss(services!.functionsPid, 5);
            let r: ExportResult;
            try {
              r = await exportOnce(services!, token, exportWs);
            } finally {
              peakKb = Math.max(peakKb, sampler.stop().peakKb);
            }
            if (r.rows !== EXPORT_MESSAGES) {
              throw new Error(`export returned ${r.rows} rows, expected ${EXPORT_MESSAGES}\n${await logTail(services!)}`);
            }
            results.push(r);
            return { ms: r.ms };
          },
          {
            warmUp: true,
            line: {
              targetMs: TARGET_EXPORT_MS,
              note: "GET ?workspace_id=… with an agent's JWT, default window (pending + last 7 days), whole body read; " +
                "time to the last byte",
            },
          },
        );
        lines.push(exp);
        const end = processMemory(services.functionsPid);
        if (baseline && end) {
          const peakMb = Math.max(peakKb, end.hwmKb) / 1024;
          lines.push({
            kind: "figure",
            label: "functions server memory during export (RSS)",
            value: `peak ${mb(peakKb)} (< ${TARGET_EXPORT_MB} MB: ${
              peakMb < TARGET_EXPORT_MB ? "PASS" : "FAIL"
            })`,
            note: `baseline ${mb(baseline.rssKb)} after start, VmHWM ${mb(end.hwmKb)} at the end; RSS of a functions server ` +
              `serving export-queue only (the Deno runtime, the function and its modules), sampled every 5 ms from ` +
              `/proc/<pid>/status over the warm-up and ${exp.samples.length} timed exports; ` +
              `${results.length ? `${(results[0].bytes / 1e6).toFixed(1)} MB of CSV per export` : ""}`,
          });
        }
      } finally {
        await services.stop();
      }
    }

    // -- prepare_queue ----------------------------------------------------------------------------
    log(`queue: loading a workspace with ${LEADS} new leads (+${HISTORY_CONTACTS} earlier with history)`);
    const loaded = await timed(() => loadPrepareWorkspace(sql));
    log(`queue: loaded in ${formatMs(loaded.ms)}; prepare_queue, ${ctx.runs} run(s) after a warm-up`);
    const history = `the workspace also has ${HISTORY_CONTACTS} earlier leads (sequence completed, ` +
      `${HISTORY_CONTACTS * HISTORY_PER_CONTACT} delivered messages)`;
    for (const capacity of [DAY_CAPACITY, LEADS]) {
      let cancelled = false;
      const line = await timeCase(
        capacity < LEADS
          ? `prepare_queue: a day of ${capacity / 1000}k out of ${LEADS / 1000}k eligible leads`
          : `prepare_queue: all ${LEADS / 1000}k eligible leads at once`,
        ctx.runs,
        async () => {
          const r = await prepareOnce(sql, loaded.result, capacity);
          if (r.cancelled) cancelled = true;
          return r;
        },
        {
          warmUp: true,
          before: () => settle(sql),
          slowMs: 60_000,
          line: {
            targetMs: TARGET_PREPARE_MS,
            note: `daily_capacity ${capacity}; as an admin (role authenticated + claims, one transaction, rolled back); ` +
              `3-step sequence with a {{first_name}} template; leads in ${ZONES.length} time zones; ${history}`,
          },
        },
      );
      if (cancelled) line.note += `; cancelled by statement_timeout at ${formatMs(PREPARE_TIMEOUT_MS)} (recorded as that)`;
      lines.push(line);
      if (ctx.profile && missed(line) && !cancelled) {
        log(`queue: profiling prepare_queue at capacity ${capacity}`);
        line.profile = await profiled(cluster.url, async (p) => {
          await rolledBack(p, async (tx) => {
            await tx`update public.queue_settings set daily_capacity = ${capacity} where workspace_id = ${loaded.result.id}`;
            await actAs(tx, ADMIN);
            await tx`select public.prepare_queue(${loaded.result.id}, null)`;
          });
        }, 50);
      }
    }

    lines.push({ kind: "figure", label: "load average at end (1/5/15 min)", value: loadAverage() });
    return lines;
  },
};
