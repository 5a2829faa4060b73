// TwiML answers to Twilio's inbound-message webhook: empty (Twilio's own default replies stay in
// charge), or one <Message> that Twilio sends back to the person who wrote.

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

/** Characters XML 1.0 cannot carry at all, even escaped: Twilio would fail to parse the answer. */
const NOT_XML = /[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/** Text as XML character data: markup escaped, characters XML cannot hold dropped. */
export function xmlText(text: string): string {
  return text.replace(NOT_XML, "").replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** The TwiML document: `<Response/>` with one `<Message>` when there is a reply, empty otherwise. */
export function twiml(reply: string | null): string {
  return `${XML_DECLARATION}<Response>${reply ? `<Message>${xmlText(reply)}</Message>` : ""}</Response>`;
}

export function twimlResponse(reply: string | null): Response {
  return new Response(twiml(reply), { headers: { "content-type": "text/xml" } });
}
