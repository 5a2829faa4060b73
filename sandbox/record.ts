/**
 * The sandbox's memory on disk, so a restarted sandbox still knows what it accepted, as Twilio
 * does: without it, a dispatcher that looks a message up after a crash finds nothing and sends it
 * again. One JSON line per change, appended before the change is answered: a message as it now
 * is, a deleted sid, or a create request. Replayed at start (the last line for a sid wins, a torn
 * last line is skipped), and compacted then when superseded lines outnumber the live ones.
 */
import type { Step } from "./behaviour.ts";
import type { InboxMessage } from "./inbox.ts";
import type { CallbackRecord } from "./webhooks.ts";

/** A message as the sandbox keeps it. */
export interface StoredMessage extends InboxMessage {
  sentAtMs: number | null;
  statusCallback: string | null;
  callbacks: CallbackRecord[];
  /** Outbound messages: the lifecycle decided when it was accepted (behaviour.ts), so a restart resumes the same one. */
  steps?: Step[];
  /** Outbound messages: how many of those steps it has gone through. */
  stepsDone?: number;
}

/** One authenticated create request, whatever its outcome. */
export interface CreateRequestRecord {
  to: string | null;
  received_at_ms: number;
  http_status: number;
  error_code: number | null;
  sid: string | null;
  /** What the request asked for beyond a Body, as sent (absent in records written before these were kept). */
  content_sid?: string | null;
  content_variables?: string | null;
  validity_period?: string | null;
}

type Line = { message: StoredMessage } | { deleted: string } | { request: CreateRequestRecord };

export interface Recalled {
  /** By sid, in creation order. */
  messages: Map<string, StoredMessage>;
  requests: CreateRequestRecord[];
  /** Lines read, and of those, lines that could not be (a write cut short by a kill). */
  lines: number;
  skipped: number;
}

export class SandboxRecord {
  private constructor(readonly path: string, private file: Deno.FsFile) {}

  /** Opens (creating) the record at `path` and returns what it holds. */
  static open(path: string): { record: SandboxRecord; recalled: Recalled } {
    Deno.mkdirSync(path.replace(/\/[^/]+$/, ""), { recursive: true });
    const recalled = replay(path);
    const live = recalled.messages.size + recalled.requests.length;
    if (recalled.lines > 2 * live) {
      const tmp = `${path}.tmp`;
      Deno.writeTextFileSync(tmp, [
        ...[...recalled.messages.values()].map((message) => JSON.stringify({ message })),
        ...recalled.requests.map((request) => JSON.stringify({ request })),
      ].map((l) => `${l}\n`).join(""));
      Deno.renameSync(tmp, path);
    }
    const file = Deno.openSync(path, { create: true, append: true });
    return { record: new SandboxRecord(path, file), recalled };
  }

  message(message: StoredMessage): void {
    this.append({ message });
  }

  deleted(sid: string): void {
    this.append({ deleted: sid });
  }

  request(request: CreateRequestRecord): void {
    this.append({ request });
  }

  /** Forgets everything (the sandbox's reset). */
  clear(): void {
    this.file.truncateSync(0);
  }

  close(): void {
    this.file.close();
  }

  // Synchronous on purpose: a create is answered only once Twilio (the sandbox) has it on record.
  private append(line: Line): void {
    const bytes = new TextEncoder().encode(`${JSON.stringify(line)}\n`);
    for (let at = 0; at < bytes.length;) at += this.file.writeSync(bytes.subarray(at));
  }
}

function replay(path: string): Recalled {
  const messages = new Map<string, StoredMessage>();
  const requests: CreateRequestRecord[] = [];
  let text = "";
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  let lines = 0;
  let skipped = 0;
  for (const raw of text.split("\n")) {
    if (raw === "") continue;
    lines++;
    let line: Line;
    try {
      line = JSON.parse(raw);
    } catch {
      skipped++;
      continue;
    }
    if ("message" in line) {
      // A changed message keeps its place (creation order), as Map.set on an existing key does.
      messages.set(line.message.resource.sid, line.message);
    } else if ("deleted" in line) messages.delete(line.deleted);
    else if ("request" in line) requests.push(line.request);
  }
  return { messages, requests, skipped, lines };
}
