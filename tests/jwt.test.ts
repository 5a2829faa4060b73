import assert from "node:assert/strict";
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { LOCAL_JWT_SECRET, ROOT } from "@herald/scripts/lib/config.ts";
import { firstFreePort } from "@herald/scripts/lib/proc.ts";
import { type FunctionsServer, startFunctionsServer } from "@herald/scripts/lib/stack.ts";
import { type JwtClaims, signJwt } from "@herald/shared/jwt.ts";
import { callFunction, connect, createUser, createWorkspace, phone, stack, type TestUser } from "./support.ts";

// JWT verification in each mode a project can be in, at the functions themselves: each mode gets a
// functions server of its own with the local gateway's check off (as a function deployed with
// --no-verify-jwt), so what is refused here is refused by the function, not by a gateway in front.
//
//   secret  SUPABASE_JWT_SECRET set (the local stack, or a project on the legacy shared secret)
//   jwks    no secret: a real HTTP server in this test serves a JWKS made from key pairs
//           generated here, and the functions fetch it through HERALD_JWKS_URL

const HOUR = 3600;
const now = () => Math.floor(Date.now() / 1000);

interface Signer {
  /** A token this mode's functions must accept, with these claims. */
  sign(claims: JwtClaims): Promise<string>;
  /** The same claims, signed by a key the functions do not trust (same kid / algorithm). */
  forge(claims: JwtClaims): Promise<string>;
  /** A token signed the other mode's way, with a key that would be valid there. */
  otherMode(claims: JwtClaims): Promise<string>;
}

function userClaims(user: TestUser, extra: JwtClaims = {}): JwtClaims {
  return { sub: user.id, role: "authenticated", aud: "authenticated", email: user.email, iat: now(), exp: now() + HOUR, ...extra };
}

