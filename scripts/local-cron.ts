// Locally, pg_net is missing, so pg_cron cannot call the dispatch function the way it does on
// Supabase (see migration …_dispatch_schedule.sql). This stands in for that one job: it POSTs
// /functions/v1/dispatch with the service role key every HERALD_DISPATCH_INTERVAL_MS (5 s).

const url = Deno.env.get("HERALD_DISPATCH_URL");
const key = Deno.env.get("SUPABASE_SERVICE_ROLE_KEY");
const interval = Number(Deno.env.get("HERALD_DISPATCH_INTERVAL_MS") ?? "5000");
if (!url || !key) {
  console.error("local-cron: HERALD_DISPATCH_URL and SUPABASE_SERVICE_ROLE_KEY are required");
  Deno.exit(1);
}

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    stopping = true;
    Deno.exit(0);
  });
}

console.log(`local-cron: POST ${url} every ${interval} ms`);
while (!stopping) {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: "{}",
    });
    const text = await res.text();
    if (!res.ok) console.error(`local-cron: dispatch answered ${res.status}: ${text}`);
    else if (!/"claimed":0[,}]/.test(text)) console.log(`local-cron: dispatch ${text}`);
  } catch (err) {
    console.error(`local-cron: dispatch unreachable: ${err instanceof Error ? err.message : err}`);
  }
  await new Promise((r) => setTimeout(r, interval));
}
