// GET /functions/v1/health: the process is up and the database answers a real query.

import { json } from "../_shared/http.ts";
import { db } from "../_shared/db.ts";

Deno.serve(async () => {
  try {
    const [row] = await db()`select 1 as one`;
    return json({ ok: true, db: row.one === 1 });
  } catch (err) {
    console.error("health: database check failed", err);
    return json({ ok: false, db: false }, 503);
  }
});