/** An unsigned token, `alg: none`, as an attacker would send it. */
function unsigned(claims: JwtClaims): string {
  const b64 = (o: unknown) => btoa(JSON.stringify(o)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`;
}

function serverEnv(overrides: Record<string, string>, without: string[] = []): Record<string, string> {
  const env: Record<string, string> = { ...Deno.env.toObject(), FUNCTIONS_NO_VERIFY_JWT: "true", ...overrides };
  for (const name of without) delete env[name];
  return env;
}

async function startServer(label: string, env: (url: string) => Record<string, string>): Promise<FunctionsServer> {
  const port = await firstFreePort(54400);
  const url = `http://127.0.0.1:${port}/functions/v1`;
  return await startFunctionsServer(port, env(url), `${ROOT}/.local/test-functions-${label}.log`);
}

function errorCode(res: { body: unknown }): string | undefined {
  return (res.body as { error?: { code?: string } }).error?.code;
}

/**
 * The cases every mode must get right, against delete-contact (a user function) and dispatch (the
 * service key only). A contact is deleted only by the valid call at the end; every refusal before
 * it leaves it alone.
 */
async function provesMode(t: Deno.TestContext, server: FunctionsServer, signer: Signer, serviceKeys: { bearer: string; apikey?: string }) {
  const sql = connect();
  try {
    const owner = await createUser(sql, "jwt-owner");
    const ws = await createWorkspace(sql, owner);
    const [{ id: contactId }] = await sql`insert into contacts (workspace_id, phone) values (${ws}, ${phone()}) returning id::text`;
    const deleteAs = (token: string) => callFunction("delete-contact", { token, body: { contact_id: contactId }, functionsUrl: server.url });

    const refusals: [string, () => string | Promise<string>, number, string][] = [
      ["alg: none", () => unsigned(userClaims(owner)), 401, "invalid_jwt"],
      ["bad signature", () => signer.forge(userClaims(owner)), 401, "invalid_jwt"],
      ["tampered claims", async () => {
        const [h, , sig] = (await signer.sign(userClaims(owner))).split(".");
        return `${h}.${unsigned(userClaims(owner, { sub: crypto.randomUUID() })).split(".")[1]}.${sig}`;
      }, 401, "invalid_jwt"],
      ["expired", () => signer.sign(userClaims(owner, { iat: now() - 2 * HOUR, exp: now() - HOUR })), 401, "jwt_expired"],
      ["no expiry", () => signer.sign(userClaims(owner, { exp: undefined })), 401, "invalid_jwt"],
      ["wrong audience", () => signer.sign(userClaims(owner, { aud: "some-other-api" })), 401, "invalid_jwt"],
      ["the other mode's token", () => signer.otherMode(userClaims(owner)), 401, "invalid_jwt"],
      ["not a JWT", () => "not.a.jwt", 401, "invalid_jwt"],
      ["anon role", () => signer.sign(userClaims(owner, { role: "anon" })), 403, "user_required"],
      ["service_role token", () => signer.sign(userClaims(owner, { role: "service_role" })), 403, "user_required"],
    ];
    for (const [name, token, status, code] of refusals) {
      await t.step(`user function refuses: ${name} → ${status} ${code}`, async () => {
        const res = await deleteAs(await token());
        assert.equal(res.status, status, res.text);
        assert.equal(errorCode(res), code, res.text);
      });
    }
    await t.step("user function: no token → 401 missing_jwt", async () => {
      const res = await callFunction("delete-contact", { body: { contact_id: contactId }, functionsUrl: server.url });
      assert.equal(res.status, 401);
      assert.equal(errorCode(res), "missing_jwt");
    });
    await t.step("nothing was deleted by a refused call", async () => {
      const [row] = await sql`select deleted_at from contacts where id = ${contactId}`;
      assert.equal(row.deleted_at, null);
    });
    await t.step("user function: a valid token → 200, and the work is done as that user", async () => {
      const res = await deleteAs(await signer.sign(userClaims(owner)));
      assert.equal(res.status, 200, res.text);
      const [row] = await sql`select deleted_at from contacts where id = ${contactId}`;
      assert.notEqual(row.deleted_at, null);
      const [log] = await sql`select actor from deletion_log where entity_id = ${contactId}`;
      assert.equal(log.actor, owner.id, "the deletion is recorded as the token's user");
    });

    const dispatchWith = (headers: Record<string, string>) =>
      callFunction("dispatch", { body: { limit: 1 }, headers, functionsUrl: server.url });
    const dispatchRefusals: [string, () => Record<string, string> | Promise<Record<string, string>>, number, string][] = [
      ["no credentials", () => ({}), 401, "missing_credentials"],
      ["a user's valid token", async () => ({ authorization: `Bearer ${await signer.sign(userClaims(owner))}` }), 403, "service_role_required"],
      ["a validly signed token with role service_role that is not the key", async () => ({
        authorization: `Bearer ${await signer.sign({ role: "service_role", iss: "supabase-demo", iat: now(), exp: now() + HOUR })}`,
      }), 403, "service_role_required"],
      ["the key with one character changed", () => ({
        authorization: `Bearer ${serviceKeys.bearer.slice(0, -1)}${serviceKeys.bearer.endsWith("A") ? "B" : "A"}`,
      }), 403, "service_role_required"],
      ["a secret key that is not the project's", () => ({ apikey: `sb_secret_${crypto.randomUUID().replaceAll("-", "")}` }), 403, "service_role_required"],
    ];
    for (const [name, headers, status, code] of dispatchRefusals) {
      await t.step(`dispatch refuses: ${name} → ${status} ${code}`, async () => {
        const res = await dispatchWith(await headers());
        assert.equal(res.status, status, res.text);
        assert.equal(errorCode(res), code, res.text);
      });
    }
    await t.step("dispatch accepts the service key as a bearer token", async () => {
      const res = await dispatchWith({ authorization: `Bearer ${serviceKeys.bearer}` });
      assert.equal(res.status, 200, res.text);
    });
    if (serviceKeys.apikey) {
      const apikey = serviceKeys.apikey;
      await t.step("dispatch accepts a secret key (sb_secret_…) in the apikey header, and as a bearer token", async () => {
        assert.equal((await dispatchWith({ apikey })).status, 200);
        assert.equal((await dispatchWith({ authorization: `Bearer ${apikey}` })).status, 200);
      });
    }
  } finally {
    await sql.end();
  }
}

Deno.test("JWT verification, secret mode (HS256 with the project's shared secret)", async (t) => {
  const ec = await generateKeyPair("ES256");
  const signer: Signer = {
    sign: (claims) => signJwt(claims, LOCAL_JWT_SECRET),
    forge: (claims) => signJwt(claims, "another-secret-of-at-least-thirty-two-characters"),
    otherMode: (claims) => new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: "k1" }).sign(ec.privateKey),
  };
  const server = await startServer("secret", (url) => serverEnv({ HERALD_FUNCTIONS_URL: url }));
  try {
    await provesMode(t, server, signer, { bearer: stack.serviceRoleKey });
  } finally {
    await server.stop();
  }
});

