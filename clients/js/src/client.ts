import { RotorError, errorFrom, jsonSegment } from "./errors.js";
import { type LockManagerLike, type Timers, withWebLock } from "./tabs.js";

/**
 * Where the refresh token lives.
 * - `cookie`: Rotor's browser mode (`REFRESH_COOKIE=true`). The refresh
 *   token is an HttpOnly `__Host-rotor_refresh` cookie that script never
 *   sees; requests to Rotor carry it with `credentials: "include"`.
 * - `body`: the refresh token comes in the JSON body and is kept in this
 *   client's memory (and in `storage`, if you give one). For servers, CLIs
 *   and Node; in a browser any script of the page can read it.
 */
export type Mode = "cookie" | "body";

/** The signed-in state the client holds (in memory only). */
export interface Session {
  accessToken: string;
  /** When the access token expires, in ms since the epoch (this machine's clock). */
  expiresAt: number;
  /** The access token's lifetime as the server gave it (`expires_in`), in seconds. */
  expiresIn: number;
  sessionId: string;
  /** Read from the access token's claims (not verified: the server does that). */
  user: { id: string; email?: string; roles: string[] };
}

/** Why a client signed out. `other_tab`: another tab signed out (its reason is `cause`). */
export type SignedOutReason = "logout" | "revoked" | "reuse_detected" | "expired" | "other_tab";

/** What onAuthStateChange callbacks receive. */
export type AuthEvent =
  | { type: "SIGNED_IN"; session: Session }
  | { type: "TOKEN_REFRESHED"; session: Session }
  | {
      type: "SIGNED_OUT";
      reason: SignedOutReason;
      /** For `other_tab`: the reason of the tab that signed out. */
      cause?: Exclude<SignedOutReason, "other_tab">;
      error?: RotorError;
    }
  | {
      /** A refresh failed. `willRetry: false` means the client gave up (see `SIGNED_OUT`). */
      type: "REFRESH_ERROR";
      error: RotorError;
      attempt: number;
      willRetry: boolean;
      /** ms until the next attempt, when willRetry. */
      retryIn?: number;
    };

/** A place to keep the refresh token in body mode (for instance sessionStorage). Optional. */
export interface RefreshTokenStorage {
  get(): string | null | Promise<string | null>;
  set(token: string | null): void | Promise<void>;
}

/** Options of createClient. Only baseUrl is required. */
export interface ClientOptions {
  /** Rotor's base URL, e.g. `https://auth.example.com` or `/auth` behind a same-origin proxy. */
  baseUrl: string;
  /** Default `cookie`. */
  mode?: Mode;
  /** Refresh this many seconds before the access token expires (default 60; at most half the lifetime). */
  refreshMargin?: number;
  /**
   * Seconds a retry of a lost refresh reply may take (Rotor's grace window).
   * Default: the server's `rotor_refresh_reuse_grace_seconds`. A value larger
   * than the server's is ignored with a warning.
   */
  reuseGrace?: number;
  /** Refresh ahead of expiry on a timer (default true). */
  autoRefresh?: boolean;
  /** Longest wait for another tab's refresh lock, ms (default 30000). */
  lockTimeout?: number;
  /** Timeout of one request to Rotor, ms (default 5000). */
  requestTimeout?: number;
  /** Body mode only: keep the refresh token there too (and share it between tabs). */
  storage?: RefreshTokenStorage;
  /**
   * Coordinate with other tabs (Web Locks + BroadcastChannel). Default: on
   * in cookie mode (the tabs share the cookie) and in body mode with storage.
   */
  crossTab?: boolean;
  /** Injectable for tests and other runtimes. */
  fetch?: typeof fetch;
  now?: () => number;
  timers?: Timers;
  /** Default `navigator.locks` where present; null: no Web Locks. */
  locks?: LockManagerLike | null;
  /** Default console.warn. */
  onWarning?: (message: string) => void;
}

