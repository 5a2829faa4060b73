// _shared/batcher.ts: how calls are gathered into batches, and what a failed batch does. The
// dispatcher's use of it runs against the database in dispatch.test.ts.

import assert from "node:assert/strict";
import { Batcher } from "./batcher.ts";

Deno.test("calls made in the same turn go in one batch; calls made while it runs, in the next", async () => {
  const batches: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const b = new Batcher<number, number>(async (xs) => {
    batches.push(xs);
    if (batches.length === 1) await gate;
    return xs.map((x) => x * 10);
  }, { maxSize: 100 });
  const first = [1, 2, 3].map((x) => b.add(x));
  await new Promise((r) => setTimeout(r, 5));
  const second = [4, 5].map((x) => b.add(x));
  release();
  assert.deepEqual(await Promise.all([...first, ...second]), [10, 20, 30, 40, 50]);
  assert.deepEqual(batches, [[1, 2, 3], [4, 5]]);
});

Deno.test("a batch takes at most maxSize items; the rest follow in order", async () => {
  const batches: number[][] = [];
  const b = new Batcher<number, number>((xs) => {
    batches.push(xs);
    return Promise.resolve(xs);
  }, { maxSize: 2 });
  assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map((x) => b.add(x))), [1, 2, 3, 4, 5]);
  assert.deepEqual(batches, [[1, 2], [3, 4], [5]]);
});

Deno.test("a failed batch is tried an item at a time: only the bad item fails", async () => {
  const b = new Batcher<number, number>((xs) => {
    if (xs.includes(13)) return Promise.reject(new Error("batch refused"));
    return Promise.resolve(xs);
  }, {
    maxSize: 10,
    single: (x) => x === 13 ? Promise.reject(new Error(`item ${x} refused`)) : Promise.resolve(-x),
  });
  const results = await Promise.allSettled([12, 13, 14].map((x) => b.add(x)));
  assert.deepEqual(results.map((r) => r.status === "fulfilled" ? r.value : (r.reason as Error).message), [-12, "item 13 refused", -14]);
  assert.deepEqual(await b.add(15), 15, "and the batcher goes on");
});

Deno.test("without a single-item path every item of a failed batch gets the error, and a short answer is an error", async () => {
  const failing = new Batcher<number, number>(() => Promise.reject(new Error("down")), { maxSize: 10 });
  const all = await Promise.allSettled([1, 2].map((x) => failing.add(x)));
  assert.deepEqual(all.map((r) => r.status), ["rejected", "rejected"]);
  const short = new Batcher<number, number>((xs) => Promise.resolve(xs.slice(1)), { maxSize: 10 });
  await assert.rejects(() => short.add(1), /a batch of 1 got 0 results/);
});
