// A private PostgreSQL 15 cluster with pg_cron preloaded, standing in for `supabase start`'s
// database (see shared/STACK.md: no Docker on these machines).

import { exists, isRoot, run } from "./proc.ts";
import { dbUrl, PG_BIN, ROOT, SUPABASE_BIN } from "./config.ts";

export class Cluster {
  constructor(readonly dataDir: string, readonly port: number) {}

  get url(): string {
    return dbUrl(this.port);
  }

  /** initdb and postgres refuse root: run them as the postgres user, from a directory it can enter. */
  private asPostgres(cmd: string, args: string[], check = true) {
    if (isRoot()) return run("runuser", ["-u", "postgres", "--", cmd, ...args], { cwd: "/", check });
    return run(cmd, args, { cwd: "/", check });
  }

  async initialized(): Promise<boolean> {
    return await exists(`${this.dataDir}/PG_VERSION`);
  }

  async init(opts: { throwaway: boolean }): Promise<void> {
    const parent = this.dataDir.replace(/\/[^/]+\/?$/, "");
    await Deno.mkdir(parent, { recursive: true, mode: 0o755 });
    await Deno.mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    if (isRoot()) {
      const reach = await run("runuser", ["-u", "postgres", "--", "test", "-x", parent], { cwd: "/", check: false });
      if (reach.code !== 0) {
        await Deno.remove(this.dataDir, { recursive: true });
        throw new Error(
          `PostgreSQL runs as the postgres user, which cannot reach ${parent} (a private home directory?): ` +
            `set HERALD_DATA_DIR to a directory outside it, e.g. HERALD_DATA_DIR=/var/tmp/herald/dev npm start`,
        );
      }
      await run("chown", ["-R", "postgres:postgres", this.dataDir]);
    }
    await this.asPostgres(`${PG_BIN}/initdb`, [
      "-D", this.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
    ]);
    const conf = [
      "listen_addresses = '127.0.0.1'",
      `port = ${this.port}`,
      `unix_socket_directories = '${this.dataDir}'`,
      "shared_preload_libraries = 'pg_cron'",
      "cron.database_name = 'postgres'",
      "cron.use_background_workers = off",
      "max_connections = 200",
      "timezone = 'UTC'",
      "log_min_messages = warning",
      ...(opts.throwaway ? ["fsync = off", "synchronous_commit = off", "full_page_writes = off"] : []),
    ];
    await this.appendSettings("herald", conf);
  }

  /**
   * Appends settings to postgresql.conf under a `# label` line; a later line wins over an earlier
   * one, so this also overrides. They take effect at the next start (or reload, where they can).
   */
  async appendSettings(label: string, settings: string[]): Promise<void> {
    await Deno.writeTextFile(`${this.dataDir}/postgresql.conf`, `\n# ${label}\n${settings.join("\n")}\n`, { append: true });
  }

  async running(): Promise<boolean> {
    if (!(await this.initialized())) return false;
    const r = await this.asPostgres(`${PG_BIN}/pg_ctl`, ["-D", this.dataDir, "status"], false);
    return r.code === 0;
  }

  /** Whether the postmaster of this cluster is alive, without asking it (cheap enough to poll). */
  async postmasterAlive(): Promise<boolean> {
    try {
      const pid = (await Deno.readTextFile(`${this.dataDir}/postmaster.pid`)).split("\n")[0].trim();
      // /proc/<pid>/stat: "<pid> (<name>) <state> …"; a zombie (Z) is dead but not yet reaped.
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      return !/^\d+ \(.*\) Z /.test(stat);
    } catch {
      return false;
    }
  }

  async start(): Promise<void> {
    if (await this.running()) return;
    await this.asPostgres(`${PG_BIN}/pg_ctl`, ["-D", this.dataDir, "-l", `${this.dataDir}/server.log`, "-w", "-t", "30", "start"]);
  }

  async stop(): Promise<void> {
    if (!(await this.running())) return;
    await this.asPostgres(`${PG_BIN}/pg_ctl`, ["-D", this.dataDir, "-m", "fast", "-w", "stop"]);
  }

  async destroy(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dataDir, { recursive: true }).catch(() => {});
  }

  psqlFile(file: string): Promise<unknown> {
    return run("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", this.url, "-f", file]);
  }

  async psql(sql: string): Promise<string> {
    const r = await run("psql", ["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", this.url, "-c", sql]);
    return r.stdout.trim();
  }

  /** Supabase's roles, auth schema and default privileges (what hosted Supabase already has). */
  bootstrap(): Promise<unknown> {
    return this.psqlFile(`${ROOT}/scripts/local/supabase-bootstrap.sql`);
  }

  /** Applies pending migrations with the real Supabase CLI. */
  migrate(): Promise<unknown> {
    return run(SUPABASE_BIN, ["migration", "up", `--remote=${this.url}`, "--include-all", "--yes"], {
      cwd: ROOT,
      env: { SUPABASE_TELEMETRY_DISABLED: "1", PGSSLMODE: "disable" },
    });
  }

  seed(): Promise<unknown> {
    return this.psqlFile(`${ROOT}/supabase/seed.sql`);
  }
}