/** The client. Create it with {@link createClient}. */
export interface RotorClient {
  /** Creates an account (`POST /users`). Does not sign in. */
  signUp(email: string, password: string): Promise<void>;
  /** Logs in (`POST /token`); every tab of the origin becomes signed in. */
  login(username: string, password: string): Promise<Session>;
  /**
   * Ends this session, or with `scope: "global"` all of the user's sessions.
   * Waits for a refresh in flight (in any tab), then signs every tab out,
   * even when the server could not be reached (the promise then rejects).
   */
  logout(options?: { scope?: "session" | "global" }): Promise<void>;
  /**
   * A valid access token, refreshing first if it is due (or with
   * forceRefresh); null when signed out. Rejects with a RotorError when a
   * refresh is needed and the server cannot be reached.
   */
  getAccessToken(options?: { forceRefresh?: boolean }): Promise<string | null>;
  /** The current session, if any (no network). */
  readonly session: Session | null;
  /**
   * fetch with `Authorization: Bearer`. On a 401 with
   * `WWW-Authenticate: Bearer error="invalid_token"` it refreshes once and
   * retries once (not when the body is a stream).
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** `GET /me`. */
  me(): Promise<{ id: string; email: string; roles: string[]; session_id: string }>;
  sessions: {
    /** `GET /sessions` (the first page: up to 200). */
    list(): Promise<SessionInfo[]>;
    /** `DELETE /sessions/{id}`; revoking the current session signs every tab out. */
    revoke(id: string): Promise<void>;
  };
  /** Calls cb on every auth event; returns the unsubscribe function. */
  onAuthStateChange(cb: (event: AuthEvent) => void): () => void;
  startAutoRefresh(): void;
  stopAutoRefresh(): void;
  /** Stops timers, leaves the tab channel, drops listeners. The session stays on the server. */
  close(): void;
}

/** One entry of `GET /sessions`. */
export interface SessionInfo {
  id: string;
  created_at: string;
  last_used_at: string;
  expires_at: string;
  user_agent: string;
  ip: string;
  current: boolean;
}

type Phase = "unknown" | "signed_in" | "signed_out";

type Message =
  | { t: "token"; from: string; session: Session; login: boolean }
  | { t: "signed_out"; from: string; reason: Exclude<SignedOutReason, "other_tab"> }
  | { t: "stale"; from: string }
  | { t: "refreshing"; from: string };

interface TokenResponse {
  access_token: string;
  expires_in: number;
  refresh_token?: string;
  session_id: string;
}

