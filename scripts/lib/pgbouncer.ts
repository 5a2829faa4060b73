// A PgBouncer in transaction mode in front of a cluster: the local stand-in for the transaction
// pooler a hosted project's functions connect through (Supavisor, port 6543), where consecutive
// transactions of one client run on whichever server connection is free.

import { isRoot, portInUse, run, waitForPort } from "./proc.ts";

export const PGBOUNCER_BIN = "/usr/sbin/pgbouncer";

export interface PgBouncerOptions {
  /** Where its configuration and log go; created, and owned by the postgres user when root. */
  dir: string;
  port: number;
  serverPort: number;
  /** Server connections per database and user: fewer than the clients', so they are shared. */
  poolSize: number;
}

export class PgBouncer {
  private child?: Deno.ChildProcess;

  constructor(readonly opts: PgBouncerOptions) {}

  /** As a hosted project's pooler URL: user and password, port, database. */
  get url(): string {
    return `postgresql://postgres:postgres@127.0.0.1:${this.opts.port}/postgres`;
  }

  get logFile(): string {
    return `${this.opts.dir}/pgbouncer.log`;
  }

  async start(): Promise<void> {
    const { dir, port, serverPort, poolSize } = this.opts;
    if (await portInUse(port)) throw new Error(`port ${port} (pgbouncer) is taken by another process`);
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    // SCRAM with a plain-text password in the auth file, as a pooler checks a client's password.
    await Deno.writeTextFile(`${dir}/userlist.txt`, `"postgres" "postgres"\n`);
    await Deno.writeTextFile(
      `${dir}/pgbouncer.ini`,
      [
        "[databases]",
        `postgres = host=127.0.0.1 port=${serverPort} dbname=postgres user=postgres`,
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${port}`,
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        `auth_file = ${dir}/userlist.txt`,
        "admin_users = postgres",
        "pool_mode = transaction",
        `default_pool_size = ${poolSize}`,
        // Server connections in turn rather than the most recently used first: a client's next
        // transaction lands on another server connection than its last, as on a busy pooler.
        "server_round_robin = 1",
        "max_client_conn = 200",
        `logfile = ${this.logFile}`,
        "",
      ].join("\n"),
    );
    // PgBouncer refuses to run as root.
    if (isRoot()) await run("chown", ["-R", "postgres:postgres", dir]);
    const [cmd, args] = isRoot()
      ? ["runuser", ["-u", "postgres", "--", PGBOUNCER_BIN, `${dir}/pgbouncer.ini`]]
      : [PGBOUNCER_BIN, [`${dir}/pgbouncer.ini`]];
    this.child = new Deno.Command(cmd as string, { args: args as string[], cwd: "/", stdin: "null", stdout: "null", stderr: "null" })
      .spawn();
    try {
      await waitForPort(port, 15_000);
    } catch (err) {
      await this.stop();
      throw new Error(`${err instanceof Error ? err.message : err}\n${await this.logTail()}`);
    }
  }

  /** Runs SQL on PgBouncer's admin console (SHOW POOLS, SHOW CLIENTS…) and returns its rows. */
  async admin(command: string): Promise<Record<string, string>[]> {
    const r = await run("psql", ["-X", "-A", "-F", "\t", "-P", "footer=off", "-h", "127.0.0.1", "-p", String(this.opts.port), "-U", "postgres", "-d", "pgbouncer", "-c", command], {
      env: { PGPASSWORD: "postgres" },
    });
    const [header, ...rows] = r.stdout.trimEnd().split("\n");
    const names = header.split("\t");
    return rows.map((row) => Object.fromEntries(row.split("\t").map((v, i) => [names[i], v])));
  }

  async logTail(lines = 20): Promise<string> {
    return await Deno.readTextFile(this.logFile).then((t) => t.trimEnd().split("\n").slice(-lines).join("\n"), () => "(no pgbouncer log)");
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
  }

  async destroy(): Promise<void> {
    await this.stop();
    await Deno.remove(this.opts.dir, { recursive: true }).catch(() => {});
  }
}
