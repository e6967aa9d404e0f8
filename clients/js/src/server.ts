/**
 * @rotor/client/server: access-token verification with Rotor's JWKS
 * (WebCrypto: Ed25519 and ES256) and helpers for Next.js (App Router) and
 * other servers with Web `Request`/`Response`: a refresh at most once per
 * incoming request in middleware (`proxy.ts`), a read-only session for server
 * components, and a same-origin proxy for Rotor's endpoints.
 *
 * @packageDocumentation
 */
import { b64urlBytes, jsonSegment } from "./errors.js";

/** The claims of a verified Rotor access token. */
export interface AccessClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  nbf?: number;
  jti: string;
  sid: string;
  roles: string[];
  email?: string;
  [claim: string]: unknown;
}

/** Why verification failed: `invalid_token` (answer 401), `jwks_unavailable` (answer 503). */
export class TokenError extends Error {
  readonly code: "invalid_token" | "jwks_unavailable";
  constructor(code: "invalid_token" | "jwks_unavailable", message: string) {
    super(message);
    this.name = "TokenError";
    this.code = code;
  }
}

export type Algorithm = "EdDSA" | "ES256";

/** Options of createVerifier. */
export interface VerifierOptions {
  /** Expected `iss` (Rotor's JWT_ISSUER). */
  issuer: string;
  /** Expected `aud` (Rotor's JWT_AUDIENCE); default `rotor`. */
  audience?: string;
  /** Default `<issuer>/.well-known/jwks.json`. */
  jwksUrl?: string;
  /** Accepted algorithms; default both `EdDSA` and `ES256`. `none` and HMAC never are. */
  algorithms?: Algorithm[];
  /** Clock skew tolerated on exp/nbf/iat, seconds (default 30, as Rotor). */
  leeway?: number;
  /** How long a fetched JWKS is used, seconds (default 300). */
  jwksMaxAge?: number;
  /** An unknown `kid` refetches the JWKS at most this often, seconds (default 30). */
  jwksMinInterval?: number;
  fetch?: typeof fetch;
  /** ms since the epoch. */
  now?: () => number;
}

/** Verifies access tokens offline. Revocations are not seen (use Rotor's /introspect or /revocations for that). */
export interface Verifier {
  /** Resolves the claims, or rejects with a TokenError. */
  verify(token: string): Promise<AccessClaims>;
}

interface Jwk {
  kty?: string;
  crv?: string;
  kid?: string;
  alg?: string;
  use?: string;
  x?: string;
  y?: string;
}

const FORBIDDEN_HEADERS = ["jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit"];

