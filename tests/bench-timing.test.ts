// How `npm run bench` counts runs (bench/lib.ts timeCase): a warm-up is left out of the median but
// never hidden, since the case's note gives its time; a case without one counts every run.

import assert from "node:assert/strict";
import { formatMs, timeCase } from "../bench/lib.ts";

/** A case whose run i takes `ms[i]`, recording the run numbers it was called with. */
function fakeCase(ms: number[]) {
  const calls: number[] = [];
  return { calls, once: (i: number) => (calls.push(i), Promise.resolve({ ms: ms[i] })) };
}

Deno.test("a warm-up is run first, left out of the samples, and named with its time in the note", async () => {
  const c = fakeCase([2400, 900, 1000, 1100]);
  const line = await timeCase("case", 3, c.once, { warmUp: true, line: { note: "what it does" } });
  assert.deepEqual(c.calls, [0, 1, 2, 3]);
  assert.deepEqual(line.samples, [900, 1000, 1100]);
  assert.equal(line.note, `what it does; after 1 warm-up run, not counted (${formatMs(2400)})`);
});

Deno.test("without a warm-up every run counts and the note is the case's own", async () => {
  const c = fakeCase([2400, 900, 1000]);
  const line = await timeCase("case", 3, c.once, { line: { note: "what it does" } });
  assert.deepEqual(c.calls, [0, 1, 2]);
  assert.deepEqual(line.samples, [2400, 900, 1000]);
  assert.equal(line.note, "what it does");
});

Deno.test("a warm-up slower than slowMs is the only sample, and the note says why", async () => {
  const c = fakeCase([5000, 900]);
  const line = await timeCase("case", 3, c.once, { warmUp: true, slowMs: 4000 });
  assert.deepEqual(c.calls, [0]);
  assert.deepEqual(line.samples, [5000]);
  assert.equal(line.note, `1 run only: the first took over ${formatMs(4000)}`);
});
