/**
 * The sandbox's inbox page (`GET /`): what was sent and received, newest first, grouped by the
 * contact's number, with a reply form under each sent message that posts a signed inbound webhook
 * as the recipient (`/_sandbox/reply`). A number that opted out (it replied STOP, or a send to it
 * was refused with 21610) is marked.
 *
 * It stays current by itself: a small inline script polls `GET /_sandbox/inbox/state` (a version
 * number that moves with every change) once a second and, when it moved, swaps in the list from
 * `GET /_sandbox/inbox`, keeping whatever is being typed in a reply box. Times are ISO 8601 in the
 * HTML and shown in the viewer's own time zone by the same script. The newest PAGE_SIZE messages
 * are listed; "show more" lists more, so a long session stays quick to render.
 * No external assets: the page works offline and under any CSP the sandbox sets.
 */
import { bareNumber, keywordAction, type MessageResource, SERVICE_SENDER } from "./behaviour.ts";
import type { CreateRequestRecord } from "./record.ts";

/** What the page shows of a stored message. */
export interface InboxMessage {
  resource: MessageResource;
  receivedAtMs: number;
  /** Inbound messages only: what the inbound webhook answered. */
  webhookStatus?: number | null;
  webhookError?: string | null;
}

export interface InboxView {
  /** Every message, oldest first. */
  messages: InboxMessage[];
  requests: CreateRequestRecord[];
  inboundUrl: string | null;
  /** How many of the newest messages to list. */
  limit: number;
  /** Moves with every change to the sandbox's record; the page polls it. */
  version: number;
}

export const PAGE_SIZE = 100;

/** `?limit=` as the page passes it on; PAGE_SIZE when absent or not a positive integer. */
export function inboxLimit(url: URL): number {
  const n = Number(url.searchParams.get("limit"));
  return Number.isInteger(n) && n > 0 ? n : PAGE_SIZE;
}

export interface OptOut {
  why: string;
  atMs: number;
}

/**
 * The numbers that are opted out now: the last of their keyword replies was an opt-out, or a send
 * to them was refused with 21610 after their last opt-in. Derived from the record itself, so it
 * survives a restart with it.
 */
export function optedOut(messages: InboxMessage[], requests: CreateRequestRecord[]): Map<string, OptOut> {
  const events: { number: string; atMs: number; out: boolean; why: string }[] = [];
  for (const m of messages) {
    const r = m.resource;
    const action = r.direction === "inbound" && r.from ? keywordAction(r.body) : null;
    if (action) {
      events.push({ number: bareNumber(r.from!), atMs: m.receivedAtMs, out: action === "opt_out", why: `replied ${r.body.trim().toUpperCase()}` });
    }
  }
  for (const q of requests) {
    if (q.error_code === 21610 && q.to) {
      events.push({ number: bareNumber(q.to), atMs: q.received_at_ms, out: true, why: "a send was refused: 21610 unsubscribed recipient" });
    }
  }
  events.sort((a, b) => a.atMs - b.atMs);
  const out = new Map<string, OptOut>();
  for (const e of events) {
    if (e.out) out.set(e.number, { why: e.why, atMs: e.atMs });
    else out.delete(e.number);
  }
  return out;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;
}

function row(m: InboxMessage): string {
  const r = m.resource;
  const sid = escapeHtml(r.sid);
  const inbound = r.direction === "inbound";
  const time = new Date(m.receivedAtMs).toISOString();
  const to = `<span data-testid="message-to-${sid}">${escapeHtml(r.to)}</span>`;
  const from = `<span data-testid="message-from-${sid}">${escapeHtml(r.from ?? "(service)")}</span>`;
  // Read in the direction the message went: a reply comes from the contact to Herald's number.
  const route = inbound ? `from ${from} to ${to}` : `to ${to} from ${from}`;
  const meta = inbound
    ? `reply · webhook ${m.webhookStatus ?? escapeHtml(m.webhookError ?? "pending")}`
    : `${escapeHtml(r.status)}${r.error_code !== null ? ` · error ${r.error_code}` : ""}`;
  const reply = inbound ? "" : `
        <form method="post" action="/_sandbox/reply" class="reply" data-testid="reply-form-${sid}">
          <input type="hidden" name="from" value="${escapeHtml(r.to)}">
          <input type="hidden" name="to" value="${escapeHtml(r.from ?? SERVICE_SENDER)}">
          <input type="text" name="body" required placeholder="Reply as ${escapeHtml(r.to)}"
            aria-label="Reply to ${sid}" data-testid="reply-body-${sid}">
          <button type="submit" data-testid="reply-send-${sid}">Send reply</button>
        </form>`;
  return `
      <li class="msg ${inbound ? "in" : "out"}" data-testid="message-${sid}" data-sid="${sid}" data-status="${escapeHtml(r.status)}">
        <div class="head">
          <span class="route" data-testid="message-route-${sid}">${route}</span>
          <span class="status" data-testid="message-status-${sid}">${meta}</span>
          <time datetime="${time}" title="${time}" data-testid="message-time-${sid}">${time}</time>
        </div>
        <p class="body" data-testid="message-body-${sid}">${r.body === "" ? "<em>(redacted)</em>" : escapeHtml(r.body)}</p>${reply}
      </li>`;
}

