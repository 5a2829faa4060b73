// The README's examples, run as a reader would run them, against a fresh stack: `npm test` fails
// when one no longer works or no longer prints what the README shows.
//
// Marking, in README.md (HTML comments: invisible on GitHub):
//
//   <!-- example: NAME -->       before a ```sh or ```sql block: run it
//   <!-- output -->              before a fenced block: what the last example prints; several
//                                output blocks for one example are alternatives (e.g. by day and
//                                by night in the recipient's zone), any one of which must match
//   <!-- include: FILE#REGION --> before a code block: it must equal that `// #region` of FILE
//
// Shell examples run in order in bash (`set -eo pipefail`, from the checkout's root), each seeing
// the variables the earlier ones exported, as in one terminal. SQL examples run in order in one
// psql session, as if pasted into `psql "$DB"`: what one sets (`set role`, `\gset` variables)
// holds for the next. The stack runs on ports of its own, so the local stack's URLs in the
// examples (127.0.0.1:54321, :54322, :54330) are pointed at it before they run.
//
// Output is compared by shape: uuids, timestamps, dates, JWTs, Twilio SIDs and durations are
// placeholders; psql's command tags (INSERT 0 1, SET…), blank lines and column padding are left
// out; JSON is compared as JSON (same keys, same numbers and strings); `…` in an expected line
// matches anything, and a line that is only `…` matches any number of lines.

import { DEV_PORTS, ROOT, type StackPorts } from "./config.ts";

export interface Example {
  name: string;
  lang: "sh" | "sql";
  code: string;
  /** 1-based line of the code block in the README. */
  line: number;
  outputs: string[];
}

export interface Include {
  file: string;
  region: string;
  code: string;
  line: number;
}

interface Fence {
  info: string;
  body: string;
  line: number;
  end: number;
}

function fenceAt(lines: string[], start: number): Fence | null {
  for (let i = start; i < lines.length; i++) {
    if (lines[i].trim() === "") continue;
    const open = /^(\s*)(`{3,})(.*)$/.exec(lines[i]);
    if (!open) return null;
    const body: string[] = [];
    for (let j = i + 1; j < lines.length; j++) {
      if (lines[j].trim() === open[2]) return { info: open[3].trim(), body: body.join("\n"), line: i + 2, end: j };
      body.push(lines[j].slice(open[1].length));
    }
    throw new Error(`README.md:${i + 1}: a code block that never closes`);
  }
  return null;
}

/** The marked examples and includes of a README, in order. */
export function parseReadme(markdown: string): { examples: Example[]; includes: Include[] } {
  const lines = markdown.split("\n");
  const examples: Example[] = [];
  const includes: Include[] = [];
  const names = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const marker = /^\s*<!--\s*(example|output|include)(?::\s*(.*?))?\s*-->\s*$/.exec(lines[i]);
    if (!marker) continue;
    const fence = fenceAt(lines, i + 1);
    if (!fence) throw new Error(`README.md:${i + 1}: <!-- ${marker[1]} --> is not followed by a code block`);
    const [, kind, arg = ""] = marker;
    if (kind === "example") {
      const lang = fence.info.split(/\s+/)[0];
      if (lang !== "sh" && lang !== "sql") throw new Error(`README.md:${i + 1}: example ${arg} is not a sh or sql block`);
      if (!arg || names.has(arg)) throw new Error(`README.md:${i + 1}: each example needs a name of its own (${arg})`);
      names.add(arg);
      examples.push({ name: arg, lang, code: fence.body, line: fence.line, outputs: [] });
    } else if (kind === "output") {
      const last = examples.at(-1);
      if (!last) throw new Error(`README.md:${i + 1}: an output before any example`);
      last.outputs.push(fence.body);
    } else {
      const [file, region] = arg.split("#");
      if (!file || !region) throw new Error(`README.md:${i + 1}: include needs FILE#REGION`);
      includes.push({ file, region, code: fence.body, line: fence.line });
    }
    i = fence.end;
  }
  return { examples, includes };
}

// ---- shapes ------------------------------------------------------------------------------------

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, "g");
const PSQL_TAG = /^(SET|RESET|BEGIN|COMMIT|ROLLBACK|DO|GRANT|REVOKE|INSERT \d+ \d+|UPDATE \d+|DELETE \d+|SELECT \d+|COPY \d+|(CREATE|ALTER|DROP|COMMENT) [A-Z ]+)$/;
const PLACEHOLDERS: [RegExp, string][] = [
  [/eyJ[\w-]+\.[\w-]+\.[\w-]+/g, "<jwt>"],
  [/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "<uuid>"],
  [/\b(SM|MM|AC|HX)[0-9a-f]{32}\b/g, "<sid>"],
  [/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?/g, "<time>"],
  [/\d{4}-\d{2}-\d{2}/g, "<date>"],
  [/\b\d+(\.\d+)?\s?(ms|s)\b/g, "<duration>"],
];

function placeholders(s: string): string {
  return PLACEHOLDERS.reduce((acc, [re, to]) => acc.replace(re, to), s);
}

