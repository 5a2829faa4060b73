// What the project needs from Debian, installed by the project itself (a fresh machine, or CI's,
// has none of it): as root, or through passwordless sudo, or a clear message saying what to run.

import { exists, isRoot, logTail, run } from "./proc.ts";
import { PG_BIN } from "./config.ts";
import type { Step } from "./output.ts";

export interface DebianNeed {
  /** What it is for, in the error message. */
  what: string;
  packages: string[];
  /** Present when installed; any missing file triggers the install. */
  files: string[];
}

export const POSTGRES: DebianNeed = {
  what: "PostgreSQL 15 with pg_cron, pgTAP and plpgsql_check",
  packages: [
    "postgresql-15",
    "postgresql-client-15",
    "postgresql-15-cron",
    "postgresql-15-pgtap",
    "postgresql-15-plpgsql-check",
    "libtap-parser-sourcehandler-pgtap-perl",
  ],
  files: [
    `${PG_BIN}/postgres`,
    "/usr/lib/postgresql/15/lib/pg_cron.so",
    "/usr/share/postgresql/15/extension/pgtap.control",
    "/usr/share/postgresql/15/extension/plpgsql_check.control",
    "/usr/bin/pg_prove",
    "/usr/bin/psql",
  ],
};

/** PgBouncer, the transaction pooler the functions are tested through (hosted: Supavisor on 6543). */
export const PGBOUNCER: DebianNeed = {
  what: "PgBouncer",
  packages: ["pgbouncer"],
  files: ["/usr/sbin/pgbouncer"],
};

/** Debian's Chromium, for the browser test of the sandbox inbox (Playwright drives it). */
export const CHROMIUM: DebianNeed = {
  what: "Chromium",
  packages: ["chromium"],
  files: ["/usr/bin/chromium"],
};

/** The files of `need` that are not there yet; none means nothing to install. */
export async function missingFiles(need: DebianNeed): Promise<string[]> {
  const missing = [];
  for (const f of need.files) if (!(await exists(f))) missing.push(f);
  return missing;
}

export interface InstallOptions {
  /** Where apt-get's own output goes (a temporary file by default); shown only when it fails. */
  logFile?: string;
  /** The step this install is, to report apt's progress on (else one line through `log`). */
  step?: Step;
}

/**
 * Installs what `need` lacks. apt-get's output goes to a log file; what the user sees is which
 * step it is and, on a terminal, apt's own progress figures (APT::Status-Fd).
 */
export async function ensureDebianPackages(
  need: DebianNeed,
  log: (s: string) => void = console.log,
  opts: InstallOptions = {},
): Promise<void> {
  const missing = await missingFiles(need);
  if (missing.length === 0) return;
  const apt = ["install", "-y", "--no-install-recommends", ...need.packages];
  let prefix: string[];
  if (isRoot()) prefix = [];
  else if ((await run("sudo", ["-n", "true"], { check: false }).catch(() => ({ code: 1 }))).code === 0) {
    prefix = ["sudo", "-n"];
  } else {
    throw new Error(
      `${need.what} is missing (${missing.join(", ")}), and this user can neither install packages (not root) ` +
        `nor use passwordless sudo. Run as root:\n  apt-get update && apt-get ${apt.join(" ")}`,
    );
  }
  const logFile = opts.logFile ?? await Deno.makeTempFile({ prefix: "herald-apt-", suffix: ".log" });
  if (!opts.step) log(`installing ${need.what} from Debian (apt-get's output goes to ${logFile})`);
  await aptGet(prefix, ["update"], logFile, (percent) => opts.step?.detail(`updating package lists ${percent}%`));
  await aptGet(prefix, apt, logFile, (percent, phase) => opts.step?.detail(`${phase} ${percent}%`));
}

/**
 * Runs apt-get with its output appended to `logFile` and its status lines (fd 3, "dlstatus:…" while
 * downloading, "pmstatus:…" while unpacking and configuring) turned into progress calls.
 */
async function aptGet(
  prefix: string[],
  args: string[],
  logFile: string,
  progress: (percent: number, phase: string) => void,
): Promise<void> {
  // The redirections run inside the (possibly sudo'd) shell: sudo closes descriptors above 2.
  const script = `log="$1"; shift; printf '\n$ %s\n' "$*" >>"$log"; exec "$@" 3>&1 >>"$log" 2>&1`;
  const cmd = [...prefix, "env", "DEBIAN_FRONTEND=noninteractive", "sh", "-c", script, "sh", logFile,
    "apt-get", "-o", "APT::Status-Fd=3", ...args];
  const child = new Deno.Command(cmd[0], { args: cmd.slice(1), stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  const stderr = new Response(child.stderr).text();
  let buffered = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      const [kind, , percent] = line.split(":");
      const phase = kind === "dlstatus" ? "downloading" : kind === "pmstatus" ? "unpacking and configuring" : null;
      if (phase && Number.isFinite(Number(percent))) progress(Math.floor(Number(percent)), phase);
    }
  }
  const status = await child.status;
  if (!status.success) throw new Error(`apt-get ${args[0]} failed (exit ${status.code}); ${await logTail(logFile)}${await stderr}`);
}
