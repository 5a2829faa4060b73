// The one error path of every function: a typed HttpError becomes `{ error: { code, message } }`
// with its status; anything else is logged and answered as a 500 without internals.

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
