// _shared/twiml.ts: what the inbound webhook answers is well-formed TwiML whatever the reply holds.
// The served function's answers are proven over HTTP in tests/inbound-keywords.test.ts.

import assert from "node:assert/strict";
import { twiml, xmlText } from "./twiml.ts";

Deno.test("twiml: no reply is an empty Response; a reply is one Message", () => {
  assert.equal(twiml(null), '<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
  assert.equal(twiml(""), '<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
  assert.equal(
    twiml("Acme: call 555-0100. Reply STOP to opt out."),
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Acme: call 555-0100. Reply STOP to opt out.</Message></Response>',
  );
});

Deno.test("xmlText: markup is escaped, text XML cannot hold is dropped, the rest kept as written", () => {
  assert.equal(xmlText(`Tom & Jerry's <b>"shop"</b>`), "Tom &amp; Jerry&apos;s &lt;b&gt;&quot;shop&quot;&lt;/b&gt;");
  assert.equal(
    xmlText("</Message><Redirect>https://evil.example</Redirect>"),
    "&lt;/Message&gt;&lt;Redirect&gt;https://evil.example&lt;/Redirect&gt;",
  );
  assert.equal(xmlText("a\u0000b\u0007c\u001Fd\uFFFEe"), "abcde");
  assert.equal(xmlText("línea 1\nlínea 2\t¿ayuda? 😀"), "línea 1\nlínea 2\t¿ayuda? 😀");
});
