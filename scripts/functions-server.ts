// Local stand-in for Supabase's edge runtime (which needs Docker): one Deno process serving every
// function in supabase/functions at /functions/v1/<name>. Each function's index.ts stays in the
// form Supabase deploys (it calls Deno.serve(handler)); this server captures that handler instead
// of opening a port, applies the gateway's verify_jwt rule from supabase/config.toml, and routes.
//
// Usage: deno run -A --config supabase/functions/deno.json scripts/functions-server.ts
// Env: FUNCTIONS_PORT (default 54321), and whatever the functions read (the gateway verifies JWTs
// as they do: SUPABASE_JWT_SECRET, or the JWKS); FUNCTIONS_ONLY=a,b serves only those functions
// (one function per process, as Supabase's edge runtime gives each function its own worker: the
// bench measures a function's memory that way); FUNCTIONS_NO_VERIFY_JWT=true skips the gateway's
// check for every function, as `supabase functions serve --no-verify-jwt` does, so tests reach
// the functions' own verification.

import { parse as parseToml } from "smol-toml";
import { bearerToken, verifyJwt } from "@herald/shared/jwt.ts";
import { errorResponse, json } from "@herald/shared/http.ts";
import { closeDb } from "@herald/shared/db.ts";

type Handler = (req: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;

interface LoadedFunction {
  handler: Handler;
  verifyJwt: boolean;
}

const root = new URL("..", import.meta.url);
const functionsDir = new URL("supabase/functions/", root);

async function functionNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(functionsDir)) {
    if (!e.isDirectory || e.name.startsWith("_") || e.name.startsWith(".") || e.name === "node_modules") continue;
    try {
      await Deno.stat(new URL(`${e.name}/index.ts`, functionsDir));
      names.push(e.name);
    } catch { /* not a function */ }
  }
  return names.sort();
}

async function verifyJwtSettings(): Promise<Record<string, boolean>> {
  const config = parseToml(await Deno.readTextFile(new URL("supabase/config.toml", root))) as {
    functions?: Record<string, { verify_jwt?: boolean }>;
  };
  return Object.fromEntries(Object.entries(config.functions ?? {}).map(([k, v]) => [k, v.verify_jwt ?? true]));
}

/** Imports a function module with Deno.serve swapped for a capture, and returns its handler. */
async function load(name: string): Promise<Handler> {
  const realServe = Deno.serve;
  let captured: Handler | undefined;
  const fakeServer = {
    finished: new Promise<void>(() => {}),
    addr: { transport: "tcp", hostname: "127.0.0.1", port: 0 },
    shutdown: () => Promise.resolve(),
    ref() {},
    unref() {},
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  // deno-lint-ignore no-explicit-any
  (Deno as any).serve = (a: unknown, b?: unknown) => {
    const h = typeof a === "function" ? a : typeof b === "function" ? b : (a as { handler?: Handler }).handler;
    captured = h as Handler;
    return fakeServer;
  };
  try {
    await import(new URL(`${name}/index.ts`, functionsDir).href);
  } finally {
    // deno-lint-ignore no-explicit-any
    (Deno as any).serve = realServe;
  }
  if (!captured) throw new Error(`supabase/functions/${name}/index.ts never called Deno.serve`);
  return captured;
}

const gatewayVerifiesJwt = Deno.env.get("FUNCTIONS_NO_VERIFY_JWT") !== "true";
const port = Number(Deno.env.get("FUNCTIONS_PORT") ?? "54321");
const settings = await verifyJwtSettings();
const only = (Deno.env.get("FUNCTIONS_ONLY") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
const names = await functionNames();
const unknown = only.filter((n) => !names.includes(n));
if (unknown.length) throw new Error(`FUNCTIONS_ONLY names no function ${unknown.join(", ")} (there are ${names.join(", ")})`);
const functions = new Map<string, LoadedFunction>();
for (const name of only.length ? only : names) {
  functions.set(name, { handler: await load(name), verifyJwt: settings[name] ?? true });
}

const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (req, info) => {
  const url = new URL(req.url);
  const m = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(url.pathname);
  const fn = m ? functions.get(m[1]) : undefined;
  if (!m || !fn) return json({ error: { code: "not_found", message: `no function at ${url.pathname}` } }, 404);
  try {
    // Supabase's gateway: any valid project JWT passes (anon included); the function decides the rest.
    if (fn.verifyJwt && gatewayVerifiesJwt) await verifyJwt(bearerToken(req));
    // Functions see the path Supabase gives them: /<name>/..., not /functions/v1/<name>/... The
    // request itself is passed on with its url shadowed: re-making it (new Request(inner, req))
    // copied its headers and took over its body stream, ~80 µs a request, a third of what this
    // server spent on a status callback. (Only url reads the new path; req.clone() would not.)
    Object.defineProperty(req, "url", { value: `${url.origin}/${m[1]}${m[2] ?? ""}${url.search}` });
    return await fn.handler(req, info);
  } catch (err) {
    return errorResponse(err);
  }
});

console.log(`functions: serving ${[...functions.keys()].join(", ")} at http://127.0.0.1:${port}/functions/v1/<name>`);

const stop = async () => {
  await server.shutdown().catch(() => {});
  await closeDb().catch(() => {});
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
