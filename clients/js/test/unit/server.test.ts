// @rotor/client/server: the verifier (WebCrypto Ed25519 and ES256, claims,
// JWKS caching) and the Next.js helpers, against a fake Rotor.
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { describe, test } from "node:test";
import { REFRESH_COOKIE, TokenError, createRotorServer, createVerifier } from "../../src/server.js";
import { json } from "./fakes.js";

const subtle = webcrypto.subtle;
const ISS = "http://rotor.test";
const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");

interface Key {
  kid: string;
  alg: "EdDSA" | "ES256";
  priv: webcrypto.CryptoKey;
  jwk: Record<string, unknown>;
}

async function newKey(alg: "EdDSA" | "ES256", kid: string): Promise<Key> {
  const params = alg === "EdDSA" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256" };
  const pair = (await subtle.generateKey(params, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const jwk = (await subtle.exportKey("jwk", pair.publicKey)) as Record<string, unknown>;
  delete jwk["key_ops"];
  delete jwk["ext"];
  return { kid, alg, priv: pair.privateKey, jwk: { ...jwk, kid, alg, use: "sig" } };
}

async function sign(key: Key, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const h = enc({ alg: key.alg, typ: "at+jwt", kid: key.kid, ...header });
  const p = enc(claims);
  const algo = key.alg === "EdDSA" ? { name: "Ed25519" } : { name: "ECDSA", hash: "SHA-256" };
  const sig = Buffer.from(await subtle.sign(algo, key.priv, Buffer.from(h + "." + p))).toString("base64url");
  return `${h}.${p}.${sig}`;
}

const NOW = 1_800_000_000_000;
const claims = (over: Record<string, unknown> = {}) => ({
  iss: ISS,
  sub: "user-1",
  aud: ["rotor"],
  exp: NOW / 1000 + 900,
  nbf: NOW / 1000,
  iat: NOW / 1000,
  jti: "jti-1",
  sid: "sid-1",
  roles: [],
  email: "ada@example.test",
  ...over,
});

function jwksServer(keys: Key[]) {
  const state = { keys, fetches: 0 };
  const f = async (input: RequestInfo | URL) => {
    assert.equal(String(input), ISS + "/.well-known/jwks.json");
    state.fetches++;
    return json(200, { keys: state.keys.map((k) => k.jwk) });
  };
  return { state, fetch: f as typeof fetch };
}

describe("verifier", () => {
  test("Ed25519 and ES256 tokens verify; claims come back", async () => {
    const ed = await newKey("EdDSA", "ed");
    const ec = await newKey("ES256", "ec");
    const srv = jwksServer([ed, ec]);
    let now = NOW;
    const v = createVerifier({ issuer: ISS, fetch: srv.fetch, now: () => now });
    assert.equal((await v.verify(await sign(ed, claims()))).sub, "user-1");
    assert.equal((await v.verify(await sign(ec, claims()))).sid, "sid-1");
    assert.equal(srv.state.fetches, 1, "the JWKS is cached");
    now += 301_000;
    await v.verify(await sign(ed, claims({ exp: now / 1000 + 60 })));
    assert.equal(srv.state.fetches, 2, "and refetched when older than jwksMaxAge");
  });

  test("refuses what Rotor refuses", async () => {
    const ed = await newKey("EdDSA", "ed");
    const other = await newKey("EdDSA", "ed"); // same kid, another key
    const srv = jwksServer([ed]);
    const v = createVerifier({ issuer: ISS, fetch: srv.fetch, now: () => NOW });
    const bad = async (token: string | Promise<string>, why: RegExp) => {
      await assert.rejects(v.verify(await token), (e: unknown) => e instanceof TokenError && e.code === "invalid_token" && why.test(e.message));
    };
    await bad(sign(ed, claims(), { typ: "JWT" }), /typ/);
    await bad(sign(ed, claims(), { typ: undefined }), /typ/);
    await bad(sign(ed, claims({ iss: "http://evil.test" })), /issuer/);
    await bad(sign(ed, claims({ aud: ["other"] })), /audience/);
    await bad(sign(ed, claims({ exp: NOW / 1000 - 31 })), /expired/);
    await bad(sign(ed, claims({ nbf: NOW / 1000 + 31 })), /not yet/);
    await bad(sign(ed, claims({ iat: NOW / 1000 + 31 })), /future/);
    await bad(sign(ed, claims({ sid: undefined })), /missing sid/);
    await bad(sign(ed, claims(), { jku: "http://evil.test/jwks" }), /forbidden header jku/);
    await bad(sign(ed, claims(), { jwk: ed.jwk }), /forbidden header jwk/);
    await bad(sign(other, claims()), /signature/);
    const good = await sign(ed, claims());
    const [h, p, s] = good.split(".") as [string, string, string];
    await bad(`${enc({ alg: "none", typ: "at+jwt", kid: "ed" })}.${p}.`, /malformed|algorithm/);
    await bad(`${enc({ alg: "HS256", typ: "at+jwt", kid: "ed" })}.${p}.${s}`, /algorithm/);
    await bad(`${h}.${enc(claims({ sub: "user-2" }))}.${s}`, /signature/);
    await bad(`${h}.${p}.AAAA`, /signature/);
    await bad("a.b", /malformed/);
    // an ES256 header on an Ed25519 key: no algorithm confusion
    await bad(`${enc({ alg: "ES256", typ: "at+jwt", kid: "ed" })}.${p}.${s}`, /another algorithm|does not match/);
  });

  test("leeway: 30 s past exp still verifies (as Rotor), 31 s does not", async () => {
    const ed = await newKey("EdDSA", "ed");
    const v = createVerifier({ issuer: ISS, fetch: jwksServer([ed]).fetch, now: () => NOW });
    await v.verify(await sign(ed, claims({ exp: NOW / 1000 - 29 })));
    await assert.rejects(v.verify(await sign(ed, claims({ exp: NOW / 1000 - 30 }))));
  });

  test("an unknown kid refetches the JWKS, at most once per jwksMinInterval", async () => {
    const old = await newKey("EdDSA", "old");
    const rotated = await newKey("EdDSA", "new");
    const srv = jwksServer([old]);
    let now = NOW;
    const v = createVerifier({ issuer: ISS, fetch: srv.fetch, now: () => now });
    await v.verify(await sign(old, claims()));
    srv.state.keys = [rotated, old];
    await assert.rejects(v.verify(await sign(rotated, claims())), /unknown kid/, "within 30 s of the last fetch");
    assert.equal(srv.state.fetches, 1);
    now += 31_000;
    const forged = await newKey("EdDSA", "forged");
    await Promise.all([v.verify(await sign(rotated, claims())), v.verify(await sign(rotated, claims()))]);
    assert.equal(srv.state.fetches, 2, "one refetch for both");
    for (let i = 0; i < 5; i++) await assert.rejects(v.verify(await sign(forged, claims())), /unknown kid/);
    assert.equal(srv.state.fetches, 2, "unknown kids do not hammer the JWKS");
  });

  test("JWKS unreachable: jwks_unavailable, not invalid_token", async () => {
    const ed = await newKey("EdDSA", "ed");
    const v = createVerifier({ issuer: ISS, fetch: (async () => { throw new TypeError("ECONNREFUSED"); }) as typeof fetch, now: () => NOW });
    await assert.rejects(v.verify(await sign(ed, claims())), (e: unknown) => e instanceof TokenError && e.code === "jwks_unavailable");
  });

  test("after a failed fetch, a valid token is unavailable (503), not invalid (401), until a fetch succeeds", async () => {
    const ed = await newKey("EdDSA", "ed");
    let up = false;
    let now = NOW;
    const f = (async () => {
      if (!up) throw new TypeError("ECONNREFUSED");
      return json(200, { keys: [ed.jwk] });
    }) as typeof fetch;
    const v = createVerifier({ issuer: ISS, fetch: f, now: () => now });
    const tok = await sign(ed, claims());
    await assert.rejects(v.verify(tok), (e: unknown) => e instanceof TokenError && e.code === "jwks_unavailable");
    up = true; // back, but within the refetch interval: still "cannot check", never "invalid"
    await assert.rejects(v.verify(tok), (e: unknown) => e instanceof TokenError && e.code === "jwks_unavailable");
    now += 31_000;
    const c = await v.verify(tok);
    assert.equal(c.sub, "user-1");
  });
});

describe("Next.js helpers", () => {
  async function world() {
    const ed = await newKey("EdDSA", "ed");
    let now = NOW;
    let n = 0;
    const calls: { path: string; headers: Headers; body: string }[] = [];
    let refreshAnswer: "ok" | "invalid_grant" | "503" = "ok";
    const f = (async (input: RequestInfo | URL, init: RequestInit = {}) => {
      const url = new URL(String(input));
      const headers = new Headers(init.headers);
      calls.push({ path: url.pathname + url.search, headers, body: typeof init.body === "string" ? init.body : init.body ? new TextDecoder().decode(init.body as ArrayBuffer) : "" });
      if (url.pathname === "/.well-known/jwks.json") return json(200, { keys: [ed.jwk] });
      if (url.pathname === "/refresh" || url.pathname === "/token") {
        await new Promise((r) => setTimeout(r, 5));
        if (refreshAnswer === "503") return json(503, { error: "temporarily_unavailable", error_description: "x" });
        if (refreshAnswer === "invalid_grant") {
          return new Response(JSON.stringify({ error: "invalid_grant", error_description: "session has been revoked" }), {
            status: 400,
            headers: { "Set-Cookie": `${REFRESH_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict` },
          });
        }
        const at = await sign(ed, claims({ iat: now / 1000, nbf: now / 1000, exp: now / 1000 + 900, jti: "j" + ++n }));
        return new Response(JSON.stringify({ access_token: at, token_type: "Bearer", expires_in: 900, session_id: "sid-1" }), {
          status: 200,
          headers: { "Content-Type": "application/json", "Set-Cookie": `${REFRESH_COOKIE}=rt_${n}; Path=/; Max-Age=1209600; HttpOnly; Secure; SameSite=Strict` },
        });
      }
      if (url.pathname === "/logout") return new Response(null, { status: 204, headers: { "Set-Cookie": `${REFRESH_COOKIE}=; Path=/; Max-Age=0` } });
      if (url.pathname === "/me") return json(200, { id: "user-1" });
      return json(404, {});
    }) as typeof fetch;
    const rotor = createRotorServer({
      rotorUrl: ISS,
      appOrigin: "http://app.test",
      issuer: ISS,
      fetch: f,
      now: () => now,
    });
    return {
      rotor,
      ed,
      calls,
      refreshes: () => calls.filter((c) => c.path === "/refresh"),
      set answer(a: typeof refreshAnswer) {
        refreshAnswer = a;
      },
      advance: (ms: number) => (now += ms),
      token: (over: Record<string, unknown> = {}) => sign(ed, claims({ iat: now / 1000, nbf: now / 1000, exp: now / 1000 + 900, ...over })),
    };
  }
  const req = (cookie: string, path = "/dashboard") => new Request("http://app.test" + path, { headers: { cookie } });

  test("middleware: a valid access cookie passes without a refresh", async () => {
    const w = await world();
    const at = await w.token();
    const r = await w.rotor.middleware(req(`__Host-rotor_access=${at}; ${REFRESH_COOKIE}=rt_0`));
    assert.equal(r.refresh, "none");
    assert.equal(r.session?.sub, "user-1");
    assert.equal(w.refreshes().length, 0);
    assert.equal([...r.responseHeaders].length, 0);
  });

  test("middleware: a due access cookie refreshes once; concurrent requests share it", async () => {
    const w = await world();
    const at = await w.token();
    w.advance(841_000); // 59 s left: due
    const cookie = `theme=dark; __Host-rotor_access=${at}; ${REFRESH_COOKIE}=rt_0`;
    const [a, b] = await Promise.all([w.rotor.middleware(req(cookie)), w.rotor.middleware(req(cookie, "/other"))]);
    assert.equal(w.refreshes().length, 1, "one refresh for both requests");
    const call = w.refreshes()[0]!;
    assert.equal(call.headers.get("origin"), "http://app.test");
    assert.equal(call.headers.get("cookie"), `${REFRESH_COOKIE}=rt_0`, "only the refresh cookie goes to Rotor");
    assert.equal(call.headers.get("content-type"), "application/json");
    for (const r of [a, b]) {
      assert.equal(r.refresh, "refreshed");
      assert.equal(r.session?.jti, "j1");
      assert.equal(r.responseHeaders.get("cache-control"), "private, no-store");
      const sc = r.responseHeaders.getSetCookie();
      assert.equal(sc.length, 2);
      assert.match(sc[0]!, /^__Host-rotor_refresh=rt_1;/);
      assert.match(sc[1]!, /^__Host-rotor_access=ey[^;]+; Path=\/; Max-Age=900; HttpOnly; Secure; SameSite=Strict$/);
      const fwd = r.requestHeaders.get("cookie")!;
      assert.match(fwd, /theme=dark/);
      assert.match(fwd, /__Host-rotor_refresh=rt_1/);
      assert.ok(!fwd.includes(at), "server components see the new access token");
    }
    // the next request, carrying the new cookies: no refresh
    const again = await w.rotor.middleware(req(a.requestHeaders.get("cookie")!));
    assert.equal(again.refresh, "none");
    assert.equal(w.refreshes().length, 1);
  });

  test("middleware: no access cookie, a refresh cookie → refresh; neither → nothing", async () => {
    const w = await world();
    assert.equal((await w.rotor.middleware(req(`${REFRESH_COOKIE}=rt_0`))).refresh, "refreshed");
    const none = await w.rotor.middleware(req("theme=dark"));
    assert.equal(none.refresh, "none");
    assert.equal(none.session, null);
    assert.equal(w.refreshes().length, 1);
  });

  test("middleware: invalid_grant clears both cookies; 503 keeps them", async () => {
    const w = await world();
    w.answer = "invalid_grant";
    const r = await w.rotor.middleware(req(`${REFRESH_COOKIE}=rt_0`));
    assert.equal(r.refresh, "signed_out");
    assert.equal(r.session, null);
    const sc = r.responseHeaders.getSetCookie();
    assert.ok(sc.some((c) => c.startsWith(`${REFRESH_COOKIE}=;`)));
    assert.ok(sc.some((c) => /^__Host-rotor_access=; Path=\/; Max-Age=0/.test(c)));
    w.answer = "503";
    const u = await w.rotor.middleware(req(`${REFRESH_COOKIE}=rt_0`));
    assert.equal(u.refresh, "unavailable");
    assert.equal(u.responseHeaders.getSetCookie().length, 0);
  });

  test("getSession verifies and never refreshes", async () => {
    const w = await world();
    const at = await w.token();
    const store = (v?: string) => ({ get: (n: string) => (n === "__Host-rotor_access" && v ? { value: v } : undefined) });
    assert.equal((await w.rotor.getSession(store(at)))?.sub, "user-1");
    assert.equal(await w.rotor.getSession(store("garbage")), null);
    w.advance(1000_000);
    assert.equal(await w.rotor.getSession(store(at)), null);
    assert.equal(w.refreshes().length, 0);
  });

  test("verifyRequest and unauthorized", async () => {
    const w = await world();
    const at = await w.token();
    const ok = new Request("http://app.test/api/notes", { headers: { Authorization: "Bearer " + at } });
    assert.equal((await w.rotor.verifyRequest(ok))?.sub, "user-1");
    assert.equal(await w.rotor.verifyRequest(new Request("http://app.test/api/notes")), null);
    const res = w.rotor.unauthorized();
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), 'Bearer error="invalid_token"');
  });

  test("authRoute forwards allowed endpoints with the refresh cookie only, and keeps the access cookie in step", async () => {
    const w = await world();
    const login = await w.rotor.authRoute(
      new Request("http://app.test/auth/token", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Origin: "http://app.test",
          cookie: `theme=dark; ${REFRESH_COOKIE}=rt_0`,
          "X-Forwarded-For": "6.6.6.6", // spoofed by the client: never passed on
        },
        body: JSON.stringify({ username: "ada", password: "pw" }),
      }),
    );
    assert.equal(login.status, 200);
    const call = w.calls.find((c) => c.path === "/token")!;
    assert.equal(call.headers.get("origin"), "http://app.test");
    assert.equal(call.headers.get("cookie"), `${REFRESH_COOKIE}=rt_0`);
    assert.equal(call.body, JSON.stringify({ username: "ada", password: "pw" }));
    assert.equal(call.headers.get("x-forwarded-for"), null);
    const sc = login.headers.getSetCookie();
    assert.ok(sc.some((c) => c.startsWith(`${REFRESH_COOKIE}=rt_`)));
    assert.ok(sc.some((c) => c.startsWith("__Host-rotor_access=ey")));
    assert.equal(login.headers.get("cache-control"), "private, no-store");

    const out = await w.rotor.authRoute(new Request("http://app.test/auth/logout", { method: "POST", headers: { cookie: `${REFRESH_COOKIE}=rt_1` } }));
    assert.equal(out.status, 204);
    assert.ok(out.headers.getSetCookie().some((c) => c.startsWith("__Host-rotor_access=;")));

    assert.equal((await w.rotor.authRoute(new Request("http://app.test/auth/admin/users"))).status, 404);
    assert.equal((await w.rotor.authRoute(new Request("http://app.test/auth/metrics"))).status, 404);
    assert.equal((await w.rotor.authRoute(new Request("http://app.test/auth/me"))).status, 200);
  });
});
