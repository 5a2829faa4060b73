// npm run types: regenerates supabase/functions/_shared/database.types.ts from the migrations,
// on a throwaway cluster so it needs no running stack.

import { generateTypes, TYPES_FILE } from "./lib/types.ts";
import { Stack } from "./lib/stack.ts";
import { firstFreePort } from "./lib/proc.ts";

const stack = new Stack({ db: await firstFreePort(54352), functions: 0, sandbox: 0 }, `/var/tmp/herald/types-${Deno.pid}`, true);
try {
  await stack.upDatabase(() => {});
  await Deno.writeTextFile(TYPES_FILE, await generateTypes(stack.cluster.url));
  console.log(`wrote ${TYPES_FILE}`);
} finally {
  await stack.cluster.destroy();
}