const REUSE_TEXT = "already used";
const defaultTimers: Timers = {
  setTimeout: (fn, ms) => {
    const h = setTimeout(fn, ms) as unknown as { unref?: () => void };
    h.unref?.(); // never keep a Node process alive
    return h;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Creates a client for one Rotor base URL.
 *
 * ```ts
 * const rotor = createClient({ baseUrl: "https://auth.example.com" });
 * rotor.onAuthStateChange((e) => console.log(e.type));
 * const token = await rotor.getAccessToken(); // null: show the login form
 * ```
 */
export function createClient(options: ClientOptions): RotorClient {
  return new Client(options);
}

class Client implements RotorClient {
  private readonly base: string;
  private readonly mode: Mode;
  private readonly margin: number;
  private readonly lockTimeout: number;
  private readonly requestTimeout: number;
  private readonly f: typeof fetch;
  private readonly now: () => number;
  private readonly timers: Timers;
  private readonly locks: LockManagerLike | null;
  private readonly storage: RefreshTokenStorage | undefined;
  private readonly warn: (m: string) => void;
  private readonly configuredGrace: number | undefined;
  private readonly id = Math.random().toString(36).slice(2);
  private readonly lockName: string;

  private phase: Phase;
  private current: Session | null = null;
  private refreshToken: string | null = null;
  /** Bumped on every change of state, so a waiter can tell that something happened. */
  private epoch = 0;
  private wakers = new Set<() => void>();
  private inflight: Promise<string | null> | null = null;
  /** Send time of the first refresh attempt whose outcome is unknown; cleared by a definite answer. */
  private uncertainSince: number | null = null;
  /** Gave up refreshing (a reply was lost past the grace window): never replay the old token. */
  private stale = false;
  private grace: Promise<number> | null = null;
  private listeners = new Set<(e: AuthEvent) => void>();
  private channel: BroadcastChannel | null = null;
  private othersRefreshingUntil = 0;
  private auto: boolean;
  private timer: unknown = null;
  private dueAt = Infinity;
  private failures = 0;
  private closed = false;
  private onVisible = () => this.visibilityChanged();

  constructor(o: ClientOptions) {
    if (!o.baseUrl) throw new TypeError("baseUrl is required");
    this.base = o.baseUrl.replace(/\/+$/, "");
    this.mode = o.mode ?? "cookie";
    this.margin = (o.refreshMargin ?? 60) * 1000;
    this.lockTimeout = o.lockTimeout ?? 30_000;
    this.requestTimeout = o.requestTimeout ?? 5_000;
    this.f = o.fetch ?? ((...a) => globalThis.fetch(...a));
    this.now = o.now ?? Date.now;
    this.timers = o.timers ?? defaultTimers;
    this.storage = this.mode === "body" ? o.storage : undefined;
    this.warn = o.onWarning ?? ((m) => console.warn("[rotor] " + m));
    this.configuredGrace = o.reuseGrace;
    this.auto = o.autoRefresh ?? true;
    this.lockName = "rotor-refresh " + this.base;
    // Cookie mode may have a session in the cookie: the first
    // getAccessToken() finds out. Body mode starts signed out unless a
    // storage adapter may hold a token.
    this.phase = this.mode === "cookie" || this.storage ? "unknown" : "signed_out";
    const crossTab = o.crossTab ?? (this.mode === "cookie" || !!this.storage);
    const nav = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator;
    this.locks = crossTab ? (o.locks !== undefined ? o.locks : nav?.locks ?? null) : null;
    if (crossTab && typeof BroadcastChannel === "function") {
      this.channel = new BroadcastChannel("rotor " + this.base);
      this.channel.onmessage = (e: MessageEvent) => this.receive(e.data as Message);
    }
    if (typeof document !== "undefined") document.addEventListener("visibilitychange", this.onVisible);
  }

  // ---- public API ----

  get session(): Session | null {
    return this.current;
  }

  onAuthStateChange(cb: (event: AuthEvent) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  startAutoRefresh(): void {
    this.auto = true;
    this.schedule();
  }

  stopAutoRefresh(): void {
    this.auto = false;
    this.clearTimer();
  }

  close(): void {
    this.closed = true;
    this.clearTimer();
    this.channel?.close();
    this.channel = null;
    this.listeners.clear();
    if (typeof document !== "undefined") document.removeEventListener("visibilitychange", this.onVisible);
  }

  async signUp(email: string, password: string): Promise<void> {
    const res = await this.send("/users", { email, password }, false);
    if (!res.ok) throw await errorFrom(res);
  }

  async login(username: string, password: string): Promise<Session> {
    await this.inflight?.catch(() => undefined);
    return this.exclusive(async () => {
      const res = await this.send("/token", { username, password }, true);
      if (!res.ok) throw await errorFrom(res);
      const s = await this.accept(await this.tokenBody(res), true);
      return s;
    });
  }

  async logout(options: { scope?: "session" | "global" } = {}): Promise<void> {
    await this.inflight?.catch(() => undefined);
    let failure: unknown = null;
    const run = async () => {
      const headers: Record<string, string> = {};
      const s = this.current;
      if (s && s.expiresAt > this.now()) headers["Authorization"] = "Bearer " + s.accessToken;
      const body: Record<string, string> = {};
      if (options.scope) body["scope"] = options.scope;
      if (this.mode === "body") {
        if (this.storage) this.refreshToken = (await this.storage.get()) ?? this.refreshToken;
        if (this.refreshToken) body["refresh_token"] = this.refreshToken;
      }
      if (!headers["Authorization"] && !body["refresh_token"] && this.mode === "body") return; // nothing to end
      const res = await this.send("/logout", body, true, headers);
      // 400/401: the session was already over, which is what we want.
      if (!res.ok && res.status !== 400 && res.status !== 401) throw await errorFrom(res);
    };
    try {
      await this.exclusive(run).catch((e: unknown) => {
        if (e instanceof RotorError && e.code === "lock_timeout") return run();
        throw e;
      });
    } catch (e) {
      failure = e;
    } finally {
      this.signOut("logout", true);
    }
    if (failure) throw failure;
  }

  async getAccessToken(options: { forceRefresh?: boolean } = {}): Promise<string | null> {
    if (this.closed) return null;
    const s = this.current;
    if (this.stale) return this.staleToken();
    if (!options.forceRefresh && s && this.fresh(s)) return s.accessToken;
    if (this.phase === "signed_out" && !this.storage) return null;
    return this.refreshShared(s?.accessToken ?? null);
  }

  async fetch(input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> {
    const isReq = typeof Request !== "undefined" && input instanceof Request;
    const streaming = typeof ReadableStream !== "undefined" && init.body instanceof ReadableStream;
    const attempt = (token: string | null) => {
      const headers = new Headers(init.headers ?? (isReq ? (input as Request).headers : undefined));
      if (token) headers.set("Authorization", "Bearer " + token);
      return this.f(isReq ? (input as Request).clone() : input, { ...init, headers });
    };
    const token = await this.getAccessToken();
    const res = await attempt(token);
    if (res.status !== 401 || streaming || !token) return res;
    if (!/error="?invalid_token/.test(res.headers.get("WWW-Authenticate") ?? "")) return res;
    // Refresh once, unless another call already replaced the rejected token.
    const fresh = await this.refreshShared(token).catch(() => null);
    if (!fresh || fresh === token) return res;
    return attempt(fresh);
  }

  async me(): Promise<{ id: string; email: string; roles: string[]; session_id: string }> {
    return this.json(await this.fetch(this.url("/me")));
  }

  readonly sessions = {
    list: async (): Promise<SessionInfo[]> => this.json(await this.fetch(this.url("/sessions?limit=200"))),
    revoke: async (id: string): Promise<void> => {
      // This device's own session: a logout, which also clears the cookie.
      if (this.current?.sessionId === id) return this.logout();
      const res = await this.fetch(this.url("/sessions/" + encodeURIComponent(id)), { method: "DELETE" });
      if (!res.ok) throw await errorFrom(res);
    },
  };

  // ---- refresh ----

  private fresh(s: Session): boolean {
    return s.expiresAt - this.now() > Math.min(5_000, (s.expiresIn * 1000) / 4);
  }

  /** One refresh at a time in this tab: concurrent callers share the promise. */
  private refreshShared(rejected: string | null): Promise<string | null> {
    if (!this.inflight) {
      const p = this.refreshAcrossTabs(rejected);
      this.inflight = p;
      p.then(
        () => (this.inflight = null),
        () => (this.inflight = null),
      );
    }
    return this.inflight;
  }

  /**
   * One refresh at a time across tabs. Under the lock, re-check: if another
   * tab refreshed (or signed out) while this one waited, its broadcast has
   * updated this tab, and no second rotation is needed.
   */
  private async refreshAcrossTabs(rejected: string | null): Promise<string | null> {
    const startEpoch = this.epoch;
    try {
      return await this.exclusive(async (waited) => {
        if (waited && this.epoch === startEpoch) await this.waitForChange(startEpoch, 500);
        if (this.epoch !== startEpoch) {
          if (this.stale) return this.staleToken();
          const s = this.current;
          if (s && s.accessToken !== rejected && this.fresh(s)) return s.accessToken;
          if (this.phase === "signed_out" && !s) return null;
        }
        return this.refreshNow();
      });
    } catch (e) {
      const err = e instanceof RotorError ? e : new RotorError(0, "network_error", String(e));
      if (err.code === "lock_timeout") {
        this.emit({ type: "REFRESH_ERROR", error: err, attempt: 0, willRetry: true, retryIn: this.retryLater() });
      }
      const s = this.current;
      if (s && s.expiresAt > this.now()) return s.accessToken; // still usable
      throw err;
    }
  }

  /** The network part, holding the lock: attempts and retries inside the grace window. */
  private async refreshNow(): Promise<string | null> {
    if (this.stale) return this.staleToken(); // never replay a token whose reply was lost
    if (this.mode === "body") {
      if (this.storage) this.refreshToken = (await this.storage.get()) ?? null;
      if (!this.refreshToken) {
        this.signOut(this.phase === "signed_in" ? "revoked" : null, false);
        return null;
      }
    }
    const grace = await this.graceMs();
    const safety = Math.max(1_000, grace * 0.2);
    let lastError: RotorError | null = null;
    let definite = 0;
    for (let attempt = 1; ; attempt++) {
      let timeout = this.requestTimeout;
      if (this.uncertainSince !== null) {
        const left = this.uncertainSince + grace - safety - this.now();
        if (left < 250) return this.giveUp(lastError, attempt - 1);
        timeout = Math.min(timeout, left);
      }
      const sentAt = this.now();
      let err: RotorError;
      let uncertain = false;
      try {
        const body = this.mode === "body" ? { refresh_token: this.refreshToken } : {};
        const res = await this.send("/refresh", body, true, {}, timeout);
        if (res.ok) {
          const tr = await this.tokenBody(res).catch(() => null);
          if (tr) {
            this.uncertainSince = null;
            this.failures = 0;
            return (await this.accept(tr, false)).accessToken;
          }
          err = new RotorError(res.status, "bad_response", "a 200 without a token body");
          uncertain = true;
        } else {
          err = await errorFrom(res);
          if (err.code === "invalid_grant") {
            this.uncertainSince = null;
            this.signOut(reasonOf(err), true, err);
            return null;
          }
          if (err.code === "invalid_request" && res.status === 400) {
            // no refresh token (no cookie): signed out, silently if we never were in
            this.uncertainSince = null;
            this.signOut(this.phase === "signed_in" ? "revoked" : null, true, err);
            return null;
          }
          const busy = (res.status === 503 && err.code === "temporarily_unavailable") || res.status === 429;
          if (!busy && res.status >= 400 && res.status < 500) {
            // configuration error (e.g. 403: Origin not allowed): not retried
            this.emit({ type: "REFRESH_ERROR", error: err, attempt, willRetry: false });
            throw err;
          }
          uncertain = !busy; // a 502/504 or 500 may come after the rotation committed
        }
      } catch (e) {
        if (e instanceof RotorError) throw e;
        const aborted = (e as { name?: string })?.name === "AbortError";
        err = new RotorError(0, aborted ? "timeout" : "network_error", String((e as Error)?.message ?? e));
        // A browser that knows it is offline fails before sending anything.
        const nav = (globalThis as { navigator?: { onLine?: boolean } }).navigator;
        uncertain = !(nav && nav.onLine === false);
      }
      lastError = err;
      if (uncertain) this.uncertainSince ??= sentAt;
      else definite++;
      const delay = err.retryAfter ? Math.min(err.retryAfter * 1000, 5_000) : Math.min(250 * 2 ** (attempt - 1), 2_000);
      if (this.uncertainSince !== null) {
        if (this.now() + delay > this.uncertainSince + grace - safety - 250) return this.giveUp(err, attempt);
      } else if (definite >= 4) {
        // The server is up but busy (503/429): nothing changed on it, try again later.
        this.emit({ type: "REFRESH_ERROR", error: err, attempt, willRetry: true, retryIn: this.retryLater() });
        throw err;
      }
      this.emit({ type: "REFRESH_ERROR", error: err, attempt, willRetry: true, retryIn: delay });
      await this.sleep(delay);
      if (this.closed) throw err;
    }
  }

  /**
   * A reply may have been lost after the server rotated, and the grace window
   * is (nearly) over: replaying the old token now could be judged reuse and
   * end the session for every device. Stop refreshing; keep the access token
   * until it expires, then sign out with reason `expired`.
   */
  private giveUp(err: RotorError | null, attempts: number): string | null {
    const error = err ?? new RotorError(0, "network_error", "no reply");
    this.emit({ type: "REFRESH_ERROR", error, attempt: attempts, willRetry: false });
    this.uncertainSince = null;
    this.becomeStale();
    this.post({ t: "stale", from: this.id });
    return this.staleToken();
  }

  private becomeStale(): void {
    this.stale = true;
    this.bump();
    this.clearTimer();
    const s = this.current;
    if (s) this.setTimer(s.expiresAt - this.now(), () => this.staleToken());
  }

  private staleToken(): string | null {
    const s = this.current;
    if (s && s.expiresAt > this.now()) return s.accessToken;
    if (this.phase !== "signed_out") this.signOut("expired", false);
    return null;
  }

  private graceMs(): Promise<number> {
    if (!this.grace) {
      const configured = this.configuredGrace;
      const p = (async () => {
        const ctl = new AbortController();
        const t = this.timers.setTimeout(() => ctl.abort(), this.requestTimeout);
        const res = await this.f(this.url("/.well-known/oauth-authorization-server"), { signal: ctl.signal }).finally(() =>
          this.timers.clearTimeout(t),
        );
        if (!res.ok) throw new Error("metadata: HTTP " + res.status);
        const server = (await res.json())?.rotor_refresh_reuse_grace_seconds;
        if (typeof server !== "number" || !(server >= 0)) throw new Error("metadata without rotor_refresh_reuse_grace_seconds");
        if (configured !== undefined && configured > server) {
          this.warn(`reuseGrace ${configured}s is longer than the server's grace window (${server}s); using ${server}s`);
          return server * 1000;
        }
        return (configured ?? server) * 1000;
      })();
      this.grace = p;
      p.catch(() => {
        if (this.grace === p) this.grace = null; // ask again next time
      });
    }
    // Without the metadata, assume no grace (strict mode) unless configured:
    // a lost reply is then never retried, which can never be judged reuse.
    return this.grace.catch(() => (this.configuredGrace ?? 0) * 1000);
  }

  // ---- state ----

  private async accept(tr: TokenResponse, login: boolean): Promise<Session> {
    if (this.mode === "body" && tr.refresh_token) {
      this.refreshToken = tr.refresh_token;
      await this.storage?.set(tr.refresh_token);
    }
    const s = sessionOf(tr, this.now());
    this.adopt(s, login);
    this.post({ t: "token", from: this.id, session: s, login });
    return s;
  }

  private adopt(s: Session, login: boolean): void {
    const prev = this.current;
    const wasIn = this.phase === "signed_in";
    this.current = s;
    this.phase = "signed_in";
    this.stale = false;
    this.bump();
    this.schedule();
    const same = wasIn && prev?.sessionId === s.sessionId && !login;
    this.emit(same ? { type: "TOKEN_REFRESHED", session: s } : { type: "SIGNED_IN", session: s });
  }

  /** reason null: become signed out without an event (there was no session to lose). */
  private signOut(reason: SignedOutReason | null, broadcast: boolean, error?: RotorError, cause?: SignedOutReason): void {
    const wasOut = this.phase === "signed_out" && !this.current;
    this.current = null;
    this.refreshToken = null;
    this.phase = "signed_out";
    this.stale = false;
    this.clearTimer();
    this.bump();
    if (this.storage) void Promise.resolve(this.storage.set(null)).catch(() => undefined);
    if (reason && broadcast && reason !== "other_tab") this.post({ t: "signed_out", from: this.id, reason });
    if (reason && !wasOut) {
      const e: AuthEvent = { type: "SIGNED_OUT", reason };
      if (cause && cause !== "other_tab") e.cause = cause;
      if (error) e.error = error;
      this.emit(e);
    }
  }

  private receive(m: Message): void {
    if (this.closed || !m || m.from === this.id) return;
    switch (m.t) {
      case "token": {
        const cur = this.current;
        const newer = m.session.expiresAt >= (cur?.expiresAt ?? 0) && m.session.accessToken !== cur?.accessToken;
        if (m.login || !cur || cur.sessionId !== m.session.sessionId || newer) {
          this.adopt(m.session, m.login || cur?.sessionId !== m.session.sessionId);
        } else this.wake();
        break;
      }
      case "signed_out":
        if (this.phase !== "signed_out" || this.current) this.signOut("other_tab", false, undefined, m.reason);
        else this.wake();
        break;
      case "stale":
        if (this.current) this.becomeStale();
        break;
      case "refreshing":
        this.othersRefreshingUntil = this.now() + this.lockTimeout;
        break;
    }
  }

  private emit(e: AuthEvent): void {
    for (const cb of [...this.listeners]) {
      try {
        cb(e);
      } catch (err) {
        this.warn("an onAuthStateChange callback threw: " + String(err));
      }
    }
  }

  private post(m: Message): void {
    try {
      this.channel?.postMessage(m);
    } catch {
      // a closed channel
    }
  }

  private bump(): void {
    this.epoch++;
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  /** Resolves when the state changes (or a tab message arrives), or after ms. */
  private waitForChange(epoch: number, ms: number): Promise<void> {
    if (this.epoch !== epoch) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.wakers.delete(done);
        this.timers.clearTimeout(t);
        resolve();
      };
      const t = this.timers.setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  /**
   * Runs fn alone across tabs: under the Web Lock, or, without Web Locks,
   * after any refresh another tab announced has finished (in-tab, callers
   * are already serialized; the server's grace window covers the rest).
   */
  private async exclusive<T>(fn: (waited: boolean) => Promise<T>): Promise<T> {
    if (this.locks) return withWebLock(this.locks, this.lockName, this.lockTimeout, this.timers, fn);
    let waited = false;
    while (this.channel && this.othersRefreshingUntil > this.now()) {
      waited = true;
      const e = this.epoch;
      await this.waitForChange(e, Math.min(this.othersRefreshingUntil - this.now(), this.lockTimeout));
      if (this.epoch !== e) break;
    }
    this.othersRefreshingUntil = 0;
    this.post({ t: "refreshing", from: this.id });
    return fn(waited);
  }

  // ---- timers ----

  private schedule(): void {
    this.clearTimer();
    const s = this.current;
    if (!s || this.phase !== "signed_in" || this.stale) return;
    const life = s.expiresIn * 1000;
    const margin = Math.min(this.margin, life / 2);
    this.dueAt = s.expiresAt - margin;
    if (this.auto) this.setTimer(this.dueAt - this.now(), () => this.due());
  }

  private due(): void {
    const doc = (globalThis as { document?: { visibilityState?: string } }).document;
    if (doc && doc.visibilityState === "hidden") return; // refreshed when visible again (or when needed)
    const s = this.current;
    if (!s || this.stale) return;
    this.refreshShared(s.accessToken).catch(() => undefined);
  }

  private visibilityChanged(): void {
    const doc = (globalThis as { document?: { visibilityState?: string } }).document;
    if (doc?.visibilityState === "visible" && this.auto && this.current && this.now() >= this.dueAt) this.due();
  }

  /** After a failure the server did not cause (busy, lock timeout): try again later. */
  private retryLater(): number {
    this.failures++;
    const ms = Math.min(5_000 * 2 ** (this.failures - 1), 60_000);
    if (this.auto && this.current) this.setTimer(ms, () => this.due());
    return ms;
  }

  private setTimer(ms: number, fn: () => void): void {
    this.clearTimer();
    if (this.closed) return;
    this.timer = this.timers.setTimeout(fn, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
  }

  private clearTimer(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => this.timers.setTimeout(r, ms));
  }

  // ---- HTTP ----

  private url(path: string): string {
    return this.base + path;
  }

  private async send(
    path: string,
    body: unknown,
    credentialed: boolean,
    headers: Record<string, string> = {},
    timeout = this.requestTimeout,
  ): Promise<Response> {
    const ctl = new AbortController();
    const t = this.timers.setTimeout(() => ctl.abort(), timeout);
    try {
      const init: RequestInit = {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body: JSON.stringify(body),
        signal: ctl.signal,
      };
      if (credentialed && this.mode === "cookie") init.credentials = "include";
      return await this.f(this.url(path), init);
    } finally {
      this.timers.clearTimeout(t);
    }
  }

  private async tokenBody(res: Response): Promise<TokenResponse> {
    const b = (await res.json()) as TokenResponse;
    if (!b || typeof b.access_token !== "string" || typeof b.expires_in !== "number") {
      throw new RotorError(res.status, "bad_response", "not a token response");
    }
    return b;
  }

  private async json<T>(res: Response): Promise<T> {
    if (!res.ok) throw await errorFrom(res);
    return (await res.json()) as T;
  }
}

function reasonOf(err: RotorError): Exclude<SignedOutReason, "other_tab"> {
  const d = err.description.toLowerCase();
  if (d.includes(REUSE_TEXT)) return "reuse_detected";
  if (d.includes("expired")) return "expired";
  return "revoked";
}

function sessionOf(tr: TokenResponse, now: number): Session {
  const claims = jsonSegment(tr.access_token.split(".")[1]) ?? {};
  const user: Session["user"] = {
    id: typeof claims["sub"] === "string" ? claims["sub"] : "",
    roles: Array.isArray(claims["roles"]) ? (claims["roles"] as unknown[]).filter((r): r is string => typeof r === "string") : [],
  };
  if (typeof claims["email"] === "string") user.email = claims["email"];
  return {
    accessToken: tr.access_token,
    expiresAt: now + tr.expires_in * 1000,
    expiresIn: tr.expires_in,
    sessionId: tr.session_id ?? (typeof claims["sid"] === "string" ? claims["sid"] : ""),
    user,
  };
}
