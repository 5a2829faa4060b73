// GET /functions/v1/export-queue?status=queued,scheduled&from=…&to=… with a user's JWT.
// Streams CSV of the caller's messages joined with contact fields, read through a cursor as that
// user (RLS decides what is visible), so memory stays flat however many rows there are.
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

  const encoder = new TextEncoder();
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const done = asCaller(claims, async (tx) => {
    await writer.write(encoder.encode(csvRows([HEADER])));
    const cursor = tx`
      select m.id, m.workspace_id, m.status, m.cancel_reason, m.channel, m.send_at, m.sent_at, m.delivered_at,
             m.attempts, m.last_error_code, m.last_error, m.body, c.id as contact_id, c.phone, c.first_name,
             c.last_name, c.email, c.lead_status, m.created_at
      from public.messages m
      join public.contacts c on c.workspace_id = m.workspace_id and c.id = m.contact_id
      join public.workspaces w on w.id = m.workspace_id
      where (${status}::public.message_status[] is null or m.status = any (${status}::public.message_status[]))
        and m.send_at >= coalesce(${from.instant}::text::timestamptz, ${from.local}::text::timestamp at time zone w.timezone, '-infinity')
        and m.send_at <= coalesce(${to.instant}::text::timestamptz, ${to.local}::text::timestamp at time zone w.timezone, 'infinity')
        and (${fromGiven} or m.send_at >= now() - interval '7 days' or m.status in ('scheduled', 'queued', 'sending'))
        and (${workspace_id ?? null}::uuid is null or m.workspace_id = ${workspace_id ?? null}::uuid)
      order by m.send_at, m.id`.cursor(200);
    for await (const rows of cursor) {
      const cells = rows.map((r) =>
        [
          r.id, r.workspace_id, r.status, r.cancel_reason, r.channel, r.send_at?.toISOString(), r.sent_at?.toISOString(),
          r.delivered_at?.toISOString(), r.attempts, r.last_error_code, r.last_error, r.body, r.contact_id, r.phone,
          r.first_name, r.last_name, r.email, r.lead_status, r.created_at?.toISOString(),
        ]
      );
      // Backpressure: the cursor fetches the next 200 rows only once these are taken. Small
      // batches stay in V8's young generation: the function's memory is flat, whatever the row count.
      await writer.write(encoder.encode(csvRows(cells)));
    }
  });
  done.then(() => writer.close(), (err) => {
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
