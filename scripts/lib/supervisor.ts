// Keeps the local stack's services up under `npm start`, as a process manager would: a service
// that dies is restarted alone, with a log line and a pause that doubles from try to try (reset
// once it has stayed up a while), and the others keep running. Only stop() ends them.

import { pause } from "./proc.ts";

export interface Service {
  name: string;
  /** Starts the service and resolves once it is ready (listening), or rejects saying why not. */
  start(): Promise<Running>;
}

export interface Running {
  pid: number | null;
  /** Resolves, saying how, when the service has stopped on its own. */
  exited: Promise<string>;
  /** Stops it (and lets `exited` resolve). */
  stop(): Promise<void>;
}

export interface SupervisorOptions {
  log: (line: string) => void;
  /** The first pause before a restart; each failed try doubles it up to maxDelayMs. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** Up this long, a service that dies again is restarted after the first pause again. */
  steadyMs?: number;
  /** Called after every (re)start, e.g. to record the pids. */
  onChange?: () => void;
}

export class Supervisor {
  readonly #running = new Map<string, Running>();
  readonly #stopped = new AbortController();
  #watchers: Promise<void>[] = [];
  readonly #opts: Required<Omit<SupervisorOptions, "onChange">> & Pick<SupervisorOptions, "onChange">;

  constructor(readonly services: Service[], opts: SupervisorOptions) {
    this.#opts = { firstDelayMs: 1_000, maxDelayMs: 30_000, steadyMs: 30_000, ...opts };
  }

  /** Starts the services in order, each ready before the next; if one cannot start, stops the rest and throws. */
  async start(): Promise<void> {
    for (const service of this.services) {
      try {
        const running = await service.start();
        this.#running.set(service.name, running);
        if (this.#stopped.signal.aborted) {
          // stop() came while this one was starting: it stopped the others already.
          await running.stop();
          throw new Error("stopped while starting");
        }
      } catch (err) {
        await this.stop();
        throw new Error(`${service.name} could not be started: ${err instanceof Error ? err.message : err}`);
      }
    }
    this.#opts.onChange?.();
    this.#watchers = this.services.map((s) => this.#watch(s));
  }

  /** The pid of each service that is a process of its own, as it is now. */
  pids(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, r] of this.#running) if (r.pid !== null) out[name] = r.pid;
    return out;
  }

  async stop(): Promise<void> {
    this.#stopped.abort();
    await Promise.all([...this.#running.values()].map((r) => r.stop()));
    await Promise.all(this.#watchers);
  }

  async #watch(service: Service): Promise<void> {
    const { log, firstDelayMs, maxDelayMs, steadyMs } = this.#opts;
    let delay = firstDelayMs;
    let upSince = Date.now();
    for (;;) {
      let how = await this.#running.get(service.name)!.exited;
      if (this.#stopped.signal.aborted) return;
      if (Date.now() - upSince >= steadyMs) delay = firstDelayMs;
      for (;;) {
        log(`${service.name} ${how}; restarting it in ${seconds(delay)}`);
        if (!(await pause(delay, this.#stopped.signal))) return;
        delay = Math.min(delay * 2, maxDelayMs);
        try {
          const running = await service.start();
          if (this.#stopped.signal.aborted) {
            await running.stop();
            return;
          }
          this.#running.set(service.name, running);
          upSince = Date.now();
          log(`${service.name} is back${running.pid !== null ? ` (pid ${running.pid})` : ""}`);
          this.#opts.onChange?.();
          break;
        } catch (err) {
          if (this.#stopped.signal.aborted) return;
          how = `could not be restarted (${err instanceof Error ? err.message : err})`;
        }
      }
    }
  }
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${ms / 1000} s`;
}

/** How a child process ended, for the log line. */
export function describeExit(status: Deno.CommandStatus): string {
  return status.signal ? `was killed (${status.signal})` : `exited with code ${status.code}`;
}
