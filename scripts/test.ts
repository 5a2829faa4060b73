// npm test: a throwaway stack (own cluster and ports, so a running dev stack is untouched),
// then every check Herald has, and one closing line `N passed, M failed`.
//
//   pgTAP      supabase/tests/database/*.sql through pg_prove, one count per assertion
//   Deno       Deno.test files under supabase/functions, sandbox/ and tests/, against the served stack
//   lint       supabase db lint --fail-on error (plpgsql_check)
//   advisors   supabase db advisors: any ERROR-level finding fails
//   types      the committed database types equal freshly generated ones
//   schema     the committed supabase/schema.sql equals a fresh dump of the migrated schema
//   layout     one <migration stem>.test.sql per migration, naming every function the migration creates
//   deno check / deno lint over all TypeScript
//   README     every marked example of README.md, run in order on a fresh stack of its own and
//              compared with the output the README shows (scripts/lib/readme-examples.ts); its
//              code includes equal their source regions; every function error code and
//              constraint message is in it
//
// Filters: `npm test -- pgtap|deno|static|readme` runs one group; `npm test -- deno FILE…` and
// `npm test -- pgtap FILE…` run those test files only (paths from the repository's root).

import { DENO_BIN, DENO_CONFIG, LOCAL_TWILIO, ROOT, type StackPorts, SUPABASE_BIN, TEST_PORTS } from "./lib/config.ts";
import { localKeys, Stack, stopServices, type ServiceProcess } from "./lib/stack.ts";
import { portInUse, reserveStackPorts, run } from "./lib/proc.ts";
import { generateTypes, TYPES_FILE } from "./lib/types.ts";
import { dumpSchema, SCHEMA_FILE } from "./lib/schema.ts";
import { CHROMIUM, ensureDebianPackages, PGBOUNCER } from "./lib/debian.ts";
import { testLayout, untestedFunctions } from "./lib/test-layout.ts";
import { functionErrorCodes, parseReadme, runExamples, staleIncludes } from "./lib/readme-examples.ts";

interface Tally {
  passed: number;
  failed: number;
}
const total: Tally = { passed: 0, failed: 0 };
const failures: string[] = [];
const only = Deno.args[0];

function record(stage: string, t: Tally, detail = "") {
  total.passed += t.passed;
  total.failed += t.failed;
  if (t.failed) failures.push(stage);
  console.log(`\n[${stage}] ${t.passed} passed, ${t.failed} failed${detail ? ` — ${detail}` : ""}`);
}

function check(stage: string, ok: boolean, output = "") {
  if (!ok && output) console.log(output.trimEnd());
  record(stage, ok ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 });
}

const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
const supabaseEnv = { SUPABASE_TELEMETRY_DISABLED: "1", PGSSLMODE: "disable" };

