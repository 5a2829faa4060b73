// _shared/http.ts: the one input parser names every field that failed and what is wrong with it.
// Each function's own test proves the same over HTTP; this covers the shapes no function has yet.

import assert from "node:assert/strict";
import { z } from "zod";
import { HttpError, parseInput, readJsonBody, readQuery } from "./http.ts";

const Body = z.object({
  contact_id: z.string().uuid(),
  channel: z.enum(["sms", "whatsapp"]),
  name: z.string().min(2).max(3).optional(),
  limit: z.number().int().min(1).max(10).optional(),
  nested: z.object({ key: z.string() }).optional(),
  tags: z.array(z.string()).optional(),
}).strict();

function refusal(fn: () => unknown): { status: number; code: string; message: string } {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof HttpError, String(err));
    return { status: err.status, code: err.code, message: err.message };
  }
  throw new Error("expected a refusal");
}

Deno.test("parseInput: each field that failed, by its path, in words", () => {
  const id = crypto.randomUUID();
  const cases: Array<[unknown, string]> = [
    [{}, "contact_id: required; channel: required"],
    [undefined, "body: required"],
    [null, "body: expected object, received null"],
    [{ contact_id: "x", channel: "fax" }, "contact_id: not a valid uuid; channel: must be one of sms, whatsapp"],
    [{ contact_id: id, channel: "sms", name: "a", limit: 0 }, "name: must be at least 2 characters; limit: must be at least 1"],
    [{ contact_id: id, channel: "sms", name: "abcd", limit: 11 }, "name: must be at most 3 characters; limit: must be at most 10"],
    [{ contact_id: id, channel: "sms", limit: 2.5 }, "limit: must be an integer"],
    [{ contact_id: id, channel: "sms", nested: {}, tags: ["a", 1] }, "nested.key: required; tags.1: expected string, received number"],
    [{ contact_id: id, channel: "sms", a: 1, b: 2 }, "a: unknown field; b: unknown field"],
  ];
  for (const [input, message] of cases) {
    assert.deepEqual(refusal(() => parseInput(Body, input, "invalid_body")), { status: 400, code: "invalid_body", message });
  }
  assert.deepEqual(parseInput(Body, { contact_id: id, channel: "sms" }, "invalid_body"), { contact_id: id, channel: "sms" });
});

Deno.test("readJsonBody: an empty body is absent unless a stand-in is given; bad JSON is named", async () => {
  const post = (body: string) => new Request("http://x/f", { method: "POST", body });
  const Optional = z.object({ limit: z.number().optional() }).strict();
  await assert.rejects(readJsonBody(post(""), Optional), { status: 400, message: "body: required" });
  assert.deepEqual(await readJsonBody(post(" "), Optional, { empty: {} }), {});
  assert.deepEqual(await readJsonBody(post('{"limit":3}'), Optional, { empty: {} }), { limit: 3 });
  await assert.rejects(readJsonBody(post("{"), Optional), { status: 400, code: "invalid_body", message: "body: not valid JSON" });
});

Deno.test("readQuery: query parameters, refused as invalid_query", () => {
  const Query = z.object({ from: z.string().datetime({ offset: true }).optional() }).strict();
  assert.deepEqual(readQuery(new Request("http://x/f?from=2026-01-01T00:00:00Z"), Query), { from: "2026-01-01T00:00:00Z" });
  assert.deepEqual(refusal(() => readQuery(new Request("http://x/f?from=soon&x=1"), Query)), {
    status: 400,
    code: "invalid_query",
    message: "from: not a valid datetime; x: unknown field",
  });
});