/** Creates a verifier that caches the JWKS and refetches it (rate-limited) on an unknown kid. */
export function createVerifier(o: VerifierOptions): Verifier {
  const audience = o.audience ?? "rotor";
  const jwksUrl = o.jwksUrl ?? o.issuer.replace(/\/+$/, "") + "/.well-known/jwks.json";
  const algs = new Set<string>(o.algorithms ?? ["EdDSA", "ES256"]);
  const leeway = (o.leeway ?? 30) * 1000;
  const maxAge = (o.jwksMaxAge ?? 300) * 1000;
  const minInterval = (o.jwksMinInterval ?? 30) * 1000;
  const f = o.fetch ?? ((...a) => globalThis.fetch(...a));
  const now = o.now ?? Date.now;
  let keys = new Map<string, Jwk>();
  const imported = new Map<string, Promise<CryptoKey>>();
  let fetchedAt = -Infinity;
  // The last fetch failed: an unknown kid then means "cannot check", not
  // "invalid", until a fetch succeeds.
  let lastFailed = false;
  let loading: Promise<void> | null = null;

  const load = (): Promise<void> => {
    loading ??= (async () => {
      try {
        const res = await f(jwksUrl, { headers: { Accept: "application/json" } });
        if (!res.ok) throw new Error("HTTP " + res.status);
        const body = (await res.json()) as { keys?: Jwk[] };
        const next = new Map<string, Jwk>();
        for (const k of body.keys ?? []) if (typeof k.kid === "string") next.set(k.kid, k);
        keys = next;
        imported.clear();
        fetchedAt = now();
        lastFailed = false;
      } catch (e) {
        fetchedAt = now(); // rate-limit failures too
        lastFailed = true;
        throw new TokenError("jwks_unavailable", `cannot fetch the JWKS from ${jwksUrl}: ${String((e as Error)?.message ?? e)}`);
      } finally {
        loading = null;
      }
    })();
    return loading;
  };

  const keyFor = async (kid: string): Promise<Jwk> => {
    const age = now() - fetchedAt;
    if (age > maxAge) await load().catch((e) => {
      if (keys.size === 0) throw e; // keep using the last good set
    });
    let k = keys.get(kid);
    if (!k && now() - fetchedAt >= minInterval) {
      await load();
      k = keys.get(kid);
    }
    if (!k && lastFailed) throw new TokenError("jwks_unavailable", `cannot fetch the JWKS from ${jwksUrl}; retry shortly`);
    if (!k) throw new TokenError("invalid_token", "unknown kid");
    return k;
  };

  const importKey = (kid: string, jwk: Jwk, alg: string): Promise<CryptoKey> => {
    let p = imported.get(kid + " " + alg);
    if (!p) {
      if (jwk.use && jwk.use !== "sig") throw new TokenError("invalid_token", "key is not a signing key");
      if (jwk.alg && jwk.alg !== alg) throw new TokenError("invalid_token", "key is for another algorithm");
      let algo: EcKeyImportParams | Algorithm | { name: string };
      if (alg === "EdDSA" && jwk.kty === "OKP" && jwk.crv === "Ed25519") algo = { name: "Ed25519" };
      else if (alg === "ES256" && jwk.kty === "EC" && jwk.crv === "P-256") algo = { name: "ECDSA", namedCurve: "P-256" };
      else throw new TokenError("invalid_token", "key does not match the algorithm");
      const pub: JsonWebKey = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, ext: true } as JsonWebKey;
      if (jwk.y) pub.y = jwk.y;
      p = crypto.subtle.importKey("jwk", pub, algo as AlgorithmIdentifier, false, ["verify"]);
      imported.set(kid + " " + alg, p);
      p.catch(() => imported.delete(kid + " " + alg));
    }
    return p;
  };

  return {
    async verify(token: string): Promise<AccessClaims> {
      const bad = (why: string) => new TokenError("invalid_token", why);
      if (typeof token !== "string" || token.length > 4096) throw bad("malformed token");
      const parts = token.split(".");
      if (parts.length !== 3) throw bad("malformed token");
      const [h, p, s] = parts as [string, string, string];
      const header = jsonSegment(h);
      const claims = jsonSegment(p);
      if (!header || !claims || !/^[A-Za-z0-9_-]+$/.test(s)) throw bad("malformed token");
      const alg = header["alg"];
      if (typeof alg !== "string" || !algs.has(alg)) throw bad("algorithm not accepted");
      const typ = header["typ"];
      if (typeof typ !== "string" || !["at+jwt", "application/at+jwt"].includes(typ.toLowerCase())) throw bad("not an access token (typ)");
      for (const name of FORBIDDEN_HEADERS) if (name in header) throw bad("forbidden header " + name);
      const kid = header["kid"];
      if (typeof kid !== "string" || !kid) throw bad("no kid");
      const key = await importKey(kid, await keyFor(kid), alg);
      const sig = b64urlBytes(s);
      const data = new TextEncoder().encode(h + "." + p);
      const algo = alg === "EdDSA" ? { name: "Ed25519" } : { name: "ECDSA", hash: "SHA-256" };
      if ((alg === "ES256" && sig.length !== 64) || (alg === "EdDSA" && sig.length !== 64)) throw bad("bad signature");
      if (!(await crypto.subtle.verify(algo, key, sig as BufferSource, data as BufferSource))) throw bad("bad signature");

      const t = now();
      const num = (v: unknown) => typeof v === "number" && Number.isFinite(v);
      if (claims["iss"] !== o.issuer) throw bad("wrong issuer");
      const aud = claims["aud"];
      if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) throw bad("wrong audience");
      if (!num(claims["exp"]) || t >= (claims["exp"] as number) * 1000 + leeway) throw bad("expired");
      if (claims["nbf"] !== undefined && (!num(claims["nbf"]) || t < (claims["nbf"] as number) * 1000 - leeway)) throw bad("not yet valid");
      if (!num(claims["iat"]) || (claims["iat"] as number) * 1000 - leeway > t) throw bad("issued in the future");
      for (const c of ["sub", "sid", "jti"]) if (typeof claims[c] !== "string" || !claims[c]) throw bad("missing " + c);
      if (!Array.isArray(claims["roles"])) claims["roles"] = [];
      return claims as AccessClaims;
    },
  };
}