async function pgtap(dbUrl: string, files: string[]) {
  // Chosen files run after the harness file that defines the tests.* helpers.
  const dir = `${ROOT}/supabase/tests/database`;
  const paths = files.length > 0 ? [`${dir}/000-setup-tests-hooks.sql`, ...files.map((f) => `${ROOT}/${f}`)] : ["-r", dir];
  const r = await run("pg_prove", ["-d", dbUrl, "--ext", ".sql", "-v", ...paths], { check: false });
  const lines = r.stdout.split("\n");
  const ok = lines.filter((l) => /^\s*ok \d+/.test(l)).length;
  const notOk = lines.filter((l) => /^\s*not ok \d+/.test(l)).length;
  const failedOut = lines.filter((l) => /^\s*not ok \d+|^#\s|Dubious|Parse errors|Bad plan|Failed/.test(l));
  if (r.code !== 0 || notOk) {
    console.log(failedOut.join("\n"));
    console.log(r.stderr.trimEnd());
  }
  console.log(lines.filter((l) => /^(Files=|Result:)/.test(l)).join("\n"));
  // A file that dies mid-way (bad plan, SQL error) fails even if no assertion printed "not ok".
  record("pgTAP", { passed: ok, failed: notOk + (r.code !== 0 && notOk === 0 ? 1 : 0) });
}

async function denoTests(env: Record<string, string>, files: string[]) {
  const dirs = files.length > 0 ? files : ["supabase/functions", "sandbox", "tests", "docs"].filter((d) => {
    try {
      return Deno.statSync(`${ROOT}/${d}`).isDirectory;
    } catch {
      return false;
    }
  });
  const r = await run(DENO_BIN, ["test", "-A", "--config", DENO_CONFIG, "--no-prompt", ...dirs], {
    cwd: ROOT,
    env,
    check: false,
  });
  const out = (r.stdout + r.stderr).replaceAll(ANSI_ESCAPE, "");
  const m = /(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/.exec(out);
  if (r.code !== 0) {
    // Deno prints each failure's detail between " ERRORS " and " FAILURES ": all of it, then the tail.
    const errors = out.indexOf(" ERRORS ");
    console.log((errors >= 0 ? out.slice(errors) : out.split("\n").slice(-80).join("\n")).split("\n").slice(0, 400).join("\n"));
  }
  const t = m ? { passed: Number(m[1]), failed: Number(m[2]) } : { passed: 0, failed: 0 };
  if (r.code !== 0 && t.failed === 0) t.failed = 1;
  record("Deno tests", t);
}

async function staticChecks(dbUrl: string) {
  const lint = await run(SUPABASE_BIN, ["db", "lint", `--remote=${dbUrl}`, "--schema", "public,herald", "--fail-on", "error", "--yes"], {
    cwd: ROOT,
    env: supabaseEnv,
    check: false,
  });
  check("supabase db lint", lint.code === 0, lint.stdout + lint.stderr);

  const adv = await run(SUPABASE_BIN, ["db", "advisors", `--remote=${dbUrl}`, "--level", "warn", "--yes"], {
    cwd: ROOT,
    env: supabaseEnv,
    check: false,
  });
  const start = adv.stdout.indexOf("[");
  let findings: { name: string; level: string; detail: string }[] = [];
  try {
    findings = start >= 0 ? JSON.parse(adv.stdout.slice(start)) : [];
  } catch {
    findings = [{ name: "unparsable", level: "ERROR", detail: adv.stdout + adv.stderr }];
  }
  for (const f of findings) console.log(`  advisor ${f.level} ${f.name}: ${f.detail}`);
  check("supabase db advisors (no ERROR)", adv.code === 0 && !findings.some((f) => f.level === "ERROR"), adv.stderr);

  const fresh = await generateTypes(dbUrl);
  const committed = await Deno.readTextFile(TYPES_FILE).catch(() => "");
  check("database types are current", fresh === committed, "supabase/functions/_shared/database.types.ts is stale: run `npm run types` and commit it");

  const schema = await dumpSchema(dbUrl);
  const committedSchema = await Deno.readTextFile(SCHEMA_FILE).catch(() => "");
  check("schema snapshot is current", schema === committedSchema, "supabase/schema.sql is stale: run `npm run schema` and commit it");

  const tsFiles = ["scripts", "supabase/functions", "sandbox", "tests", "bench", "docs"].filter((d) => {
    try {
      return Deno.statSync(`${ROOT}/${d}`).isDirectory;
    } catch {
      return false;
    }
  });
  const dc = await run(DENO_BIN, ["check", "--config", DENO_CONFIG, ...tsFiles], { cwd: ROOT, check: false });
  check("deno check", dc.code === 0, dc.stdout + dc.stderr);
  const dl = await run(DENO_BIN, ["lint", "--config", DENO_CONFIG, ...tsFiles], { cwd: ROOT, check: false });
  check("deno lint", dl.code === 0, dl.stdout + dl.stderr);

  const layout = await testLayout();
  check("pgTAP files mirror the migrations", layout.length === 0, layout.join("\n"));
  const untested = await untestedFunctions(dbUrl);
  check("every function is named by its migration's pgTAP file", untested.length === 0, `untested functions:\n  ${untested.join("\n  ")}`);
}

async function readmeExamples() {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const { examples, includes } = parseReadme(readme);
  const stale = await staleIncludes(includes);
  check("README: code includes equal their source regions", stale.length === 0, stale.join("\n"));
  const undocumented = (await functionErrorCodes()).filter((code) => !readme.includes(`\`${code}\``));
  check("README: every function error code is documented", undocumented.length === 0,
    `not in README.md's error tables: ${undocumented.join(", ")}`);

  // A fresh stack of its own: the examples tell a story from an empty demo workspace.
  const ports = await freePorts(5);
  const readmeStack = new Stack(ports, `/var/tmp/herald/test-${Deno.pid}-readme`, true);
  let readmeServices: ServiceProcess[] = [];
  try {
    await readmeStack.upDatabase(() => {});
    const messages = (await readmeStack.cluster.psql(`
      select string_agg(k.conname || E'\t' || obj_description(k.oid, 'pg_constraint'), E'\n' order by k.conname)
      from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and k.contype = 'c' and obj_description(k.oid, 'pg_constraint') is not null`))
      .split("\n").filter(Boolean).map((l) => l.split("\t"));
    const unlisted = messages.filter(([name, message]) => !readme.includes(`| \`${name}\` | ${message} |`));
    check("README: every constraint message is listed", unlisted.length === 0,
      `not listed as | \`name\` | message | in README.md: ${unlisted.map(([n]) => n).join(", ")}`);

    readmeServices = await readmeStack.startServices(await localKeys(), { logFile: `${ROOT}/.local/test-readme-services.log` });
    const results = await runExamples(examples, ports, readmeStack.cluster.url);
    for (const r of results) {
      console.log(`  ${r.ok ? "ok  " : "FAIL"} ${r.name} (README.md:${r.line})${r.ok ? "" : `\n    ${r.detail.replaceAll("\n", "\n    ")}`}`);
    }
    const failed = results.filter((r) => !r.ok).length;
    record("README examples", { passed: results.length - failed, failed }, `${results.length} examples`);
  } finally {
    await stopServices(readmeServices);
    await readmeStack.cluster.destroy();
  }
}

// The usual test ports, or the next free block, so two runs (or a run beside a dev stack) coexist.
// `offset` 5 takes the README stack's block between the main stacks' blocks, away from the ports
// another run's main stack may be claiming at the same moment.
async function freePorts(offset = 0): Promise<StackPorts> {
  for (let k = 0; k < 20; k++) {
    const base = offset + 10 * k;
    const ports = { db: TEST_PORTS.db + base, functions: TEST_PORTS.functions + base, sandbox: TEST_PORTS.sandbox + base };
    const taken = await Promise.all(Object.values(ports).map((p) => portInUse(p)));
    if (!taken.some(Boolean)) return ports;
  }
  throw new Error(`no free block of test ports from ${TEST_PORTS.sandbox + offset} upwards`);
}

await reserveStackPorts();
const stack = new Stack(await freePorts(), `/var/tmp/herald/test-${Deno.pid}`, true);
let services: ServiceProcess[] = [];
const started = Date.now();
try {
  console.log("herald test: starting a throwaway stack");
  await stack.upDatabase((s) => console.log(`herald test: ${s}`));
  await stack.cluster.psql("create extension if not exists pgtap with schema extensions");
  const keys = await localKeys();
  const env = {
    ...stack.functionEnv(keys),
    HERALD_TEST_DB_URL: stack.cluster.url,
    HERALD_TEST_FUNCTIONS_URL: stack.urls.functions,
    HERALD_TEST_SANDBOX_URL: stack.urls.sandbox,
    HERALD_TEST_SERVICE_ROLE_KEY: keys.serviceRole,
    HERALD_TEST_ANON_KEY: keys.anon,
    TWILIO_ACCOUNT_SID: LOCAL_TWILIO.accountSid,
  };
  if (!only || only === "pgtap") await pgtap(stack.cluster.url, only ? Deno.args.slice(1) : []);
  if (!only || only === "deno") {
    for (const need of [CHROMIUM, PGBOUNCER]) await ensureDebianPackages(need, (s) => console.log(`herald test: ${s}`));
    services = await stack.startServices(keys, { logFile: `${ROOT}/.local/test-services.log` });
    await denoTests(env, Deno.args.slice(1));
  }
  if (!only || only === "static") await staticChecks(stack.cluster.url);
  if (!only || only === "readme") await readmeExamples();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  total.failed += 1;
  failures.push("harness");
} finally {
  await stopServices(services);
  await stack.cluster.destroy();
}
console.log(`\nherald test: ${((Date.now() - started) / 1000).toFixed(1)} s${failures.length ? `; failing: ${failures.join(", ")}` : ""}`);
console.log(`${total.passed} passed, ${total.failed} failed`);
Deno.exit(total.failed ? 1 : 0);