/** The list itself (`GET /_sandbox/inbox`): what the page swaps in when the record changes. */
export function renderInboxList(view: InboxView): string {
  const { messages, limit } = view;
  const shown = messages.slice(-limit).reverse();
  const optOuts = optedOut(messages, view.requests);
  // Group by the contact's number, most recently active contact first.
  const groups = new Map<string, InboxMessage[]>();
  for (const m of shown) {
    const r = m.resource;
    const contact = bareNumber(r.direction === "inbound" ? r.from ?? "" : r.to);
    const list = groups.get(contact) ?? [];
    list.push(m);
    groups.set(contact, list);
  }
  // An opted-out number with nothing listed (every send to it refused) still shows, with its mark.
  for (const number of optOuts.keys()) if (!groups.has(number)) groups.set(number, []);

  const sections = [...groups].map(([contact, list]) => {
    const c = escapeHtml(contact);
    const optOut = optOuts.get(contact);
    const mark = optOut
      ? ` <span class="opted-out" data-testid="opted-out-${c}" title="${escapeHtml(optOut.why)}">opted out</span>`
      : "";
    return `
    <section class="contact" data-testid="contact-${c}"${optOut ? ' data-opted-out="true"' : ""}>
      <h2>${c}${mark} <small>${list.length ? plural(list.length, "message") : escapeHtml(optOut?.why ?? "")}</small></h2>
      <ul>${list.map(row).join("")}</ul>
    </section>`;
  }).join("");

  const hidden = messages.length - shown.length;
  const more = hidden > 0
    ? `<p><a href="/?limit=${limit + PAGE_SIZE}" data-testid="show-more">Show ${Math.min(hidden, PAGE_SIZE)} more</a>
       <span class="muted">(${plural(hidden, "older message")} not listed)</span></p>`
    : "";
  return `<div id="inbox" data-version="${view.version}" data-testid="inbox">
<p class="muted" data-testid="inbox-summary">${plural(messages.length, "message")}${
    hidden > 0 ? ` · newest ${shown.length.toLocaleString("en-US")} listed` : ""
  } · replies go to ${view.inboundUrl ? escapeHtml(view.inboundUrl) : "<em>no inbound URL configured</em>"} · updates live</p>
${sections || '<p data-testid="inbox-empty">Nothing sent yet.</p>'}
${more}
</div>`;
}

// Formats times in the viewer's zone, and keeps the list current without a reload (see above).
const SCRIPT = `
(() => {
  const localTimes = (root) => {
    for (const t of root.querySelectorAll("time[datetime]")) t.textContent = new Date(t.dateTime).toLocaleString();
  };
  localTimes(document);
  const refresh = async () => {
    const inbox = document.getElementById("inbox");
    const state = await (await fetch("/_sandbox/inbox/state", { cache: "no-store" })).json();
    if (String(state.version) === inbox.dataset.version) return;
    const html = await (await fetch("/_sandbox/inbox" + location.search, { cache: "no-store" })).text();
    const holder = document.createElement("div");
    holder.innerHTML = html;
    const fresh = holder.firstElementChild;
    localTimes(fresh);
    // What the person was typing, and where, survives the swap.
    const focused = document.activeElement;
    for (const input of inbox.querySelectorAll("input[type=text]")) {
      const twin = fresh.querySelector('[data-testid="' + CSS.escape(input.dataset.testid) + '"]');
      if (!twin) continue;
      twin.value = input.value;
      if (input === focused) {
        twin.focus();
        twin.setSelectionRange(input.selectionStart, input.selectionEnd);
      }
    }
    document.getElementById("inbox").replaceWith(fresh);
  };
  const poll = async () => {
    try { await refresh(); } catch { /* the sandbox is restarting: try again */ }
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 1000);
})();
`;

/** The whole page. */
export function renderInbox(view: InboxView): string {
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
  .opted-out { background: #b00020; color: #fff; border-radius: 4px; padding: 0 .4rem; font-size: 12px; }
  .body { white-space: pre-wrap; margin: .3rem 0; }
  .reply { display: flex; gap: .5rem; } .reply input[type=text] { flex: 1; }
</style>
</head>
<body>
<h1>Twilio sandbox inbox</h1>
${renderInboxList(view)}
<script>${SCRIPT}</script>
</body>
</html>`;
}
