import assert from "node:assert/strict";
import { MicroBatcher } from "./micro-batcher.ts";

// The batching itself, with an apply function that records the batches it is given and that the
// test releases by hand: what goes alone, what waits, what goes together, what fails together.

/** An apply function whose calls stay open until the test ends them. */
function heldApply() {
  const calls: { items: number[]; end: (err?: Error) => void }[] = [];
  const apply = (items: number[]) =>
    new Promise<string[]>((resolve, reject) => {
      calls.push({ items, end: (err) => (err ? reject(err) : resolve(items.map((i) => `done ${i}`))) });
    });
  return { calls, apply };
}

Deno.test("micro-batcher: a lone item goes at once, alone", async () => {
  const { calls, apply } = heldApply();
  const b = new MicroBatcher(apply, { maxBatch: 10, maxInFlight: 1 });
  const one = b.submit(1);
  assert.deepEqual(calls.map((c) => c.items), [[1]], "applied without waiting for company");
  calls[0].end();
  assert.equal(await one, "done 1");
});

Deno.test("micro-batcher: items arriving while a batch is applied go together next, each with its own result", async () => {
  const { calls, apply } = heldApply();
  const b = new MicroBatcher(apply, { maxBatch: 10, maxInFlight: 1 });
  const first = b.submit(1);
  const later = [2, 3, 4].map((i) => b.submit(i));
  assert.deepEqual(calls.map((c) => c.items), [[1]], "the others wait for the batch in flight");
  calls[0].end();
  assert.equal(await first, "done 1");
  assert.deepEqual(calls.map((c) => c.items), [[1], [2, 3, 4]]);
  calls[1].end();
  assert.deepEqual(await Promise.all(later), ["done 2", "done 3", "done 4"]);
});

Deno.test("micro-batcher: at most maxInFlight calls at once, at most maxBatch items each", async () => {
  const { calls, apply } = heldApply();
  const b = new MicroBatcher(apply, { maxBatch: 2, maxInFlight: 2 });
  const all = [1, 2, 3, 4, 5, 6, 7].map((i) => b.submit(i));
  assert.deepEqual(calls.map((c) => c.items), [[1], [2]], "two alone, while nothing else was waiting");
  calls[0].end();
  await all[0];
  assert.deepEqual(calls.map((c) => c.items), [[1], [2], [3, 4]]);
  calls[1].end();
  await all[1];
  assert.deepEqual(calls.map((c) => c.items), [[1], [2], [3, 4], [5, 6]]);
  calls[2].end();
  calls[3].end();
  await Promise.all(all.slice(2, 6));
  assert.deepEqual(calls.map((c) => c.items), [[1], [2], [3, 4], [5, 6], [7]]);
  calls[4].end();
  assert.deepEqual(await Promise.all(all), [1, 2, 3, 4, 5, 6, 7].map((i) => `done ${i}`));
});

Deno.test("micro-batcher: a failed call fails every item of its batch, and only those", async () => {
  const { calls, apply } = heldApply();
  const b = new MicroBatcher(apply, { maxBatch: 10, maxInFlight: 1 });
  const first = b.submit(1);
  const batch = [2, 3].map((i) => b.submit(i));
  const settled = Promise.allSettled(batch);
  calls[0].end();
  await first;
  const after = b.submit(4);
  calls[1].end(new Error("database down"));
  for (const r of await settled) {
    assert.equal(r.status, "rejected");
    assert.equal((r as PromiseRejectedResult).reason.message, "database down");
  }
  assert.deepEqual(calls.map((c) => c.items), [[1], [2, 3], [4]], "the next batch still goes");
  calls[2].end();
  assert.equal(await after, "done 4");
});

Deno.test("micro-batcher: an answer that does not match the batch fails it", async () => {
  const b = new MicroBatcher((items: number[]) => Promise.resolve(items.slice(1)), { maxBatch: 10, maxInFlight: 1 });
  await assert.rejects(b.submit(1), /a batch of 1 was answered with 0 results/);
  assert.throws(() => new MicroBatcher(() => Promise.resolve([]), { maxBatch: 0, maxInFlight: 1 }), RangeError);
});
