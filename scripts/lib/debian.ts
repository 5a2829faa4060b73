// What the project needs from Debian, installed by the project itself (a fresh machine, or CI's,
// has none of it): as root, or through passwordless sudo, or a clear message saying what to run.

import { exists, isRoot, run } from "./proc.ts";
import { PG_BIN } from "./config.ts";

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

export async function ensureDebianPackages(need: DebianNeed, log: (s: string) => void = console.log): Promise<void> {
  const missing = [];
  for (const f of need.files) if (!(await exists(f))) missing.push(f);
  if (missing.length === 0) return;
  const apt = ["apt-get", "install", "-y", "--no-install-recommends", ...need.packages];
  let prefix: string[];
  if (isRoot()) prefix = [];
  else if ((await run("sudo", ["-n", "true"], { check: false }).catch(() => ({ code: 1 }))).code === 0) {
    prefix = ["sudo", "-n"];
  } else {
    throw new Error(
      `${need.what} is missing (${missing.join(", ")}), and this user can neither install packages (not root) ` +
        `nor use passwordless sudo. Run as root:\n  apt-get update && ${apt.join(" ")}`,
    );
  }
  log(`installing Debian packages: ${need.packages.join(" ")}`);
  const sh = (args: string[]) => {
    const full = [...prefix, "env", "DEBIAN_FRONTEND=noninteractive", ...args];
    return run(full[0], full.slice(1));
  };
  await sh(["apt-get", "update", "-qq"]);
  await sh(apt);
}
