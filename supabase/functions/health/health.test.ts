import assert from "node:assert/strict";

const functionsUrl = Deno.env.get("HERALD_TEST_FUNCTIONS_URL") ?? "http://127.0.0.1:54321/functions/v1";

Deno.test("health answers ok after a real database query, over HTTP", async () => {
  const res = await fetch(`${functionsUrl}/health`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true, db: true });
});

Deno.test("an unknown function path is a 404 with the JSON error shape", async () => {
  const res = await fetch(`${functionsUrl}/no-such-function`);
  assert.equal(res.status, 404);
  const body = await res.json();
  assert.equal(body.error.code, "not_found");
});
