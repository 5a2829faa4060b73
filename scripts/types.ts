// npm run types: regenerates supabase/functions/_shared/database.types.ts from the migrations,
// on a throwaway cluster so it needs no running stack.

import { generateTypes, TYPES_FILE } from "./lib/types.ts";
import { withMigratedDatabase } from "./lib/stack.ts";

await withMigratedDatabase("types", 54352, async (dbUrl) => {
  await Deno.writeTextFile(TYPES_FILE, await generateTypes(dbUrl));
  console.log(`wrote ${TYPES_FILE}`);
});
