// docs/deletion-rules.md must describe the schema the migrations build: npm test renders it again
// from the test cluster's catalog (HERALD_TEST_DB_URL, every migration applied) and compares.

import assert from "node:assert/strict";
import postgres from "postgres";
import { checkDeletionDocs, STALE_MESSAGE } from "@herald/scripts/deletion-docs.ts";

const dbUrl = Deno.env.get("HERALD_TEST_DB_URL");

Deno.test({
  name: "docs/deletion-rules.md matches the live catalog",
  // Without the test cluster there is no catalog to compare with; npm test always sets it.
  ignore: !dbUrl,
  fn: async () => {
    const sql = postgres(dbUrl!, { max: 1, onnotice: () => {} });
    try {
      const r = await checkDeletionDocs(sql);
      const d = r.firstDifference;
      assert.ok(
        r.current,
        d
          ? `${STALE_MESSAGE}\n  first difference at line ${d.line}\n  committed: ${d.committed}\n  rendered:  ${d.rendered}`
          : STALE_MESSAGE,
      );
    } finally {
      await sql.end({ timeout: 1 });
    }
  },
});
