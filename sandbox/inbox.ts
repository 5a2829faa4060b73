/**
 * The sandbox's inbox page (`GET /`): what was sent and received, newest first, with a reply form
 * under each sent message that posts a signed inbound webhook as the recipient (`/_sandbox/reply`).
 * Self-contained HTML: no scripts, no external assets.
 */
import { type MessageResource, SERVICE_SENDER } from "./behaviour.ts";

/** What the page shows of a stored message. */
export interface InboxMessage {
  resource: MessageResource;
  receivedAtMs: number;
  /** Inbound messages only: what the inbound webhook answered. */
  webhookStatus?: number | null;
  webhookError?: string | null;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const INBOX_LIMIT = 500;

/** The page itself: the newest messages, grouped by the contact's number, most recently active first. */
export function renderInbox(all: InboxMessage[], inboundUrl: string | null): string {
  const newest = all.slice(-INBOX_LIMIT).reverse();
  // Group by the contact's number, most recently active contact first.
  const groups = new Map<string, InboxMessage[]>();
  for (const m of newest) {
    const r = m.resource;
    const contact = r.direction === "inbound" ? r.from ?? "" : r.to;
    const list = groups.get(contact) ?? [];
    list.push(m);
    groups.set(contact, list);
  }

  const rows = (list: InboxMessage[]) =>
    list.map((m) => {
      const r = m.resource;
      const sid = escapeHtml(r.sid);
      const time = new Date(m.receivedAtMs).toISOString();
      const meta = r.direction === "inbound"
        ? `reply · webhook ${m.webhookStatus ?? escapeHtml(m.webhookError ?? "pending")}`
        : `${escapeHtml(r.status)}${r.error_code !== null ? ` · error ${r.error_code}` : ""}`;
      const reply = r.direction === "inbound" ? "" : `
        <form method="post" action="/_sandbox/reply" class="reply" data-testid="reply-form-${sid}">
          <input type="hidden" name="from" value="${escapeHtml(r.to)}">
          <input type="hidden" name="to" value="${escapeHtml(r.from ?? SERVICE_SENDER)}">
          <input type="text" name="body" required placeholder="Reply as ${escapeHtml(r.to)}"
            aria-label="Reply to ${sid}" data-testid="reply-body-${sid}">
          <button type="submit" data-testid="reply-send-${sid}">Send reply</button>
        </form>`;
      return `
      <li class="msg ${r.direction === "inbound" ? "in" : "out"}" data-testid="message-${sid}"
        data-sid="${sid}" data-status="${escapeHtml(r.status)}">
        <div class="head">
          <span class="dir">${r.direction === "inbound" ? "from" : "to"}</span>
          <span data-testid="message-to-${sid}">${escapeHtml(r.to)}</span>
          <span class="muted">from</span> <span data-testid="message-from-${sid}">${escapeHtml(r.from ?? "(service)")}</span>
          <span class="status" data-testid="message-status-${sid}">${meta}</span>
          <time datetime="${time}">${time}</time>
        </div>
        <p class="body" data-testid="message-body-${sid}">${r.body === "" ? "<em>(redacted)</em>" : escapeHtml(r.body)}</p>
        ${reply}
      </li>`;
    }).join("");

  const sections = [...groups].map(([contact, list]) => `
    <section class="contact" data-testid="contact-${escapeHtml(contact)}">
      <h2>${escapeHtml(contact)} <small>${list.length} message${list.length === 1 ? "" : "s"}</small></h2>
      <ul>${rows(list)}</ul>
    </section>`).join("");

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Twilio sandbox inbox</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 56rem; padding: 1rem; color: #222; }
  h1 { font-size: 1.3rem; } h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; } small, .muted { color: #777; font-weight: normal; }
  ul { list-style: none; padding: 0; margin: 0; }
  .msg { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .75rem; margin: .4rem 0; }
  .msg.in { background: #eef6ff; margin-left: 2rem; }
  .head { display: flex; gap: .5rem; flex-wrap: wrap; align-items: baseline; }
  .status { font-weight: 600; } time { margin-left: auto; color: #777; font-size: 12px; }
  .body { white-space: pre-wrap; margin: .3rem 0; }
  .reply { display: flex; gap: .5rem; } .reply input[type=text] { flex: 1; }
</style>
</head>
<body>
<h1>Twilio sandbox inbox</h1>
<p class="muted">${all.length} message${all.length === 1 ? "" : "s"}${
    all.length > INBOX_LIMIT ? ` (newest ${INBOX_LIMIT} shown)` : ""
  } · replies go to ${inboundUrl ? escapeHtml(inboundUrl) : "<em>no inbound URL configured</em>"} · <a href="/">refresh</a></p>
${sections || '<p data-testid="inbox-empty">Nothing sent yet.</p>'}
</body>
</html>`;
}
