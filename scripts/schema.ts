// npm run schema: regenerates supabase/schema.sql, the pg_dump snapshot of what the migrations
// build, on a throwaway cluster so it needs no running stack.

import { dumpSchema, SCHEMA_FILE } from "./lib/schema.ts";
import { withMigratedDatabase } from "./lib/stack.ts";

await withMigratedDatabase("schema", 54362, async (dbUrl) => {
  await Deno.writeTextFile(SCHEMA_FILE, await dumpSchema(dbUrl));
  console.log(`wrote ${SCHEMA_FILE}`);
});
