// Test doubles: a fake clock with timers, a fake Web Locks manager, and a
// small in-memory model of Rotor's token endpoints (rotation, grace window,
// reuse detection, revocation) answering through a fake fetch.
import type { LockManagerLike, Timers } from "../../src/index.js";

/** Lets promises and Node's BroadcastChannel deliveries run. */
export async function flush(turns = 30): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

export class FakeClock implements Timers {
  t = 1_800_000_000_000;
  private seq = 0;
  private pending: { at: number; id: number; fn: () => void }[] = [];
  now = (): number => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.seq;
    this.pending.push({ at: this.t + Math.max(0, ms), id, fn });
    return id;
  };
  clearTimeout = (id: unknown): void => {
    this.pending = this.pending.filter((p) => p.id !== id);
  };
  sleep(ms: number): Promise<void> {
    return new Promise((r) => this.setTimeout(r, ms));
  }
  /** Moves time forward by ms, running every timer that falls due, in order. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await flush();
    for (;;) {
      this.pending.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.pending[0];
      if (!next || next.at > end) break;
      this.pending.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

export class FakeLocks implements LockManagerLike {
  private held = new Set<string>();
  private queues = new Map<string, (() => void)[]>();
  async request<T>(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal },
    cb: (lock: unknown) => Promise<T>,
  ): Promise<T> {
    if (this.held.has(name)) {
      if (options.ifAvailable) return cb(null);
      await new Promise<void>((resolve, reject) => {
        const q = this.queues.get(name) ?? [];
        this.queues.set(name, q);
        const go = () => resolve();
        q.push(go);
        options.signal?.addEventListener("abort", () => {
          const i = q.indexOf(go);
          if (i >= 0) q.splice(i, 1);
          reject(new DOMException("aborted", "AbortError"));
        });
      });
    }
    this.held.add(name);
    try {
      return await cb({ name });
    } finally {
      const next = this.queues.get(name)?.shift();
      if (next) next();
      else this.held.delete(name);
    }
  }
}

type Fault = "drop" | "fail" | "503" | "502" | undefined;

interface Sess {
  id: string;
  user: string;
  active: string;
  prev: string | null;
  rotatedAt: number;
  revoked: string | null;
}

/**
 * A model of Rotor: /token, /refresh, /logout, /me, /sessions, metadata.
 * Cookie mode keeps the browser's cookie jar here (one jar: all "tabs").
 */
export class FakeRotor {
  graceSeconds = 10;
  ttl = 900;
  cookieMode: boolean;
  jar: string | null = null;
  sessions = new Map<string, Sess>();
  rotations = 0;
  reuses = 0;
  revokedTokens = new Set<string>(); // access tokens of revoked sessions
  /** Every /refresh request: time sent and the token it carried. */
  refreshLog: { at: number; token: string | null }[] = [];
  logoutLog: { at: number }[] = [];
  /** Faults for the next /refresh requests, in order. */
  faults: Fault[] = [];
  /** Latency of every reply, ms of fake time. */
  latency = 0;
  private n = 0;

  constructor(
    private clock: FakeClock,
    opts: { cookie?: boolean } = {},
  ) {
    this.cookieMode = opts.cookie ?? true;
  }

  private token(prefix: string): string {
    return `${prefix}_${++this.n}`;
  }

  private access(s: Sess): string {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(this.clock.now() / 1000);
    return `${enc({ alg: "EdDSA", typ: "at+jwt" })}.${enc({
      sub: s.user,
      sid: s.id,
      email: "ada@example.test",
      roles: [],
      iat: now,
      exp: now + this.ttl,
      jti: String(++this.n),
    })}.sig`;
  }

  private pair(s: Sess): Response {
    const body: Record<string, unknown> = {
      access_token: this.access(s),
      token_type: "Bearer",
      expires_in: this.ttl,
      refresh_token_expires_in: 1209600,
      session_id: s.id,
    };
    if (this.cookieMode) this.jar = s.active;
    else body["refresh_token"] = s.active;
    return json(200, body);
  }

