/**
 * HTTP/1.1 over kept-alive TCP connections, for the sandbox's webhooks to plain-http receivers.
 *
 * The sandbox stands in for Twilio on the machine that also runs Herald, so what it spends on a
 * webhook is taken from the receiver it is measuring. `fetch` spends ~100 µs of CPU on each small
 * POST (headers objects, body and response streams); the same request written as bytes on a
 * connection kept open, and its response read back by its length, spends a fraction of that.
 * Twilio's own machines spend that cost in production, not the receiver's. https receivers (a
 * hosted project) still go through `fetch`.
 */

const latin1 = new TextDecoder("latin1");
const utf8 = new TextEncoder();

export interface Http1Response {
  status: number;
  body: Uint8Array;
  /** The server said it closes the connection after this response. */
  close: boolean;
}

/** One TCP connection to one origin, one request at a time. */
export class Http1Connection {
  #buf = new Uint8Array(16 * 1024);
  #len = 0;
  #closed = false;
  private constructor(private readonly conn: Deno.TcpConn) {}

  static async open(url: string | URL): Promise<Http1Connection> {
    const u = typeof url === "string" ? new URL(url) : url;
    if (u.protocol !== "http:") throw new Error(`Http1Connection speaks plain http, not ${u.protocol}`);
    const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port || 80) });
    conn.setNoDelay(true);
    return new Http1Connection(conn);
  }

  /** A POST of `body` to `url` with `headers`, as the bytes a connection writes. */
  static post(url: string | URL, headers: Record<string, string>, body: string): Uint8Array {
    const u = typeof url === "string" ? new URL(url) : url;
    const payload = utf8.encode(body);
    let head = `POST ${u.pathname}${u.search} HTTP/1.1\r\nhost: ${u.host}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    const start = utf8.encode(`${head}content-length: ${payload.byteLength}\r\n\r\n`);
    const all = new Uint8Array(start.byteLength + payload.byteLength);
    all.set(start);
    all.set(payload, start.byteLength);
    return all;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Writes one request and answers its response once all of it has been read. */
  async send(request: Uint8Array): Promise<Http1Response> {
    for (let at = 0; at < request.byteLength;) at += await this.conn.write(request.subarray(at));
    for (;;) {
      const done = this.#response(false);
      if (done) return done;
      if (this.#len === this.#buf.byteLength) {
        const bigger = new Uint8Array(this.#buf.byteLength * 2);
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
      const n = await this.conn.read(this.#buf.subarray(this.#len));
      if (n === null) {
        // A response delimited by the connection's end is whole now; anything else was cut short.
        const last = this.#response(true);
        this.close();
        if (last) return last;
        throw new Http1ClosedError(this.#len === 0);
      }
      this.#len += n;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  /** The buffered response when all of it has arrived (and drops it from the buffer), else null. */
  #response(ended: boolean): Http1Response | null {
    const b = this.#buf;
    let end = -1;
    for (let i = 3; i < this.#len; i++) {
      if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) {
        end = i + 1;
        break;
      }
    }
    if (end < 0) return null;
    const head = latin1.decode(b.subarray(0, end));
    const status = Number(head.slice(9, 12));
    if (!head.startsWith("HTTP/1.") || !Number.isInteger(status)) throw new Error(`not an HTTP/1 response: ${head.split("\r\n")[0]}`);
    const close = /\r\nconnection: *close/i.test(head);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    let body: Uint8Array;
    let total: number;
    if (status === 204 || status === 304) {
      body = new Uint8Array();
      total = end;
    } else if (length) {
      total = end + Number(length[1]);
      if (this.#len < total) return null;
      body = b.slice(end, total);
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      // Chunk by chunk (a size line, the data, CRLF) to the zero-size one and the blank line after it.
      const parts: Uint8Array[] = [];
      let at = end;
      for (;;) {
        let eol = at;
        while (eol + 1 < this.#len && !(b[eol] === 13 && b[eol + 1] === 10)) eol++;
        if (eol + 1 >= this.#len) return null;
        const size = parseInt(latin1.decode(b.subarray(at, eol)), 16);
        if (!Number.isFinite(size)) throw new Error("a malformed chunk size in a chunked response");
        if (eol + 2 + size + 2 > this.#len) return null;
        if (size > 0) parts.push(b.slice(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
        if (size === 0) break;
      }
      total = at;
      body = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let o = 0;
      for (const p of parts) {
        body.set(p, o);
        o += p.byteLength;
      }
    } else {
      // Neither length nor chunks: the body runs to the end of the connection.
      if (!ended) return null;
      total = this.#len;
      body = b.slice(end, total);
      return { status, body, close: true };
    }
    b.copyWithin(0, total, this.#len);
    this.#len -= total;
    return { status, body, close };
  }
}

/** The server closed the connection before the response was whole. */
export class Http1ClosedError extends Error {
  constructor(
    /** Nothing of a response had arrived: a kept-alive connection the server had already let go. */
    readonly beforeResponse: boolean,
  ) {
    super("the server closed the connection before its response was complete");
  }
}

/**
 * Kept-alive connections per origin: a request takes an idle one or opens one, and gives it back
 * when its response is whole. A request on a reused connection that the server closed before
 * answering is sent once more on a new one (the server let an idle connection go meanwhile).
 */
export class Http1Pool {
  readonly #idle = new Map<string, Http1Connection[]>();
  readonly #all = new Set<Http1Connection>();

  constructor(private readonly maxIdlePerOrigin: number) {}

  /** POSTs `body`; the abort of `signal` closes the connection and rejects with its reason. */
  async post(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<Http1Response> {
    const u = new URL(url);
    const request = Http1Connection.post(u, headers, body);
    signal.throwIfAborted();
    for (let again = false;; again = true) {
      // Sent again, it goes on a new connection: another idle one may have been let go too.
      const reused = again ? undefined : this.#idle.get(u.origin)?.pop();
      const conn = reused ?? await Http1Connection.open(u);
      this.#all.add(conn);
      const onAbort = () => conn.close();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        const res = await conn.send(request);
        if (res.close) conn.close();
        else this.#putBack(u.origin, conn);
        return res;
      } catch (err) {
        conn.close();
        signal.throwIfAborted();
        if (reused && err instanceof Http1ClosedError && err.beforeResponse) continue;
        throw err;
      } finally {
        signal.removeEventListener("abort", onAbort);
        if (conn.closed) this.#all.delete(conn);
      }
    }
  }

  /** Closes every connection, idle or busy (a busy request then fails). */
  close(): void {
    for (const c of this.#all) c.close();
    this.#all.clear();
    this.#idle.clear();
  }

  #putBack(origin: string, conn: Http1Connection): void {
    const idle = this.#idle.get(origin) ?? [];
    if (idle.length >= this.maxIdlePerOrigin) {
      conn.close(); // and post's finally forgets it
      return;
    }
    idle.push(conn);
    this.#idle.set(origin, idle);
  }
}