// ---------------------------------------------------------------------------
// Next.js (and any server with Web Request/Response)

/** Rotor's browser-mode refresh cookie. */
export const REFRESH_COOKIE = "__Host-rotor_refresh";

/** Options of createRotorServer. */
export interface RotorServerOptions {
  /** Rotor as this server reaches it, e.g. `http://127.0.0.1:8080`. */
  rotorUrl: string;
  /** The app's public origin (listed in Rotor's CORS_ALLOWED_ORIGINS); sent as `Origin` on server-side refreshes. */
  appOrigin: string;
  /** Expected `iss` (Rotor's JWT_ISSUER). */
  issuer: string;
  /** Expected `aud`; default `rotor`. */
  audience?: string;
  /** The app's HttpOnly cookie holding the access token for server rendering; default `__Host-rotor_access`. */
  accessCookie?: string;
  /** Where authRoute is mounted; default `/auth`. */
  basePath?: string;
  /** Middleware refreshes when less than this is left, seconds (default 60; at most half the lifetime). */
  refreshMargin?: number;
  /**
   * The browser's IP address, sent to Rotor as `X-Forwarded-For` by authRoute
   * (for Rotor's per-IP limits and the sessions list; Rotor must list this
   * server in TRUSTED_PROXIES). Default: none, and the incoming
   * X-Forwarded-For is NOT passed on: Next.js hands a client-supplied one
   * through unchanged, so only a value your own edge proxy sets can be trusted.
   */
  clientIp?: (request: Request) => string | null | undefined;
  /** Options for the verifier (algorithms, leeway, JWKS caching). */
  verifier?: Omit<VerifierOptions, "issuer" | "audience" | "fetch" | "now">;
  fetch?: typeof fetch;
  now?: () => number;
}

/** What the middleware helper decided, for `NextResponse.next({ request: { headers: requestHeaders }, headers: responseHeaders })`. */
export interface MiddlewareResult {
  /** The incoming headers, with the cookie header updated when a refresh happened (server components then see the new token). */
  requestHeaders: Headers;
  /** Set-Cookie (Rotor's rotated refresh cookie and the access cookie) and Cache-Control, to add to the response. */
  responseHeaders: Headers;
  /** The verified claims, or null when signed out. */
  session: AccessClaims | null;
  /** `none`, `refreshed`, `signed_out` (Rotor refused the refresh cookie) or `unavailable`. */
  refresh: "none" | "refreshed" | "signed_out" | "unavailable";
}

/** Something like Next's `cookies()` store. */
export interface CookieReader {
  get(name: string): { value: string } | undefined;
}

/** The server helpers. */
export interface RotorServer {
  verifier: Verifier;
  /**
   * For middleware (Next's `proxy.ts`): verifies the access cookie and, if it
   * is missing or due and the refresh cookie is present, refreshes **once**
   * (concurrent requests with the same cookie share that one refresh).
   */
  middleware(request: Request): Promise<MiddlewareResult>;
  /** Read-only, for server components: the verified access cookie or null. Never refreshes. */
  getSession(cookies: CookieReader): Promise<AccessClaims | null>;
  /** For API routes: the verified `Authorization: Bearer` token, or null. Rejects (TokenError jwks_unavailable) when keys cannot be fetched. */
  verifyRequest(request: Request): Promise<AccessClaims | null>;
  /** A 401 with `WWW-Authenticate: Bearer error="invalid_token"`, which @rotor/client's fetch answers with one refresh and one retry. */
  unauthorized(description?: string): Response;
  /**
   * A route handler for `app/auth/[...path]/route.ts`: forwards Rotor's
   * user-facing endpoints under the app's origin, so the refresh cookie is
   * the app's, and keeps the access cookie in step with /token, /refresh and /logout.
   */
  authRoute(request: Request): Promise<Response>;
}

interface Refreshed {
  status: number;
  setCookies: string[];
  body: { access_token?: string; expires_in?: number; error?: string } | null;
}

const PROXIED = /^\/(users|token|refresh|logout|me|password|sessions(\/[0-9a-fA-F-]{36})?|\.well-known\/(jwks\.json|oauth-authorization-server))$/;

