// docs/provider-errors.md must be the table the database classes Twilio's errors by: npm test
// renders it again from the test cluster (HERALD_TEST_DB_URL, every migration applied) and compares.

import assert from "node:assert/strict";
import postgres from "postgres";
import { PROVIDER_ERRORS_STALE, providerErrorsDocsCurrent, renderProviderErrorsMarkdown } from "@herald/scripts/provider-errors-docs.ts";

const dbUrl = Deno.env.get("HERALD_TEST_DB_URL");

Deno.test({
  name: "docs/provider-errors.md matches herald.provider_error_classes",
  // Without the test cluster there is no table to compare with; npm test always sets it.
  ignore: !dbUrl,
  fn: async () => {
    const sql = postgres(dbUrl!, { max: 1, onnotice: () => {} });
    try {
      assert.ok(await providerErrorsDocsCurrent(sql), PROVIDER_ERRORS_STALE);
    } finally {
      await sql.end({ timeout: 1 });
    }
  },
});

Deno.test("each class gets its section, each code its row, and a pipe in a text cannot break the table", () => {
  const md = renderProviderErrorsMarkdown([
    { code: 21610, title: "Unsubscribed", stage: "api", class: "permanent", action: "Fails | opts out.", message: "Ask them\nto reply START.", doc_url: "https://www.twilio.com/docs/api/errors/21610" },
    { code: 20429, title: "Too many requests", stage: "api", class: "retry_free", action: "Again.", message: "Nothing.", doc_url: "https://www.twilio.com/docs/api/errors/20429" },
  ]);
  const sections = [...md.matchAll(/^## (\w+)$/gm)].map((m) => m[1]);
  assert.deepEqual(sections, ["retry_free", "transient", "defer_next_day", "permanent"]);
  const permanent = md.slice(md.indexOf("## permanent"));
  assert.match(permanent, /\| \[21610\]\(https:\/\/www\.twilio\.com\/docs\/api\/errors\/21610\) \| Unsubscribed \| api \| Fails \\\| opts out\. \| Ask them to reply START\. \|/);
  assert.doesNotMatch(permanent, /20429/);
});