  /** Ends a session as an admin would (its access tokens stop working). */
  revoke(sid: string): void {
    const s = this.sessions.get(sid);
    if (s) s.revoked = "admin";
  }

  fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input));
    const method = init.method ?? "GET";
    const headers = new Headers(init.headers);
    const body = init.body ? JSON.parse(String(init.body)) : {};
    if (this.latency) await this.clock.sleep(this.latency);
    if (init.signal?.aborted) throw new DOMException("aborted", "AbortError");
    const bearer = headers.get("Authorization")?.replace(/^Bearer /, "") ?? null;
    const principal = bearer ? this.principal(bearer) : null;
    switch (`${method} ${url.pathname}`) {
      case "GET /.well-known/oauth-authorization-server":
        return json(200, { issuer: "http://rotor.test", rotor_refresh_reuse_grace_seconds: this.graceSeconds });
      case "POST /token": {
        if (body.password !== "pw") return json(400, { error: "invalid_grant", error_description: "invalid username or password" });
        const s: Sess = { id: "sid-" + ++this.n, user: "user-1", active: this.token("rt"), prev: null, rotatedAt: 0, revoked: null };
        this.sessions.set(s.id, s);
        return this.pair(s);
      }
      case "POST /refresh": {
        const presented: string | null = this.cookieMode ? this.jar : (body.refresh_token ?? null);
        this.refreshLog.push({ at: this.clock.now(), token: presented });
        const fault = this.faults.shift();
        if (fault === "fail") throw new TypeError("fetch failed");
        if (fault === "503") return json(503, { error: "temporarily_unavailable", error_description: "retry shortly" }, { "Retry-After": "1" });
        if (fault === "502") return new Response("<html>bad gateway</html>", { status: 502 });
        if (!presented) return json(400, { error: "invalid_request", error_description: "refresh_token is required" });
        const res = this.rotate(presented);
        if (fault === "drop") {
          // committed, but the reply never arrives; the cookie jar keeps the old cookie
          if (this.cookieMode) this.jar = presented;
          throw new TypeError("network connection lost");
        }
        return res;
      }
      case "POST /logout": {
        this.logoutLog.push({ at: this.clock.now() });
        const rt: string | null = this.cookieMode ? this.jar : (body.refresh_token ?? null);
        const s = principal ? this.sessions.get(principal.sid) : [...this.sessions.values()].find((x) => x.active === rt || x.prev === rt);
        if (!s) return json(401, { error: "invalid_token", error_description: "no token" });
        s.revoked = "logout";
        if (this.cookieMode) this.jar = null;
        return new Response(null, { status: 204 });
      }
      case "GET /me":
        if (!principal) return unauthorized();
        return json(200, { id: principal.sub, email: "ada@example.test", roles: [], session_id: principal.sid });
      default:
        return json(404, { error: "not_found", error_description: url.pathname });
    }
  };

  private principal(token: string): { sub: string; sid: string } | null {
    try {
      const c = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString());
      const s = this.sessions.get(c.sid);
      if (!s || s.revoked || c.exp * 1000 <= this.clock.now()) return null;
      return c;
    } catch {
      return null;
    }
  }

  private rotate(presented: string): Response {
    const s = [...this.sessions.values()].find((x) => x.active === presented || x.prev === presented);
    if (!s) return json(400, { error: "invalid_grant", error_description: "refresh token is invalid" });
    if (s.revoked) return json(400, { error: "invalid_grant", error_description: "session has been revoked" });
    if (s.active === presented) {
      s.prev = presented;
      s.active = this.token("rt");
      s.rotatedAt = this.clock.now();
      this.rotations++;
      return this.pair(s);
    }
    if (this.clock.now() - s.rotatedAt < this.graceSeconds * 1000) return this.pair(s); // same successor
    s.revoked = "reuse_detected";
    this.reuses++;
    return json(400, { error: "invalid_grant", error_description: "refresh token was already used; the session has been revoked" });
  }
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

function unauthorized(): Response {
  return json(401, { error: "invalid_token", error_description: "invalid access token" }, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
}
