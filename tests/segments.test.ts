// Herald counts segments in SQL (herald.message_segments, behind messages.segments) and the
// sandbox counts them in TypeScript (countSegments, what it reports as num_segments): the two must
// agree on every body, or pacing by segments and the sandbox's bills disagree. Random bodies
// around the part boundaries, from every kind of character, through both.

import assert from "node:assert/strict";
import { countSegments, encodingOf } from "@herald/sandbox/behaviour.ts";
import { connect } from "./support.ts";

const KINDS = [
  "abcdefghijklmnopqrstuvwxyz0123456789 .,!?@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ\n\r", // GSM basic
  "^{}\\[~]|€\f", // GSM extension: two septets
  "łżçñ–“”’ŁЖ中", // outside GSM, one UTF-16 unit
  "😀🎉👍🏽𝄞", // outside the BMP: surrogate pairs
];

/** A deterministic generator (mulberry32), so a failure names a seed that replays it. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function body(next: () => number): string {
  // Lengths cluster around the boundaries: one part, two parts, n × 153 or n × 67.
  const targets = [70, 134, 160, 201, 306, 459, 612, 1071, 1600];
  const length = Math.max(1, targets[Math.floor(next() * targets.length)] + Math.floor(next() * 7) - 3);
  // Mostly one kind, with a few characters of another: where the encoding flips and where a
  // two-unit character lands on a part boundary.
  const main = [...KINDS[Math.floor(next() * 2)]];
  const other = [...KINDS[Math.floor(next() * KINDS.length)]];
  const rare = next() * 0.05;
  let out = "";
  for (const _ of Array(length)) {
    const pool = next() < rare ? other : main;
    out += pool[Math.floor(next() * pool.length)];
  }
  // Kept within the 1,600 characters a message may have.
  return [...out].slice(0, 1600).join("");
}

Deno.test("herald.message_segments and the sandbox's countSegments agree on 3,000 bodies", async () => {
  const seed = Number(Deno.env.get("HERALD_SEGMENTS_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  const next = random(seed);
  const bodies = Array.from({ length: 3000 }, () => body(next));
  const sql = connect(1);
  try {
    const rows = await sql<{ i: number; segments: number; encoding: string }[]>`
      select b.i::int, s.segments, s.encoding
      from unnest(${bodies}::text[]) with ordinality b(body, i)
      cross join lateral herald.message_segments(b.body) s
      order by b.i`;
    assert.equal(rows.length, bodies.length);
    const differ = rows.filter((r) =>
      r.segments !== countSegments(bodies[r.i - 1]) || r.encoding !== encodingOf(bodies[r.i - 1])
    );
    assert.deepEqual(
      differ.slice(0, 3).map((r) => ({
        body: bodies[r.i - 1],
        sql: [r.segments, r.encoding],
        sandbox: [countSegments(bodies[r.i - 1]), encodingOf(bodies[r.i - 1])],
      })),
      [],
      `bodies on which they differ (replay with HERALD_SEGMENTS_SEED=${seed})`,
    );
    const multi = rows.filter((r) => r.segments > 1).length;
    assert.ok(multi > 1000 && rows.some((r) => r.encoding === "UCS-2") && rows.some((r) => r.encoding === "GSM-7"),
      "the bodies cover both encodings and many multi-part messages");
  } finally {
    await sql.end();
  }
});
