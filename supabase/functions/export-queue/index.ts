// GET /functions/v1/export-queue?status=queued,scheduled&from=…&to=… with a user's JWT.
// Streams CSV of the caller's messages joined with contact fields, read page by page as that user
// (RLS decides what is visible), so memory stays flat however many rows there are.
// `from` / `to` bound send_at (a date is the workspace's local day; see _shared/time-bounds.ts);
// without `from`, the export holds what is still to be sent and what was due in the last 7 days.

import { z } from "zod";
import { asCaller } from "../_shared/db.ts";
import { requireUser } from "../_shared/caller.ts";
import { handle, HttpError, readQuery, requireMethod } from "../_shared/http.ts";
import { csvRows } from "../_shared/csv.ts";
import { boundsInverted, timeBound } from "../_shared/time-bounds.ts";
import type { Database } from "../_shared/database.types.ts";

type MessageStatus = Database["public"]["Enums"]["message_status"];
const STATUSES: readonly MessageStatus[] = [
  "scheduled", "queued", "sending", "sent", "delivered", "read", "undelivered", "failed", "cancelled",
];

const Query = z.object({
  status: z.string().optional().transform((s, ctx) => {
    if (!s) return null;
    const list = s.split(",").map((x) => x.trim()).filter(Boolean);
    const bad = list.filter((x) => !STATUSES.includes(x as MessageStatus));
    if (bad.length) {
      ctx.addIssue({ code: "custom", message: `unknown status ${bad.join(", ")}; use ${STATUSES.join(", ")}` });
      return z.NEVER;
    }
    return list;
  }),
  from: timeBound(false),
  to: timeBound(true),
  workspace_id: z.string().uuid().optional(),
}).strict();

/** Rows per page: each page is one short transaction. */
const PAGE_ROWS = 1000;
/** How long a page waits for a lock before the export fails (visibly) instead of queueing behind it. */
const LOCK_WAIT = "2s";

const HEADER = [
  "message_id", "workspace_id", "status", "cancel_reason", "channel", "send_at", "sent_at", "delivered_at",
  "attempts", "last_error_code", "last_error", "body", "contact_id", "phone", "first_name", "last_name", "email",
  "lead_status", "created_at",
];

Deno.serve(handle(async (req) => {
  requireMethod(req, "GET");
  const claims = await requireUser(req);
  const { status, from, to, workspace_id } = readQuery(req, Query);
  if (boundsInverted(from, to)) throw new HttpError(400, "invalid_query", "from is after to");
  const fromGiven = Boolean(from.instant ?? from.local);

  // Pages in short transactions of their own, one workspace after another, keyed on (send_at, id)
  // (the messages_workspace_send_at_idx index: each page is an index range scan, not a sort of
  // everything after it): no transaction (with its snapshot and locks) stays open while a slow
  // client reads, and each page waits for a lock at most LOCK_WAIT. A failure after the 200 has
  // gone out aborts the stream, so the client's read fails rather than ending on a CSV that just
  // stops.
  const encoder = new TextEncoder();
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const page = (ws: string, after: { at: string; id: string } | null) =>
    asCaller(claims, async (tx) => {
      // The page key goes as text: a timestamptz parameter would pass through a JS Date and lose
      // its microseconds. A custom plan for each page: a generic one cannot see which workspace, or how far on.
      await tx`select set_config('lock_timeout', ${LOCK_WAIT}, true), set_config('plan_cache_mode', 'force_custom_plan', true)`;
      return await tx`
        select m.id, m.workspace_id, m.status, m.cancel_reason, m.channel, m.send_at, m.sent_at, m.delivered_at,
               m.attempts, m.last_error_code, m.last_error, m.body, c.id as contact_id, c.phone, c.first_name,
               c.last_name, c.email, c.lead_status, m.created_at, m.send_at::text as page_key
        from public.messages m
        join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
        join public.workspaces w on w.id = m.workspace_id
        where m.send_at >= coalesce(${from.instant}::text::timestamptz, ${from.local}::text::timestamp at time zone w.timezone, '-infinity')
          and m.send_at <= coalesce(${to.instant}::text::timestamptz, ${to.local}::text::timestamp at time zone w.timezone, 'infinity')
          and (${fromGiven} or m.send_at >= now() - interval '7 days' or m.status in ('scheduled', 'queued', 'sending'))
          ${status ? tx`and m.status = any (${status}::public.message_status[])` : tx``}
          and m.workspace_id = ${ws}::uuid
          ${after ? tx`and (m.send_at, m.id) > (${after.at}::text::timestamptz, ${after.id}::uuid)` : tx``}
        order by m.send_at, m.id
        limit ${PAGE_ROWS}`;
    });
  const stream = async () => {
    await writer.write(encoder.encode(csvRows([HEADER])));
    const workspaces = workspace_id ? [workspace_id] : (await asCaller(claims, (tx) =>
      tx`select workspace_id::text as id from public.workspace_members where user_id = (select auth.uid()) order by workspace_id`
    )).map((w) => w.id as string);
    for (const ws of workspaces) await streamWorkspace(ws);
  };
  const streamWorkspace = async (ws: string) => {
    let after: { at: string; id: string } | null = null;
    for (;;) {
      const rows = await page(ws, after);
      const cells = rows.map((r) =>
        [
          r.id, r.workspace_id, r.status, r.cancel_reason, r.channel, r.send_at?.toISOString(), r.sent_at?.toISOString(),
          r.delivered_at?.toISOString(), r.attempts, r.last_error_code, r.last_error, r.body, r.contact_id, r.phone,
          r.first_name, r.last_name, r.email, r.lead_status, r.created_at?.toISOString(),
        ]
      );
      // Backpressure: the next page is read only once the client has taken this one.
      if (cells.length) await writer.write(encoder.encode(csvRows(cells)));
      if (rows.length < PAGE_ROWS) return;
      after = { at: rows[rows.length - 1].page_key, id: rows[rows.length - 1].id };
    }
  };
  stream().then(() => writer.close(), (err) => {
    console.error("export-queue: stream failed", err);
    writer.abort(err).catch(() => {});
  });

  return new Response(readable, {
    headers: {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="herald-queue-${new Date().toISOString().slice(0, 10)}.csv"`,
    },
  });
}));
