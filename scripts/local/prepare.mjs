// npm install's last step: fetch and lay out the npm packages the scripts and functions import,
// once, with one line of progress instead of Deno's line per package (and its colour codes when
// the output is a file or a CI log). Later `npm start` / `npm test` then start without it.
import { spawnSync } from "node:child_process";

const entrypoints = ["scripts/stack.ts", "scripts/test.ts", "bench/run.ts"];
const started = Date.now();
process.stdout.write("herald: preparing the npm packages Herald's scripts and functions use (a minute on a first install)… ");
const r = spawnSync("deno", ["install", "-q", "--config", "supabase/functions/deno.json", "--entrypoint", ...entrypoints], {
  stdio: ["ignore", "ignore", "pipe"],
  env: { ...process.env, NO_COLOR: "1" },
  encoding: "utf8",
});
if (r.status !== 0) {
  process.stdout.write("failed\n");
  process.stderr.write(r.stderr ?? String(r.error));
  process.exit(r.status ?? 1);
}
process.stdout.write(`done in ${Math.round((Date.now() - started) / 1000)} s\n`);