/** Creates the server helpers. */
export function createRotorServer(o: RotorServerOptions): RotorServer {
  const rotor = o.rotorUrl.replace(/\/+$/, "");
  const f = o.fetch ?? ((...a) => globalThis.fetch(...a));
  const now = o.now ?? Date.now;
  const accessCookie = o.accessCookie ?? "__Host-rotor_access";
  const basePath = (o.basePath ?? "/auth").replace(/\/+$/, "");
  const marginMs = (o.refreshMargin ?? 60) * 1000;
  const verifier = createVerifier({
    ...o.verifier,
    issuer: o.issuer,
    audience: o.audience ?? "rotor",
    jwksUrl: o.verifier?.jwksUrl ?? rotor + "/.well-known/jwks.json",
    fetch: f,
    now,
  });
  const inflight = new Map<string, Promise<Refreshed>>();

  const verifyOrNull = (token: string | undefined) =>
    token ? verifier.verify(token).catch(() => null) : Promise.resolve(null);

  const accessSetCookie = (token: string | null, maxAge: number) =>
    `${accessCookie}=${token ?? ""}; Path=/; Max-Age=${token ? maxAge : 0}; HttpOnly; Secure; SameSite=Strict`;

  const refreshWith = (rt: string): Promise<Refreshed> => {
    let p = inflight.get(rt);
    if (!p) {
      p = (async (): Promise<Refreshed> => {
        const res = await f(rotor + "/refresh", {
          method: "POST",
          headers: { "Content-Type": "application/json", Origin: o.appOrigin, Cookie: `${REFRESH_COOKIE}=${rt}` },
          body: "{}",
          redirect: "manual",
        });
        const body = (await res.json().catch(() => null)) as Refreshed["body"];
        return { status: res.status, setCookies: res.headers.getSetCookie(), body };
      })();
      inflight.set(rt, p);
      const done = () => inflight.delete(rt);
      p.then(done, done);
    }
    return p;
  };

  return {
    verifier,

    async middleware(request: Request): Promise<MiddlewareResult> {
      const requestHeaders = new Headers(request.headers);
      const responseHeaders = new Headers();
      const jar = parseCookies(request.headers.get("cookie"));
      let claims: AccessClaims | null = null;
      const at = jar.get(accessCookie);
      if (at) {
        try {
          claims = await verifier.verify(at);
        } catch (e) {
          // Keys cannot be fetched: the token is unchecked, not invalid, and
          // a refresh would not help; rotating here would spend the cookie.
          if (e instanceof TokenError && e.code === "jwks_unavailable") {
            return { requestHeaders, responseHeaders, session: null, refresh: "unavailable" };
          }
        }
      }
      const due = (c: AccessClaims) => {
        const life = (c.exp - c.iat) * 1000;
        return c.exp * 1000 - now() <= Math.min(marginMs, life / 2);
      };
      if (claims && !due(claims)) return { requestHeaders, responseHeaders, session: claims, refresh: "none" };
      const rt = jar.get(REFRESH_COOKIE);
      if (!rt) return { requestHeaders, responseHeaders, session: claims, refresh: "none" };

      let r: Refreshed;
      try {
        r = await refreshWith(rt);
      } catch {
        return { requestHeaders, responseHeaders, session: claims, refresh: "unavailable" };
      }
      responseHeaders.set("Cache-Control", "private, no-store");
      if (r.status === 200 && r.body?.access_token) {
        for (const c of r.setCookies) responseHeaders.append("Set-Cookie", c);
        responseHeaders.append("Set-Cookie", accessSetCookie(r.body.access_token, r.body.expires_in ?? 0));
        jar.set(accessCookie, r.body.access_token);
        const next = cookieValue(r.setCookies, REFRESH_COOKIE);
        if (next) jar.set(REFRESH_COOKIE, next);
        requestHeaders.set("cookie", serializeCookies(jar));
        return { requestHeaders, responseHeaders, session: await verifyOrNull(r.body.access_token), refresh: "refreshed" };
      }
      if (r.status === 400 && (r.body?.error === "invalid_grant" || r.body?.error === "invalid_request")) {
        for (const c of r.setCookies) responseHeaders.append("Set-Cookie", c);
        responseHeaders.append("Set-Cookie", accessSetCookie(null, 0));
        jar.delete(accessCookie);
        jar.delete(REFRESH_COOKIE);
        requestHeaders.set("cookie", serializeCookies(jar));
        return { requestHeaders, responseHeaders, session: null, refresh: "signed_out" };
      }
      // 503, 429, 403 (Origin not allowed: a configuration error), 5xx: keep what we have
      responseHeaders.delete("Cache-Control");
      return { requestHeaders, responseHeaders, session: claims, refresh: "unavailable" };
    },

    async getSession(cookies: CookieReader): Promise<AccessClaims | null> {
      return verifyOrNull(cookies.get(accessCookie)?.value);
    },

    async verifyRequest(request: Request): Promise<AccessClaims | null> {
      const m = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(request.headers.get("authorization") ?? "");
      if (!m) return null;
      try {
        return await verifier.verify(m[1] as string);
      } catch (e) {
        if (e instanceof TokenError && e.code === "jwks_unavailable") throw e;
        return null;
      }
    },

    unauthorized(description = "a valid access token is required"): Response {
      return new Response(JSON.stringify({ error: "invalid_token", error_description: description }), {
        status: 401,
        headers: {
          "Content-Type": "application/json",
          "Cache-Control": "no-store",
          "WWW-Authenticate": 'Bearer error="invalid_token"',
        },
      });
    },

    async authRoute(request: Request): Promise<Response> {
      const url = new URL(request.url);
      const path = url.pathname.startsWith(basePath + "/") ? url.pathname.slice(basePath.length) : "";
      if (!PROXIED.test(path)) return json(404, { error: "not_found", error_description: "no such endpoint" });
      const headers = new Headers();
      for (const h of ["content-type", "authorization", "origin", "user-agent", "accept"]) {
        const v = request.headers.get(h);
        if (v) headers.set(h, v);
      }
      const ip = o.clientIp?.(request);
      if (ip) headers.set("x-forwarded-for", ip);
      const rt = parseCookies(request.headers.get("cookie")).get(REFRESH_COOKIE);
      if (rt) headers.set("cookie", `${REFRESH_COOKIE}=${rt}`); // the app's other cookies stay here
      let body: ArrayBuffer | undefined;
      if (request.method !== "GET" && request.method !== "HEAD") {
        body = await request.arrayBuffer();
        if (body.byteLength > 64 << 10) return json(413, { error: "request_too_large", error_description: "body over 64 KiB" });
      }
      let res: Response;
      try {
        res = await f(rotor + path + url.search, { method: request.method, headers, body: body ?? null, redirect: "manual" });
      } catch {
        return json(502, { error: "bad_gateway", error_description: "Rotor cannot be reached" });
      }
      const out = new Headers();
      for (const h of ["content-type", "cache-control", "www-authenticate", "retry-after", "x-request-id", "allow"]) {
        const v = res.headers.get(h);
        if (v) out.set(h, v);
      }
      for (const c of res.headers.getSetCookie()) out.append("Set-Cookie", c);
      if (!path.startsWith("/.well-known/")) out.set("Cache-Control", "private, no-store");
      const text = await res.text();
      if ((path === "/token" || path === "/refresh") && res.status === 200) {
        try {
          const b = JSON.parse(text) as { access_token?: string; expires_in?: number };
          if (b.access_token) out.append("Set-Cookie", accessSetCookie(b.access_token, b.expires_in ?? 0));
        } catch {
          // not JSON: leave the access cookie alone
        }
      } else if ((path === "/logout" && res.ok) || (path === "/refresh" && res.status === 400 && /invalid_grant/.test(text))) {
        out.append("Set-Cookie", accessSetCookie(null, 0));
      }
      return new Response(res.status === 204 ? null : text, { status: res.status, headers: out });
    },
  };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", "Cache-Control": "no-store" },
  });
}

/** Parses a Cookie header (first value of each name wins, as browsers send the most specific first). */
function parseCookies(header: string | null): Map<string, string> {
  const jar = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    if (name && !jar.has(name)) jar.set(name, part.slice(i + 1).trim());
  }
  return jar;
}

function serializeCookies(jar: Map<string, string>): string {
  return [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
}

/** The value a Set-Cookie list gives name, "" when it clears it, undefined when absent. */
function cookieValue(setCookies: string[], name: string): string | undefined {
  for (const c of setCookies) {
    const [pair] = c.split(";");
    if (pair?.startsWith(name + "=")) return pair.slice(name.length + 1);
  }
  return undefined;
}
