/**
 * The sandbox's HTTP server: the Messages API under `/2010-04-01/` (Basic auth as at Twilio), and
 * loopback-only pages and admin endpoints beside it (`GET /` inbox, `/_sandbox/…`). Messages live
 * in memory and, given a `recordPath`, on disk too (record.ts), so a restart forgets nothing; each
 * accepted one walks its lifecycle off the request path, posting its callbacks.
 */
import { z } from "zod";
import { describeIssues } from "@herald/shared/http.ts";
import { newSid, sidSchema } from "@herald/shared/sids.ts";
import {
  advances,
  answerLost,
  API_VERSION,
  CANCELABLE,
  CANCELED,
  createRequestFrom,
  type MessageResource,
  messageResource,
  rfc2822,
  SandboxAccount,
  SERVICE_SENDER,
  type Step,
} from "./behaviour.ts";
import { Http1Pool } from "./http1.ts";
import {
  type CallbackRecord,
  CallbackPoster,
  inboundParams,
  MAX_CONCURRENT_CALLBACKS,
  postSigned,
  sleep,
  statusCallbackParams,
} from "./webhooks.ts";
import { inboxLimit, type InboxView, renderInbox, renderInboxList } from "./inbox.ts";
import { type CreateRequestRecord, SandboxRecord, type StoredMessage } from "./record.ts";

export type { CreateRequestRecord };

/** A stored message as the admin endpoints and `messages()` expose it. */
export interface SandboxMessage extends MessageResource {
  /** When the create request (or the inbound reply) reached the sandbox, epoch ms. */
  received_at_ms: number;
  status_callback: string | null;
  callbacks: CallbackRecord[];
  /** Inbound messages only: what the inbound webhook answered. */
  webhook_status?: number | null;
  webhook_error?: string | null;
}

export interface SandboxOptions {
  /** Default 54330; 0 picks a free port. */
  port?: number;
  hostname?: string;
  accountSid: string;
  authToken: string;
  /** Where replies from the inbox (and `POST /_sandbox/inbound`) are delivered. */
  inboundUrl?: string;
  /** Spacing between consecutive status callbacks of one message. Default 20. */
  callbackDelayMs?: number;
  /** A file to keep the record in across restarts (JSON lines); in memory only without it. */
  recordPath?: string;
  /** Pace each sender's queue at this many segments per second, as Twilio does; default: no pacing. */
  queueSegmentsPerSecond?: number | null;
}

export interface Sandbox {
  url: string;
  port: number;
  messages(): SandboxMessage[];
  reset(): void;
  close(): Promise<void>;
}

const OptionsSchema = z.object({
  port: z.number().int().min(0).max(65535).default(54330),
  hostname: z.string().min(1).default("127.0.0.1"),
  accountSid: sidSchema("AC"),
  authToken: z.string().min(1),
  inboundUrl: z.url().optional(),
  callbackDelayMs: z.number().int().min(0).default(20),
  recordPath: z.string().min(1).optional(),
  queueSegmentsPerSecond: z.number().positive().nullable().default(null),
});

const ReplySchema = z.object({
  from: z.string().trim().min(1, "from is required"),
  to: z.string().trim().min(1, "to is required"),
  body: z.string().min(1, "body is required"),
});

const MESSAGES_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages(?:\/([^/]+))?\.json$/;

function toSandboxMessage(m: StoredMessage): SandboxMessage {
  const out: SandboxMessage = {
    ...m.resource,
    subresource_uris: { ...m.resource.subresource_uris },
    received_at_ms: m.receivedAtMs,
    status_callback: m.statusCallback,
    callbacks: m.callbacks.map((c) => ({ ...c })),
  };
  if (m.resource.direction === "inbound") {
    out.webhook_status = m.webhookStatus ?? null;
    out.webhook_error = m.webhookError ?? null;
  }
  return out;
}

function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function twilioError(
  status: number,
  code: number,
  message: string,
  headers: HeadersInit = {},
): Response {
  return json(status, {
    code,
    message,
    more_info: `https://www.twilio.com/docs/errors/${code}`,
    status,
  }, headers);
}

/**
 * A 201 whose body never arrives whole: the connection closes one byte into a body announced as
 * longer, as a dropped answer does, and the client has no resource to read.
 */
function lostAnswer(): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("{"));
      controller.close();
    },
  });
  return new Response(body, {
    status: 201,
    headers: { "content-type": "application/json; charset=utf-8", "content-length": "1024" },
  });
}

