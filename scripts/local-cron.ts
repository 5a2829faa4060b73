// Locally, pg_net is missing, so pg_cron cannot call the dispatch function the way it does on
// Supabase (see migrations …_dispatch_schedule.sql and …_dispatch_fanout.sql). This stands in for
// that one job, and does what it does: every HERALD_DISPATCH_INTERVAL_MS (5 s) it asks
// herald.dispatch_fanout how many dispatcher calls the due backlog needs and POSTs
// /functions/v1/dispatch that many times at once with the service role key, without waiting for
// the calls (each runs until its budget is spent or no work is left).

import postgres from "postgres";

const url = Deno.env.get("HERALD_DISPATCH_URL");
const key = Deno.env.get("SUPABASE_SERVICE_ROLE_KEY");
const dbUrl = Deno.env.get("HERALD_DB_URL");
const interval = Number(Deno.env.get("HERALD_DISPATCH_INTERVAL_MS") ?? "5000");
if (!url || !key || !dbUrl) {
  console.error("local-cron: HERALD_DISPATCH_URL, SUPABASE_SERVICE_ROLE_KEY and HERALD_DB_URL are required");
  Deno.exit(1);
}
if (!Number.isInteger(interval) || interval < 1000 || interval > 3_600_000) {
  console.error(`local-cron: HERALD_DISPATCH_INTERVAL_MS must be a whole number of ms from 1000 to 3600000, not ${interval}`);
  Deno.exit(1);
}

const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => Deno.exit(0));
}

async function dispatchCall(): Promise<void> {
  try {
    const res = await fetch(url!, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: "{}",
    });
    const text = await res.text();
    if (!res.ok) console.error(`local-cron: dispatch answered ${res.status}: ${text}`);
    else console.log(`local-cron: dispatch ${text}`);
  } catch (err) {
    console.error(`local-cron: dispatch unreachable: ${err instanceof Error ? err.message : err}`);
  }
}

console.log(`local-cron: every ${interval} ms, POST ${url} as many times as herald.dispatch_fanout says`);
for (;;) {
  try {
    const [plan] = await sql<{ calls: number; needed: number; running: number; sendable: number }[]>`
      select calls, needed, running, sendable from herald.dispatch_fanout(make_interval(secs => ${interval / 1000}))`;
    if (plan.calls > 0) {
      console.log(
        `local-cron: ${plan.calls} dispatch call(s) at once (${plan.sendable} sendable within a call's budget: ` +
          `${plan.needed} needed, ${plan.running} running)`,
      );
    }
    for (let i = 0; i < plan.calls; i++) void dispatchCall();
  } catch (err) {
    console.error(`local-cron: could not ask herald.dispatch_fanout: ${err instanceof Error ? err.message : err}`);
  }
  await new Promise((r) => setTimeout(r, interval));
}
