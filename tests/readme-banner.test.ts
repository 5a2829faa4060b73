import assert from "node:assert/strict";
import { DEV_PORTS, ROOT } from "@herald/scripts/lib/config.ts";
import { Stack, stackBanner } from "@herald/scripts/lib/stack.ts";

// The README shows what `npm start` prints once the stack is up; this keeps the two the same
// (keys shortened and the data directory a sample path, as the README prints them).

Deno.test("README: the sample banner is what npm start prints", async () => {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const shown = /\nHerald is running\.\n[\s\S]*?\nPress Ctrl-C to stop\.\n/.exec(readme);
  assert.ok(shown, "the README shows the banner");
  const key = "eyJhbGciOiJIUzI1NiIs…";
  const urls = new Stack(DEV_PORTS, "/not/used", false).urls;
  const printed = `${stackBanner(urls, { anon: key, serviceRole: key, demoUser: key }, "/home/you/herald/.local/stack")}
Press Ctrl-C to stop.
`;
  assert.equal(shown[0].trim(), printed.trim());
});
