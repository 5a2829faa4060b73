/**
 * sandbox/http1.ts against servers that answer in each of HTTP/1.1's ways: by length, by chunks,
 * to the end of the connection, closing a kept-alive connection, and not at all.
 */
import assert from "node:assert/strict";
import { Http1ClosedError, Http1Connection, Http1Pool } from "./http1.ts";

const text = new TextDecoder();
const bytes = new TextEncoder();

/**
 * A raw TCP server: `answer(request, n)` gives the bytes to write for the n-th request read on a
 * connection; `{ last }`: write them and close the connection; null: close it without a word.
 */
function rawServer(answer: (request: string, n: number) => string | { last: string } | null) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let connections = 0;
  const served = (async () => {
    for await (const conn of listener) {
      connections++;
      conns.add(conn);
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        let n = 0;
        try {
          for (;;) {
            const got = await conn.read(buf);
            if (got === null) break;
            const reply = answer(text.decode(buf.subarray(0, got)), ++n);
            if (reply === null) break;
            await conn.write(bytes.encode(typeof reply === "string" ? reply : reply.last));
            if (typeof reply !== "string") break;
          }
        } catch { /* closed by the test */ }
        conns.delete(conn);
        try {
          conn.close();
        } catch { /* already closed */ }
      })();
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/status?x=1`,
    get connections() {
      return connections;
    },
    async close() {
      try {
        listener.close();
      } catch { /* closed already */ }
      for (const c of conns) c.close();
      await served.catch(() => {});
    },
  };
}

Deno.test("Http1Connection: writes the request as given and reads a response by its length, then the next on the same connection", async () => {
  const requests: string[] = [];
  const server = rawServer((req) => {
    requests.push(req);
    return "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello";
  });
  const conn = await Http1Connection.open(server.url);
  try {
    const request = Http1Connection.post(server.url, { "x-twilio-signature": "sig" }, "a=1&b=é");
    for (const _ of [1, 2]) {
      const res = await conn.send(request);
      assert.equal(res.status, 200);
      assert.equal(text.decode(res.body), "hello");
      assert.equal(res.close, false);
    }
    assert.equal(server.connections, 1);
    assert.equal(
      requests[0],
      `POST /status?x=1 HTTP/1.1\r\nhost: ${new URL(server.url).host}\r\nx-twilio-signature: sig\r\ncontent-length: 8\r\n\r\na=1&b=é`,
    );
  } finally {
    conn.close();
    await server.close();
  }
});

Deno.test("Http1Connection: a chunked response, one delimited by the connection's end, and one cut short", async () => {
  const chunked = rawServer(() => "HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n4\r\nfail\r\n3\r\ned!\r\n0\r\n\r\n");
  const toEnd = rawServer(() => ({ last: "HTTP/1.0 201 Created\r\n\r\nall of it" }));
  const cut = rawServer(() => "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nnot all");
  try {
    const a = await Http1Connection.open(chunked.url);
    const res = await a.send(Http1Connection.post(chunked.url, {}, ""));
    assert.deepEqual([res.status, text.decode(res.body)], [500, "failed!"]);
    a.close();

    // The server says it closes after this answer: the pool then drops the connection.
    const server = rawServer(() => ({ last: "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbye" }));
    const b = await Http1Connection.open(server.url);
    const closing = await b.send(Http1Connection.post(server.url, {}, ""));
    assert.deepEqual([closing.status, text.decode(closing.body), closing.close], [200, "bye", true]);
    b.close();
    await server.close();

    const c = await Http1Connection.open(toEnd.url);
    const whole = await c.send(Http1Connection.post(toEnd.url, {}, ""));
    assert.deepEqual([whole.status, text.decode(whole.body)], [201, "all of it"]);

    const d = await Http1Connection.open(cut.url);
    const pending = d.send(Http1Connection.post(cut.url, {}, ""));
    setTimeout(() => cut.close(), 50);
    await assert.rejects(pending, (err) => err instanceof Http1ClosedError && !err.beforeResponse);
    d.close();
  } finally {
    await Promise.all([chunked.close(), toEnd.close(), cut.close()]);
  }
});

Deno.test("Http1Pool: reuses an idle connection, sends again once when the server had let it go, and aborts", async () => {
  let served = 0;
  // Every connection answers its first request, then closes when the second arrives unanswered.
  const server = rawServer((_req, n) => {
    if (n > 1) return null;
    served++;
    return `HTTP/1.1 200 OK\r\ncontent-length: ${String(served).length}\r\n\r\n${served}`;
  });
  const pool = new Http1Pool(4);
  try {
    const post = () => pool.post(server.url, { "content-type": "text/plain" }, "x", new AbortController().signal);
    assert.equal(text.decode((await post()).body), "1");
    // The idle connection is reused, the server closes it on sight: sent again on a new one.
    assert.equal(text.decode((await post()).body), "2");
    assert.equal(server.connections, 2);

    const silent = rawServer(() => "");
    const abort = new AbortController();
    const pending = pool.post(silent.url, {}, "x", abort.signal);
    setTimeout(() => abort.abort(new Error("timed out")), 50);
    await assert.rejects(pending, /timed out/);
    await silent.close();

    const refused = new AbortController();
    refused.abort(new Error("already aborted"));
    await assert.rejects(pool.post(server.url, {}, "x", refused.signal), /already aborted/);
  } finally {
    pool.close();
    await server.close();
  }
});

Deno.test("Http1Pool: sent again after a let-go connection, a request goes on a new one, not on another idle one", async () => {
  // Every connection answers its first request and closes on its second, unanswered.
  const server = rawServer((_req, n) => n > 1 ? null : "HTTP/1.1 204 No Content\r\n\r\n");
  const pool = new Http1Pool(4);
  try {
    const post = () => pool.post(server.url, {}, "x", new AbortController().signal);
    // Two at once: two connections, both idle afterwards, both let go by the server on sight.
    await Promise.all([post(), post()]);
    assert.equal(server.connections, 2);
    assert.equal((await post()).status, 204);
    assert.equal(server.connections, 3);
  } finally {
    pool.close();
    await server.close();
  }
});