function notFound(path: string): Response {
  return twilioError(404, 20404, `The requested resource ${path} was not found`);
}

function isLoopback(addr: Deno.Addr): boolean {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return true; // unix sockets are local
  const host = addr.hostname;
  return host === "::1" || host.startsWith("127.") || host.startsWith("::ffff:127.");
}

/** Logs at most once a second, so a dead callback endpoint under load cannot flood stderr. */
function throttledWarn(): (line: string) => void {
  let last = 0;
  let suppressed = 0;
  return (line) => {
    const now = Date.now();
    if (now - last < 1000) {
      suppressed++;
      return;
    }
    const extra = suppressed > 0 ? ` (${suppressed} similar suppressed)` : "";
    suppressed = 0;
    last = now;
    console.warn(`[twilio-sandbox] ${line}${extra}`);
  };
}

function matchesDate(sentAtMs: number | null, value: string, op: "=" | "<=" | ">="): boolean {
  if (sentAtMs === null) return false;
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(value);
  const start = Date.parse(dateOnly ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(start)) return false;
  const end = start + (dateOnly ? 86_400_000 : 1000); // whole day, or the whole second
  if (op === "=") return sentAtMs >= start && sentAtMs < end;
  if (op === "<=") return sentAtMs < end;
  return sentAtMs >= start;
}

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const parsed = OptionsSchema.safeParse(options);
  if (!parsed.success) throw new Error(`Invalid sandbox options: ${describeIssues(parsed.error)}`);
  const cfg = parsed.data;
  const expectedAuth = `Basic ${btoa(`${cfg.accountSid}:${cfg.authToken}`)}`;
  const warn = throttledWarn();
  // Kept-alive connections to the receivers, at most as many idle per receiver as callbacks in flight.
  const connections = new Http1Pool(MAX_CONCURRENT_CALLBACKS);
  const callbacks = new CallbackPoster(connections, cfg.authToken, Math.max(cfg.callbackDelayMs, 25), warn);

  const opened = cfg.recordPath ? SandboxRecord.open(cfg.recordPath) : null;
  const disk = opened?.record ?? null;
  if (opened?.recalled.skipped) warn(`${opened.recalled.skipped} unreadable line(s) in ${cfg.recordPath} skipped`);
  const store = opened?.recalled.messages ?? new Map<string, StoredMessage>(); // insertion order = creation order
  let createRequests: CreateRequestRecord[] = opened?.recalled.requests ?? [];
  const createCountsByTo = new Map<string, number>();
  for (const r of createRequests) if (r.to) createCountsByTo.set(r.to, (createCountsByTo.get(r.to) ?? 0) + 1);
  const triesByToAndBody = new Map<string, number>();
  // Moves with every change, so the inbox page knows when to refresh.
  let version = 0;
  /** Puts a new or changed message on record, before anyone is told about the change. */
  const save = (m: StoredMessage) => {
    // A lifecycle still winding down after a reset or a DELETE must not bring its message back.
    if (store.get(m.resource.sid) !== m) return;
    disk?.message(m);
    version++;
  };
  const noteRequest = (r: CreateRequestRecord) => {
    createRequests.push(r);
    disk?.request(r);
    version++;
  };
  const account = new SandboxAccount({ queueSegmentsPerSecond: cfg.queueSegmentsPerSecond });
  // WhatsApp's 24-hour windows survive a restart as the record does: they are its inbound messages.
  for (const m of store.values()) {
    if (m.resource.direction === "inbound" && m.resource.from) account.noteInbound(m.resource.from, m.receivedAtMs);
  }

  // One controller per reset() "generation": aborting it stops every pending callback chain.
  let generation = new AbortController();
  const inflight = new Set<Promise<void>>();
  const track = (task: Promise<void>) => {
    // Background work must never take the server down with an unhandled rejection.
    const settled: Promise<void> = task
      .catch((err) => warn(`background task failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => inflight.delete(settled));
    inflight.add(settled);
  };

  function setStatus(m: StoredMessage, step: Step, now: number): void {
    const r = m.resource;
    if (!advances(r.status, step.status)) return;
    r.status = step.status;
    if (step.errorCode !== null) {
      r.error_code = step.errorCode;
      r.error_message = step.errorMessage;
    }
    if (r.from === null && step.status !== "accepted") r.from = SERVICE_SENDER;
    if ((step.status === "sent" || step.status === "delivered") && m.sentAtMs === null) {
      m.sentAtMs = now;
      r.date_sent = rfc2822(now);
    }
    r.date_updated = rfc2822(now);
    save(m);
  }

  /** Posts the status callback for `step`, if the message asked for callbacks. */
  async function deliverCallback(m: StoredMessage, step: Step, signal: AbortSignal): Promise<void> {
    if (m.statusCallback === null) return;
    const r = m.resource;
    const record: CallbackRecord = {
      status: step.status,
      error_code: step.errorCode,
      http_status: null,
      attempts: 0,
      delivered: false,
      error: null,
      at_ms: Date.now(),
    };
    m.callbacks.push(record);
    save(m);
    const params = statusCallbackParams({
      sid: r.sid,
      accountSid: r.account_sid,
      from: r.from ?? SERVICE_SENDER,
      to: r.to,
      status: step.status,
      errorCode: step.errorCode,
      messagingServiceSid: r.messaging_service_sid,
    });
    await callbacks.deliver(m.statusCallback, params, record, `${r.sid}-${step.status}`, signal);
    save(m);
  }

  /** Walks a message through its lifecycle off the request path; callbacks go out one by one. */
  async function runLifecycle(m: StoredMessage, steps: Step[], signal: AbortSignal): Promise<void> {
    for (const step of steps) {
      if (!(await sleep(Math.max(cfg.callbackDelayMs, (step.notBeforeMs ?? 0) - Date.now()), signal))) return;
      if (m.resource.status === "canceled") return;
      m.stepsDone = (m.stepsDone ?? 0) + 1;
      setStatus(m, step, Date.now());
      await deliverCallback(m, step, signal);
    }
  }

  // ---- REST API ------------------------------------------------------------------------------

  async function createMessage(req: Request, receivedAtMs: number): Promise<Response> {
    const request = createRequestFrom(new URLSearchParams(await req.text()));
    const { to: requestedTo, from, messagingServiceSid, mediaCount, statusCallback } = request;
    const asked = {
      content_sid: request.contentSid,
      content_variables: request.contentVariables,
      validity_period: request.validityPeriod,
    };

    if (requestedTo) createCountsByTo.set(requestedTo, (createCountsByTo.get(requestedTo) ?? 0) + 1);
    const decision = account.create(request, (key) => {
      const tries = (triesByToAndBody.get(key) ?? 0) + 1;
      triesByToAndBody.set(key, tries);
      return tries;
    }, receivedAtMs);
    if (!decision.accepted) {
      const { status, code, message } = decision.rejection;
      noteRequest({ to: requestedTo, received_at_ms: receivedAtMs, http_status: status, error_code: code, sid: null, ...asked });
      return twilioError(status, code, message);
    }
    const { to, body, steps } = decision;

    const sid = newSid("SM");
    const message: StoredMessage = {
      resource: messageResource({
        accountSid: cfg.accountSid,
        sid,
        direction: "outbound-api",
        status: from ? "queued" : "accepted",
        // Twilio picks a Messaging Service's sender after accepting the request.
        from,
        to,
        body,
        messagingServiceSid,
        numMedia: mediaCount,
        createdAtMs: receivedAtMs,
        sentAtMs: null,
      }),
      receivedAtMs,
      sentAtMs: null,
      statusCallback,
      callbacks: [],
      steps,
      stepsDone: 0,
    };
    store.set(sid, message);
    save(message);
    noteRequest({ to, received_at_ms: receivedAtMs, http_status: 201, error_code: null, sid, ...asked });
    const response = answerLost(to) ? lostAnswer() : json(201, message.resource);
    track(runLifecycle(message, steps, generation.signal));
    return response;
  }

  async function updateMessage(req: Request, m: StoredMessage): Promise<Response> {
    const form = new URLSearchParams(await req.text());
    const body = form.get("Body");
    const status = form.get("Status");
    const invalid = () => twilioError(400, 30400, "Parameters are not valid");
    if ((body === null) === (status === null)) return invalid(); // exactly one of the two
    const now = Date.now();
    if (body !== null) {
      if (body !== "") return invalid(); // only redaction is allowed
      m.resource.body = "";
      m.resource.date_updated = rfc2822(now);
      save(m);
      return json(200, m.resource);
    }
    if (status !== "canceled") return invalid();
    if (!CANCELABLE.has(m.resource.status)) {
      return twilioError(400, 30409, "This message cannot be canceled");
    }
    m.resource.status = "canceled";
    m.resource.date_updated = rfc2822(now);
    save(m);
    track(deliverCallback(m, CANCELED, generation.signal));
    return json(200, m.resource);
  }

  function listMessages(url: URL): Response {
    const q = url.searchParams;
    const to = q.get("To");
    const from = q.get("From");
    // `DateSent<=x` arrives as key "DateSent<" with value x, which is why the library sends these keys.
    const dateSent = q.get("DateSent");
    const before = q.get("DateSent<");
    const after = q.get("DateSent>");
    const pageSize = Math.min(Math.max(Number(q.get("PageSize") ?? "50") || 50, 1), 1000);
    const page = Math.max(Number(q.get("Page") ?? "0") || 0, 0);

    const matching: MessageResource[] = [];
    for (const m of [...store.values()].reverse()) {
      const r = m.resource;
      if (to !== null && r.to !== to) continue;
      if (from !== null && r.from !== from) continue;
      if (dateSent !== null && !matchesDate(m.sentAtMs, dateSent, "=")) continue;
      if (before !== null && !matchesDate(m.sentAtMs, before, "<=")) continue;
      if (after !== null && !matchesDate(m.sentAtMs, after, ">=")) continue;
      matching.push(r);
    }

    const start = page * pageSize;
    const slice = matching.slice(start, start + pageSize);
    const base = `/${API_VERSION}/Accounts/${cfg.accountSid}/Messages.json`;
    const pageUri = (p: number) => {
      const params = new URLSearchParams();
      for (const [k, v] of q) if (k !== "Page" && k !== "PageSize" && k !== "PageToken") params.append(k, v);
      params.set("PageSize", String(pageSize));
      params.set("Page", String(p));
      return `${base}?${params}`;
    };
    return json(200, {
      messages: slice,
      page,
      page_size: pageSize,
      start,
      end: start + Math.max(slice.length - 1, 0),
      uri: pageUri(page),
      first_page_uri: pageUri(0),
      previous_page_uri: page > 0 ? pageUri(page - 1) : null,
      next_page_uri: start + pageSize < matching.length ? pageUri(page + 1) : null,
    });
  }

  async function handleApi(req: Request, url: URL, receivedAtMs: number): Promise<Response> {
    const match = MESSAGES_PATH.exec(url.pathname);
    if (req.headers.get("authorization") !== expectedAuth || (match && match[1] !== cfg.accountSid)) {
      return twilioError(401, 20003, "Authenticate", {
        "www-authenticate": 'Basic realm="Twilio API"',
      });
    }
    if (!match) return notFound(url.pathname);
    const sid = match[2];
    if (sid === undefined) {
      if (req.method === "POST") return await createMessage(req, receivedAtMs);
      if (req.method === "GET") return listMessages(url);
      return twilioError(405, 20004, "Method not allowed");
    }
    const m = store.get(sid);
    if (!m) return notFound(url.pathname);
    switch (req.method) {
      case "GET":
        return json(200, m.resource);
      case "POST":
        return await updateMessage(req, m);
      case "DELETE":
        store.delete(sid);
        disk?.deleted(sid);
        version++;
        return new Response(null, { status: 204 });
      default:
        return twilioError(405, 20004, "Method not allowed");
    }
  }

  // ---- Inbound webhooks and admin ------------------------------------------------------------

  interface InboundResult {
    sid: string;
    webhook_status: number | null;
    webhook_body: string;
    error: string | null;
  }

  async function sendInbound(from: string, to: string, body: string): Promise<InboundResult> {
    const sid = newSid("SM");
    const now = Date.now();
    account.noteInbound(from, now);
    const message: StoredMessage = {
      resource: messageResource({
        accountSid: cfg.accountSid,
        sid,
        direction: "inbound",
        status: "received",
        from,
        to,
        body,
        createdAtMs: now,
        sentAtMs: now,
      }),
      receivedAtMs: now,
      sentAtMs: now,
      statusCallback: null,
      callbacks: [],
      webhookStatus: null,
      webhookError: null,
    };
    store.set(sid, message);
    save(message);
    if (!cfg.inboundUrl) {
      message.webhookError = "no inboundUrl configured";
      save(message);
      return { sid, webhook_status: null, webhook_body: "", error: message.webhookError };
    }
    const params = inboundParams({
      sid,
      accountSid: cfg.accountSid,
      from,
      to,
      body,
      numSegments: message.resource.num_segments,
    });
    const result = await postSigned(connections, cfg.inboundUrl, params, cfg.authToken, generation.signal, sid);
    message.webhookStatus = result.status;
    message.webhookError = result.error;
    save(message);
    return { sid, webhook_status: result.status, webhook_body: result.body, error: result.error };
  }

  function adminSnapshot() {
    return {
      messages: [...store.values()].map(toSandboxMessage),
      create_requests_by_to: Object.fromEntries(createCountsByTo),
      create_requests: createRequests.slice(),
    };
  }

  function reset(): void {
    generation.abort();
    generation = new AbortController();
    store.clear();
    createCountsByTo.clear();
    triesByToAndBody.clear();
    createRequests = [];
    disk?.clear();
    version++;
    account.reset();
  }

  const inboxView = (url: URL): InboxView => ({
    messages: [...store.values()],
    requests: createRequests,
    inboundUrl: cfg.inboundUrl ?? null,
    limit: inboxLimit(url),
    version,
  });
  const html = (body: string) => new Response(body, { headers: { "content-type": "text/html; charset=utf-8" } });

  async function handleAdmin(req: Request, url: URL): Promise<Response> {
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case "GET /":
        return html(renderInbox(inboxView(url)));
      case "GET /_sandbox/inbox":
        return html(renderInboxList(inboxView(url)));
      case "GET /_sandbox/inbox/state":
        return json(200, { version, messages: store.size });
      case "GET /_sandbox/messages":
        return json(200, adminSnapshot());
      case "POST /_sandbox/reset":
        reset();
        return json(200, { ok: true });
      case "POST /_sandbox/reply": {
        const fields = ReplySchema.safeParse(Object.fromEntries(new URLSearchParams(await req.text())));
        if (!fields.success) {
          return new Response(`Invalid reply: ${describeIssues(fields.error)}`, { status: 400 });
        }
        await sendInbound(fields.data.from, fields.data.to, fields.data.body);
        return new Response(null, { status: 303, headers: { location: "/" } });
      }
      case "POST /_sandbox/inbound": {
        let raw: unknown;
        try {
          raw = await req.json();
        } catch {
          return json(400, { error: "body must be JSON {from, to, body}" });
        }
        const fields = ReplySchema.safeParse(raw);
        if (!fields.success) return json(400, { error: describeIssues(fields.error) });
        if (!cfg.inboundUrl) return json(409, { error: "the sandbox has no inboundUrl configured" });
        const result = await sendInbound(fields.data.from, fields.data.to, fields.data.body);
        return json(result.webhook_status === null ? 502 : 200, result);
      }
      default:
        return notFound(url.pathname);
    }
  }

  const listening = Promise.withResolvers<void>();
  const server = Deno.serve(
    // A custom onListen also keeps Deno's default "Listening on…" line out of test output.
    { port: cfg.port, hostname: cfg.hostname, onListen: () => listening.resolve() },
    async (req, info) => {
      const receivedAtMs = Date.now();
      try {
        const url = new URL(req.url);
        if (url.pathname.startsWith(`/${API_VERSION}/`)) return await handleApi(req, url, receivedAtMs);
        if (!isLoopback(info.remoteAddr)) return json(403, { error: "the sandbox admin is loopback only" });
        return await handleAdmin(req, url);
      } catch (err) {
        warn(`request failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        return twilioError(500, 20500, "Internal Server Error");
      }
    },
  );

  await listening.promise;
  // What was on its way when the last run stopped carries on, as it would at Twilio.
  for (const m of store.values()) {
    if (m.resource.direction === "inbound") continue;
    const rest = (m.steps ?? []).slice(m.stepsDone ?? 0);
    if (rest.length && m.resource.status !== "canceled") track(runLifecycle(m, rest, generation.signal));
  }
  const port = server.addr.port;
  let closed: Promise<void> | null = null;
  return {
    url: `http://${cfg.hostname.includes(":") ? `[${cfg.hostname}]` : cfg.hostname}:${port}`,
    port,
    messages: () => [...store.values()].map(toSandboxMessage),
    reset,
    close() {
      closed ??= (async () => {
        generation.abort();
        await server.shutdown();
        await Promise.allSettled([...inflight]);
        connections.close();
        disk?.close();
      })();
      return closed;
    },
  };
}
