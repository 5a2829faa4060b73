// What the stack runner prints, and how: colour only for a person at a terminal (never into a pipe
// or a file, never under NO_COLOR), and long steps announced as "what (2/3)…" with their progress
// updated in place on a terminal instead of a tool's own output.

/** Whether both output streams are terminals and NO_COLOR is unset. */
export function colourEnabled(): boolean {
  return !Deno.noColor && Deno.stdout.isTerminal() && Deno.stderr.isTerminal();
}

/**
 * The environment for a child whose output the user sees: Deno (and most tools) colour their
 * errors even into a pipe unless NO_COLOR says otherwise.
 */
export function childColourEnv(): Record<string, string> {
  return colourEnabled() ? {} : { NO_COLOR: "1" };
}

const ESC = String.fromCharCode(27);
const paint = (code: string) => (s: string) => colourEnabled() ? `${ESC}[${code}m${s}${ESC}[0m` : s;
export const bold = paint("1");
export const yellow = paint("33");
export const red = paint("31");

/** Removes colour codes from text a tool printed before it is shown again. */
export function stripAnsi(s: string): string {
  return s.replace(new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, "g"), "");
}

export type Log = (line: string) => void;

/** One numbered step of a run: "installing PostgreSQL 15 (1/3)…", then its progress. */
export interface Step {
  /** Replaces the step's detail ("downloading 40%"): in place on a terminal, not printed otherwise. */
  detail(text: string): void;
  /** Ends the step's line (on a terminal) with how long it took. */
  done(): void;
  /** Ends the step's line (on a terminal) so that an error can follow on a line of its own. */
  failed(): void;
}

/**
 * Announces `total` steps one by one. On a terminal a step's detail rewrites its own line; into a
 * pipe or a file only the step lines are printed, one each.
 */
export function steps(total: number, prefix = "herald: "): (what: string) => Step {
  let n = 0;
  const tty = Deno.stdout.isTerminal();
  const encoder = new TextEncoder();
  return (what) => {
    n++;
    const head = `${prefix}${what} (${n}/${total})…`;
    const started = Date.now();
    if (tty) Deno.stdout.writeSync(encoder.encode(head));
    else console.log(head);
    let last = "";
    return {
      detail(text) {
        if (!tty || text === last) return;
        last = text;
        Deno.stdout.writeSync(encoder.encode(`\r${ESC}[K${head} ${text}`));
      },
      done() {
        const took = `done in ${((Date.now() - started) / 1000).toFixed(1)} s`;
        if (tty) Deno.stdout.writeSync(encoder.encode(`\r${ESC}[K${head} ${took}\n`));
      },
      failed() {
        if (tty) Deno.stdout.writeSync(encoder.encode(` failed\n`));
      },
    };
  };
}