interface Jwks {
  url: string;
  /** How many times the functions fetched it. */
  fetches(): number;
  close(): Promise<void>;
}

function serveJwks(keys: JWK[]): Jwks {
  let fetches = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== "/auth/v1/.well-known/jwks.json") return new Response("not found", { status: 404 });
    fetches++;
    return Response.json({ keys });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/auth/v1/.well-known/jwks.json`,
    fetches: () => fetches,
    close: () => server.shutdown(),
  };
}

async function publicJwk(key: CryptoKey, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(key)), kid, alg, use: "sig" };
}

Deno.test("JWT verification, JWKS mode (ES256 and RS256 against the project's published keys)", async (t) => {
  const ec = await generateKeyPair("ES256");
  const rsa = await generateKeyPair("RS256");
  const impostor = await generateKeyPair("ES256");
  const jwks = serveJwks([await publicJwk(ec.publicKey, "ec-1", "ES256"), await publicJwk(rsa.publicKey, "rsa-1", "RS256")]);
  const secretKey = `sb_secret_${crypto.randomUUID().replaceAll("-", "")}`;
  const signer: Signer = {
    sign: (claims) => new SignJWT(claims).setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "ec-1" }).sign(ec.privateKey),
    forge: (claims) => new SignJWT(claims).setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "ec-1" }).sign(impostor.privateKey),
    // A token signed with the local shared secret: what this mode must never take on trust.
    otherMode: (claims) => signJwt(claims, LOCAL_JWT_SECRET),
  };
  let server: FunctionsServer | undefined;
  try {
    server = await startServer("jwks", (url) =>
      serverEnv({ HERALD_FUNCTIONS_URL: url, HERALD_JWKS_URL: jwks.url, SUPABASE_SECRET_KEYS: JSON.stringify({ default: secretKey }) }, [
        "SUPABASE_JWT_SECRET",
      ]));
    await provesMode(t, server, signer, { bearer: stack.serviceRoleKey, apikey: secretKey });

    const sql = connect();
    try {
      const user = await createUser(sql, "jwks-rsa");
      await createWorkspace(sql, user);
      await t.step("an RS256 token from the same key set → 200", async () => {
        const token = await new SignJWT(userClaims(user)).setProtectedHeader({ alg: "RS256", kid: "rsa-1" }).sign(rsa.privateKey);
        const res = await callFunction("export-queue", { token, functionsUrl: server!.url });
        assert.equal(res.status, 200, res.text);
        assert.match(res.text, /^message_id,/);
      });
      await t.step("a kid the project does not publish → 401 invalid_jwt", async () => {
        const token = await new SignJWT(userClaims(user)).setProtectedHeader({ alg: "ES256", kid: "rotated-out" }).sign(impostor.privateKey);
        const res = await callFunction("export-queue", { token, functionsUrl: server!.url });
        assert.equal(res.status, 401, res.text);
        assert.equal(errorCode(res), "invalid_jwt");
      });
    } finally {
      await sql.end();
    }
    await t.step("the key set is fetched once and cached by the isolate, not fetched per request", () => {
      assert.equal(jwks.fetches(), 1);
    });
  } finally {
    await server?.stop();
    await jwks.close();
  }
});

Deno.test("JWT verification behind the local gateway (verify_jwt = true): refused before the function runs", async () => {
  const sql = connect();
  try {
    const owner = await createUser(sql, "gateway");
    const expired = await signJwt(userClaims(owner, { iat: now() - 2 * HOUR, exp: now() - HOUR }), LOCAL_JWT_SECRET);
    const res = await callFunction("export-queue", { token: expired });
    assert.equal(res.status, 401);
    assert.equal(errorCode(res), "jwt_expired");
    const none = await callFunction("export-queue", { token: unsigned(userClaims(owner)) });
    assert.equal(none.status, 401);
    assert.equal(errorCode(none), "invalid_jwt");
  } finally {
    await sql.end();
  }
});