/** The lines of an output as compared: placeholders in, padding, blank lines and psql's tags out. */
export function shapeLines(text: string): string[] {
  return text.replace(ANSI, "").split(/\r?\n/)
    .map((l) => placeholders(l).replace(/\s+/g, " ").trim())
    .filter((l) => l !== "" && !PSQL_TAG.test(l))
    .map((l) => /^[-+ ]+$/.test(l) && l.includes("-") ? "---" : l.replace(/ ?\| ?/g, "|"));
}

function lineMatches(expected: string, actual: string): boolean {
  if (!expected.includes("…")) return expected === actual;
  const re = expected.split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  return new RegExp(`^${re}$`).test(actual);
}

function linesMatch(expected: string[], actual: string[]): boolean {
  if (expected.length === 0) return actual.length === 0;
  const [head, ...rest] = expected;
  if (head === "…") return actual.some((_, k) => linesMatch(rest, actual.slice(k))) || linesMatch(rest, []);
  return actual.length > 0 && lineMatches(head, actual[0]) && linesMatch(rest, actual.slice(1));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Where two JSON values differ in shape, or null: same keys, same numbers, same strings (as shapes). */
function jsonDifference(expected: unknown, actual: unknown, path = "$"): string | null {
  if (typeof expected === "string" && typeof actual === "string") {
    return lineMatches(placeholders(expected), placeholders(actual)) ? null : `${path}: "${actual}" where "${expected}"`;
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (expected.length !== actual.length) return `${path}: ${actual.length} items where ${expected.length}`;
    for (let k = 0; k < expected.length; k++) {
      const d = jsonDifference(expected[k], actual[k], `${path}[${k}]`);
      if (d) return d;
    }
    return null;
  }
  if (expected && actual && typeof expected === "object" && typeof actual === "object" && !Array.isArray(expected) && !Array.isArray(actual)) {
    const e = expected as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    const keys = (o: Record<string, unknown>) => Object.keys(o).sort().join(", ");
    if (keys(e) !== keys(a)) return `${path}: keys ${keys(a)} where ${keys(e)}`;
    for (const k of Object.keys(e)) {
      const d = jsonDifference(e[k], a[k], `${path}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return expected === actual ? null : `${path}: ${JSON.stringify(actual)} where ${JSON.stringify(expected)}`;
}

/** Null when `actual` has the shape of `expected`; otherwise what differs. */
export function shapeDifference(expected: string, actual: string): string | null {
  const e = parseJson(expected.trim());
  const a = parseJson(actual.trim());
  if (e !== undefined && typeof e === "object" && a !== undefined) return jsonDifference(e, a);
  const el = shapeLines(expected);
  const al = shapeLines(actual);
  if (linesMatch(el, al)) return null;
  const k = el.findIndex((l, j) => l !== "…" && (j >= al.length || !lineMatches(l, al[j])));
  return k < 0
    ? `${al.length - el.length} more line(s) than shown`
    : `line ${k + 1}: expected\n      ${el[k]}\n    got\n      ${al[k] ?? "(nothing)"}`;
}

// ---- running -----------------------------------------------------------------------------------

/** The local stack's URLs in an example, pointed at the stack it runs against. */
export function pointAt(text: string, ports: StackPorts): string {
  return text.replace(/(127\.0\.0\.1|localhost):(\d+)/g, (all, host, port) => {
    const to = Number(port) === DEV_PORTS.db
      ? ports.db
      : Number(port) === DEV_PORTS.functions
      ? ports.functions
      : Number(port) === DEV_PORTS.sandbox
      ? ports.sandbox
      : null;
    return to === null ? all : `${host}:${to}`;
  });
}

/** One psql session fed block by block, as a reader pastes into `psql "$DB"`. */
class PsqlSession {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #count = 0;

  constructor(dbUrl: string) {
    // stderr into stdout, so errors appear where the reader sees them (psql flushes each result).
    this.#child = new Deno.Command("sh", {
      args: ["-c", 'exec psql -X -v ON_ERROR_STOP=0 -P pager=off -d "$0" 2>&1', dbUrl],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  async run(sql: string, timeoutMs: number): Promise<string> {
    const marker = `@@herald-readme-${++this.#count}@@`;
    await this.#writer.write(new TextEncoder().encode(`${sql}\n\\echo ${marker}\n`));
    const deadline = Date.now() + timeoutMs;
    while (!this.#buffer.includes(`${marker}\n`)) {
      const left = deadline - Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        this.#reader.read(),
        new Promise<null>((r) => timer = setTimeout(() => r(null), Math.max(left, 0))),
      ]);
      clearTimeout(timer);
      if (chunk === null) throw new Error(`psql did not finish within ${timeoutMs / 1000} s`);
      if (chunk.done) throw new Error(`psql exited:\n${this.#buffer}`);
      this.#buffer += chunk.value;
    }
    const at = this.#buffer.indexOf(`${marker}\n`);
    const out = this.#buffer.slice(0, at);
    this.#buffer = this.#buffer.slice(at + marker.length + 1);
    return out;
  }

  async close() {
    await this.#writer.close().catch(() => {});
    await this.#reader.cancel().catch(() => {});
    await this.#child.status;
  }
}

/** One shell block in bash, with what the earlier blocks exported; the exports are kept for the next. */
async function runShell(code: string, stateFile: string, timeoutMs: number): Promise<{ code: number; output: string }> {
  const script = `set -a\n. "${stateFile}"\nset -eo pipefail\n${code}\nset +e\nexport -p > "${stateFile}"\n`;
  const child = new Deno.Command("bash", {
    args: ["--noprofile", "--norc", "-c", 'exec 2>&1; eval "$0"', script],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  return { code: out.code, output: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr) };
}

export interface ExampleResult {
  name: string;
  line: number;
  ok: boolean;
  detail: string;
}

const HAS_ERROR = /^(ERROR|FATAL|psql: error):/m;

/** Runs the examples in order against a stack on `ports`; one result per example. */
export async function runExamples(examples: Example[], ports: StackPorts, dbUrl: string, timeoutMs = 60_000): Promise<ExampleResult[]> {
  const results: ExampleResult[] = [];
  const stateFile = await Deno.makeTempFile({ prefix: "herald-readme-env-" });
  let psql: PsqlSession | undefined;
  try {
    for (const ex of examples) {
      let output: string;
      let failure = "";
      try {
        if (ex.lang === "sql") {
          psql ??= new PsqlSession(dbUrl);
          output = await psql.run(pointAt(ex.code, ports), timeoutMs);
          if (HAS_ERROR.test(output) && !ex.outputs.some((o) => HAS_ERROR.test(o))) failure = "psql reported an error";
        } else {
          const r = await runShell(pointAt(ex.code, ports), stateFile, timeoutMs);
          output = r.output;
          if (r.code !== 0) failure = `exited with ${r.code}`;
        }
      } catch (err) {
        output = "";
        failure = err instanceof Error ? err.message : String(err);
      }
      if (!failure && ex.outputs.length) {
        const differences = ex.outputs.map((o) => shapeDifference(pointAt(o, ports), output));
        if (differences.every((d) => d !== null)) {
          failure = ex.outputs.length === 1
            ? `output differs from the README: ${differences[0]}`
            : `output matches none of the ${ex.outputs.length} shown: ${differences.map((d, k) => `\n    (${k + 1}) ${d}`).join("")}`;
        }
      }
      results.push({ name: ex.name, line: ex.line, ok: !failure, detail: failure ? `${failure}\n--- it printed:\n${output.trimEnd()}` : "" });
    }
  } finally {
    await psql?.close();
    await Deno.remove(stateFile).catch(() => {});
  }
  return results;
}

// ---- what the README must agree with -----------------------------------------------------------

/** The `// #region NAME` … `// #endregion NAME` lines of a source file, without the markers. */
export function sourceRegion(source: string, region: string): string | null {
  const m = new RegExp(`^[ \\t]*// #region ${region}\\n([\\s\\S]*?)^[ \\t]*// #endregion ${region}$`, "m").exec(source);
  return m ? m[1].replace(/\n$/, "") : null;
}

/** Includes whose README block differs from the region of the file it names. */
export async function staleIncludes(includes: Include[]): Promise<string[]> {
  const stale: string[] = [];
  for (const inc of includes) {
    const source = await Deno.readTextFile(`${ROOT}/${inc.file}`).catch(() => null);
    const region = source === null ? null : sourceRegion(source, inc.region);
    if (region === null) stale.push(`README.md:${inc.line}: ${inc.file} has no region ${inc.region}`);
    else if (region !== inc.code) stale.push(`README.md:${inc.line}: differs from ${inc.file}#${inc.region}`);
  }
  return stale;
}

/** Every error code the functions answer with: HttpError's second argument, and the SQLSTATE map's. */
export async function functionErrorCodes(): Promise<string[]> {
  const codes = new Set<string>();
  const dirs = [`${ROOT}/supabase/functions`, `${ROOT}/scripts/functions-server.ts`];
  const files: string[] = [];
  const walk = async (path: string) => {
    const info = await Deno.stat(path);
    if (info.isFile) return void (path.endsWith(".ts") && !path.endsWith(".test.ts") && files.push(path));
    for await (const e of Deno.readDir(path)) {
      if (e.name !== "node_modules") await walk(`${path}/${e.name}`);
    }
  };
  for (const d of dirs) await walk(d);
  for (const f of files) {
    const text = await Deno.readTextFile(f);
    for (const m of text.matchAll(/HttpError\(\s*\d{3},\s*"([a-z_]+)"/g)) codes.add(m[1]);
    for (const m of text.matchAll(/error: \{ code: "([a-z_]+)"/g)) codes.add(m[1]);
    for (const m of text.matchAll(/\[\d{3}, "([a-z_]+)"\]/g)) codes.add(m[1]);
    // The 400 codes are handed to the one input parser as arguments; zod's own issue codes
    // (compared with ===, or in a case) are not answers.
    for (const m of text.matchAll(/(?<!=== |case |code: )"(invalid_[a-z_]+)"/g)) codes.add(m[1]);
  }
  return [...codes].sort();
}
