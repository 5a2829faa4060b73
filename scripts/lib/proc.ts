// Small process helpers shared by the stack runner, the test harness and the bench.

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Throw with the command's output when it exits non-zero (default true). */
  check?: boolean;
  stdin?: string;
}

export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if ((opts.check ?? true) && result.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${result.code}\n${result.stdout}${result.stderr}`.trimEnd(),
    );
  }
  return result;
}

export function isRoot(): boolean {
  return Deno.uid() === 0;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Resolves once something accepts TCP connections on host:port; throws after timeoutMs, or as soon
 * as `signal` aborts.
 */
export async function waitForPort(port: number, timeoutMs = 15_000, hostname = "127.0.0.1", signal?: AbortSignal) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname, port });
      conn.close();
      return;
    } catch {
      signal?.throwIfAborted();
      if (Date.now() > deadline) throw new Error(`nothing is listening on ${hostname}:${port} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Resolves true after `ms`, or false as soon as `signal` aborts; leaves no timer behind. */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Sends SIGTERM, then SIGKILL if the process is still there after `graceMs`; resolves when it is gone. */
export async function stopChild(child: Deno.ChildProcess, graceMs = 5_000): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGTERM");
  } catch { /* already gone */ }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, graceMs);
  try {
    return await child.status;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs a command with its output appended to `logFile` (after a "$ command" line); on failure
 * throws with the end of that log, so a long tool output is shown only when it matters.
 */
export async function runToLog(cmd: string, args: string[], logFile: string, opts: { cwd?: string; env?: Record<string, string> } = {}) {
  await Deno.writeTextFile(logFile, `\n$ ${cmd} ${args.join(" ")}\n`, { append: true });
  const log = await Deno.open(logFile, { append: true });
  try {
    const child = new Deno.Command(cmd, { args, cwd: opts.cwd, env: opts.env, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
    const sink = () => new WritableStream<Uint8Array>({ write: (chunk) => void log.writeSync(chunk) });
    await Promise.all([child.stdout.pipeTo(sink()), child.stderr.pipeTo(sink())]);
    const status = await child.status;
    if (!status.success) throw new Error(`${cmd} ${args[0] ?? ""} exited ${status.code}; ${await logTail(logFile)}`);
  } finally {
    log.close();
  }
}

/** "the end of <file>:" and its last lines, for an error message. */
export async function logTail(logFile: string, lines = 30): Promise<string> {
  const text = await Deno.readTextFile(logFile).catch(() => "");
  return `the end of ${logFile}:\n${text.trimEnd().split("\n").slice(-lines).join("\n")}`;
}

export async function portInUse(port: number, hostname = "127.0.0.1"): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** The first port from `start` (stepping by `step`) where nothing listens. */
export async function firstFreePort(start: number, step = 1, tries = 50): Promise<number> {
  for (let port = start; port < start + step * tries; port += step) {
    if (!(await portInUse(port))) return port;
  }
  throw new Error(`no free port from ${start} upwards`);
}

/**
 * Keeps the kernel from handing Herald's ports (54320–54599: the dev stack, the test blocks, the
 * README stack, the bench) to outgoing connections as their ephemeral local port. Linux picks
 * those from 32768–60999, so under heavy loopback traffic a client socket can sit on a port a
 * test stack is about to listen on, and the service fails with "address in use". Best effort:
 * it needs root and a writable /proc/sys (as on these machines and in CI); elsewhere it does
 * nothing and the free-port search is all there is.
 */
export async function reserveStackPorts(): Promise<void> {
  const file = "/proc/sys/net/ipv4/ip_local_reserved_ports";
  const range = "54320-54599";
  try {
    const current = (await Deno.readTextFile(file)).trim();
    if (current.split(",").includes(range)) return;
    await Deno.writeTextFile(file, current ? `${current},${range}` : range);
  } catch {
    // not root, or /proc/sys read-only: nothing to do
  }
}
