// The one error path of every function: a typed HttpError becomes `{ error: { code, message } }`
// with its status; anything else is logged and answered as a 500 without internals. And the one
// way a function reads its input: bodies, queries and webhook forms are validated by parseInput.

import type { z } from "zod";

export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = "HttpError";
  }
}

export function json(body: unknown, status = 200, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export function errorResponse(err: unknown): Response {
  if (err instanceof HttpError) return json({ error: { code: err.code, message: err.message } }, err.status);
  console.error(err);
  return json({ error: { code: "internal_error", message: "the function failed; see its logs" } }, 500);
}

/** Wraps a handler so every thrown error takes the one error path. */
export function handle(fn: (req: Request) => Promise<Response>): (req: Request) => Promise<Response> {
  return async (req) => {
    try {
      return await fn(req);
    } catch (err) {
      return errorResponse(err);
    }
  };
}

export function requireMethod(req: Request, method: string): void {
  if (req.method !== method) throw new HttpError(405, "method_not_allowed", `use ${method}`);
}

// ---- request input -----------------------------------------------------------------------------
// Every body, query and webhook form goes through parseInput, so a 400 always names each field
// that failed and what is wrong with it ("contact_id: required; hard: expected boolean, received
// string"), never a bare "expected string, received undefined".

function kindOf(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "array" : typeof value;
}

/** zod's issues in words a caller can act on; a schema's own message (e.g. a sid's) still wins. */
const fieldMessage: z.core.$ZodErrorMap = (issue) => {
  // An absent field fails as a wrong type, or as no option of an enum: either way, it is missing.
  if (issue.input === undefined && (issue.code === "invalid_type" || issue.code === "invalid_value")) return "required";
  switch (issue.code) {
    case "invalid_type":
      if (issue.expected === "int") return "must be an integer"; // a number, but not a whole one
      return `expected ${issue.expected}, received ${kindOf(issue.input)}`;
    case "invalid_format":
      return issue.format === "regex" ? undefined : `not a valid ${issue.format}`;
    case "invalid_value":
      return `must be one of ${issue.values.map(String).join(", ")}`;
    case "too_small":
      if (issue.origin === "number") return `must be ${issue.inclusive ? "at least" : "more than"} ${issue.minimum}`;
      if (issue.origin === "string") return `must be at least ${issue.minimum} characters`;
      return undefined;
    case "too_big":
      if (issue.origin === "number") return `must be ${issue.inclusive ? "at most" : "less than"} ${issue.maximum}`;
      if (issue.origin === "string") return `must be at most ${issue.maximum} characters`;
      return undefined;
    default:
      return undefined;
  }
};

/**
 * "field: problem; …" for every issue, the field named by its path (`what` when the input as a
 * whole is wrong); unknown fields are named one by one.
 */
export function describeIssues(error: z.ZodError, what = "input"): string {
  const name = (path: readonly PropertyKey[]) => path.map(String).join(".") || what;
  return error.issues.flatMap((issue) => {
    if (issue.code === "unrecognized_keys") return issue.keys.map((key) => `${name([...issue.path, key])}: unknown field`);
    return [`${name(issue.path)}: ${issue.message}`];
  }).join("; ");
}

/** `input` as `schema` describes it, or a 400 with `code` that names each field that failed. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, code: string, what = "body"): z.output<S> {
  const parsed = schema.safeParse(input, { error: fieldMessage });
  if (!parsed.success) throw new HttpError(400, code, describeIssues(parsed.error, what));
  return parsed.data;
}

/** A JSON request body, validated; `empty` stands in for an absent body (e.g. `{}` when every field is optional). */
export async function readJsonBody<S extends z.ZodType>(
  req: Request,
  schema: S,
  opts: { empty?: unknown } = {},
): Promise<z.output<S>> {
  const text = await req.text();
  let input: unknown = opts.empty;
  if (text.trim() !== "") {
    try {
      input = JSON.parse(text);
    } catch {
      throw new HttpError(400, "invalid_body", "body: not valid JSON");
    }
  }
  return parseInput(schema, input, "invalid_body");
}

/** A request's query parameters, validated. */
export function readQuery<S extends z.ZodType>(req: Request, schema: S): z.output<S> {
  return parseInput(schema, Object.fromEntries(new URL(req.url).searchParams), "invalid_query", "query");
}
