// The client's state machine with a fake clock, fake timers, fake Web Locks
// and a model of Rotor behind a fake fetch. No browser, no network.
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { type AuthEvent, type ClientOptions, type RotorClient, createClient } from "../../src/index.js";
import { FakeClock, FakeLocks, FakeRotor, flush, json } from "./fakes.js";

let open: RotorClient[] = [];
let n = 0;
afterEach(() => {
  for (const c of open) c.close();
  open = [];
});

function setup(opts: Partial<ClientOptions> = {}, rotorOpts: { cookie?: boolean } = {}) {
  const clock = new FakeClock();
  const rotor = new FakeRotor(clock, rotorOpts);
  const locks = new FakeLocks();
  const base = `http://rotor${++n}.test`; // one BroadcastChannel per test
  const warnings: string[] = [];
  const make = (more: Partial<ClientOptions> = {}) => {
    const events: AuthEvent[] = [];
    const c = createClient({
      baseUrl: base,
      mode: rotorOpts.cookie === false ? "body" : "cookie",
      fetch: rotor.fetch,
      now: clock.now,
      timers: clock,
      locks,
      onWarning: (m) => warnings.push(m),
      ...opts,
      ...more,
    });
    c.onAuthStateChange((e) => events.push(e));
    open.push(c);
    return { c, events };
  };
  return { clock, rotor, locks, make, warnings };
}

const types = (events: AuthEvent[]) => events.map((e) => (e.type === "SIGNED_OUT" ? `SIGNED_OUT:${e.reason}${e.cause ? ":" + e.cause : ""}` : e.type));

describe("auto refresh", () => {
  test("refreshes refreshMargin before expiry, not earlier", async () => {
    const { clock, rotor, make } = setup();
    const { c, events } = make();
    await c.login("ada", "pw");
    assert.deepEqual(types(events), ["SIGNED_IN"]);
    await clock.advance(839_000);
    assert.equal(rotor.rotations, 0);
    await clock.advance(2_000);
    assert.equal(rotor.rotations, 1);
    assert.deepEqual(types(events), ["SIGNED_IN", "TOKEN_REFRESHED"]);
    await clock.advance(900_000);
    assert.equal(rotor.rotations, 2, "keeps going");
  });

  test("a short TTL clamps the margin to half the lifetime", async () => {
    const { clock, rotor, make } = setup();
    rotor.ttl = 60;
    const { c } = make();
    await c.login("ada", "pw");
    await clock.advance(29_000);
    assert.equal(rotor.rotations, 0);
    await clock.advance(2_000);
    assert.equal(rotor.rotations, 1);
  });

  test("stopAutoRefresh stops the timer; getAccessToken still refreshes when due", async () => {
    const { clock, rotor, make } = setup();
    const { c } = make();
    await c.login("ada", "pw");
    c.stopAutoRefresh();
    await clock.advance(899_000);
    assert.equal(rotor.rotations, 0);
    const t = await c.getAccessToken();
    assert.ok(t);
    assert.equal(rotor.rotations, 1);
  });
});

describe("one refresh at a time", () => {
  test("concurrent callers in one tab share one rotation", async () => {
    const { rotor, make } = setup();
    const { c } = make();
    await c.login("ada", "pw");
    const tokens = await Promise.all(Array.from({ length: 5 }, () => c.getAccessToken({ forceRefresh: true })));
    assert.equal(rotor.rotations, 1);
    assert.equal(new Set(tokens).size, 1);
  });

  test("five tabs due at the same moment rotate once, all end with the same token", async () => {
    const { clock, rotor, make } = setup();
    const tabs = Array.from({ length: 5 }, () => make());
    await tabs[0]!.c.login("ada", "pw");
    await flush();
    for (const t of tabs) assert.ok(t.c.session, "every tab learned of the login");
    for (let round = 1; round <= 3; round++) {
      rotor.latency = 50;
      const got = Promise.all(tabs.map((t) => t.c.getAccessToken({ forceRefresh: true })));
      await clock.advance(2_000);
      const tokens = await got;
      assert.equal(rotor.rotations, round, `round ${round}: one rotation`);
      assert.equal(new Set(tokens).size, 1, `round ${round}: one token`);
    }
    assert.equal(rotor.reuses, 0);
    assert.deepEqual(types(tabs[1]!.events), ["SIGNED_IN", "TOKEN_REFRESHED", "TOKEN_REFRESHED", "TOKEN_REFRESHED"]);
  });

  test("without Web Locks, tabs still rotate once (advisory broadcast)", async () => {
    const { clock, rotor, make } = setup({ locks: null });
    const tabs = Array.from({ length: 3 }, () => make());
    await tabs[0]!.c.login("ada", "pw");
    await flush();
    rotor.latency = 50;
    // one tab starts first, the others a moment later: the advisory makes them wait
    const first = tabs[0]!.c.getAccessToken({ forceRefresh: true });
    await flush();
    const rest = Promise.all(tabs.slice(1).map((t) => t.c.getAccessToken({ forceRefresh: true })));
    await clock.advance(2_000);
    const tokens = [await first, ...(await rest)];
    assert.equal(rotor.rotations, 1);
    assert.equal(new Set(tokens).size, 1);
  });
});

describe("lost replies and the grace window", () => {
  test("a reply lost after the server committed: the retry gets the same successor", async () => {
    const { clock, rotor, make } = setup();
    const { c, events } = make();
    await c.login("ada", "pw");
    rotor.faults = ["drop"];
    const p = c.getAccessToken({ forceRefresh: true });
    await clock.advance(1_000);
    const t = await p;
    assert.ok(t);
    assert.equal(rotor.rotations, 1);
    assert.equal(rotor.refreshLog.length, 2);
    assert.equal(rotor.refreshLog[0]!.token, rotor.refreshLog[1]!.token, "the retry re-sent the old cookie");
    assert.equal(rotor.reuses, 0);
    assert.deepEqual(types(events), ["SIGNED_IN", "REFRESH_ERROR", "TOKEN_REFRESHED"]);
    const err = events[1] as Extract<AuthEvent, { type: "REFRESH_ERROR" }>;
    assert.equal(err.willRetry, true);
    assert.equal(err.error.code, "network_error");
  });

  test("body mode: the retry re-sends the old refresh token", async () => {
    const { clock, rotor, make } = setup({}, { cookie: false });
    const { c } = make();
    await c.login("ada", "pw");
    rotor.faults = ["drop", "502"];
    const p = c.getAccessToken({ forceRefresh: true });
    await clock.advance(2_000);
    assert.ok(await p);
    assert.equal(rotor.rotations, 1);
    assert.equal(rotor.refreshLog.length, 3);
    assert.equal(new Set(rotor.refreshLog.map((r) => r.token)).size, 1);
    assert.equal(rotor.reuses, 0);
  });

  test("the retry budget ends inside the grace window; then the old token is never replayed", async () => {
    const { clock, rotor, make } = setup();
    const { c, events } = make();
    await c.login("ada", "pw");
    rotor.faults = ["drop", ...Array(50).fill("fail")];
    const started = clock.now();
    const p = c.getAccessToken({ forceRefresh: true });
    await clock.advance(20_000);
    assert.ok(await p, "the access token still works until it expires");
    const sends = rotor.refreshLog.map((r) => r.at - started);
    assert.ok(sends.length >= 4, `retried (${sends.length} attempts)`);
    assert.ok(Math.max(...sends) < 10_000 - 1_000, `every attempt inside the 10 s window minus the margin: ${sends}`);
    const last = events.at(-1) as Extract<AuthEvent, { type: "REFRESH_ERROR" }>;
    assert.equal(last.type, "REFRESH_ERROR");
    assert.equal(last.willRetry, false);
    // no more attempts, even when asked, even after the timer would fire
    const before = rotor.refreshLog.length;
    await c.getAccessToken({ forceRefresh: true });
    await clock.advance(900_000);
    assert.equal(rotor.refreshLog.length, before, "never replayed the old token");
    assert.equal(events.at(-1)!.type, "SIGNED_OUT");
    assert.equal((events.at(-1) as { reason: string }).reason, "expired");
    assert.equal(await c.getAccessToken(), null);
    assert.equal(rotor.reuses, 0);
  });

  test("reuseGrace larger than the server's: the server's wins, with a warning", async () => {
    const { clock, rotor, make, warnings } = setup({ reuseGrace: 30 });
    const { c } = make();
    await c.login("ada", "pw");
    rotor.faults = Array(80).fill("fail");
    const started = clock.now();
    const p = c.getAccessToken({ forceRefresh: true });
    await clock.advance(60_000);
    await p;
    assert.ok(Math.max(...rotor.refreshLog.map((r) => r.at - started)) < 10_000);
    assert.match(warnings.join("\n"), /longer than the server's grace window \(10s\)/);
  });

  test("a smaller configured reuseGrace is used as is", async () => {
    const { clock, rotor, make, warnings } = setup({ reuseGrace: 3 });
    const { c } = make();
    await c.login("ada", "pw");
    rotor.faults = Array(80).fill("fail");
    const started = clock.now();
    const p = c.getAccessToken({ forceRefresh: true });
    await clock.advance(60_000);
    await p;
    assert.ok(Math.max(...rotor.refreshLog.map((r) => r.at - started)) < 3_000);
    assert.equal(warnings.length, 0);
  });

  test("strict mode (grace 0): a lost reply is never retried", async () => {
    const { clock, rotor, make } = setup();
    rotor.graceSeconds = 0;
    const { c, events } = make();
    await c.login("ada", "pw");
    rotor.faults = ["drop"];
    const p = c.getAccessToken({ forceRefresh: true });
    await clock.advance(5_000);
    await p;
    assert.equal(rotor.refreshLog.length, 1);
    assert.equal((events.at(-1) as { willRetry?: boolean }).willRetry, false);
  });

  test("503 from Rotor changes nothing on the server: retried without a budget, then later", async () => {
    const { clock, rotor, make } = setup();
    const { c, events } = make();
    await c.login("ada", "pw");
    rotor.faults = Array(6).fill("503");
    const p = c.getAccessToken({ forceRefresh: true });
    await clock.advance(10_000);
    assert.ok(await p, "the still-valid token is returned");
    const errs = events.filter((e) => e.type === "REFRESH_ERROR") as Extract<AuthEvent, { type: "REFRESH_ERROR" }>[];
    assert.ok(errs.length >= 4);
    assert.ok(errs.every((e) => e.willRetry));
    await clock.advance(30_000); // the scheduled retry
    assert.equal(rotor.rotations, 1);
    assert.equal(events.at(-1)!.type, "TOKEN_REFRESHED");
  });
});

describe("server answers", () => {
  test("reuse → SIGNED_OUT reuse_detected", async () => {
    const { clock, rotor, make } = setup();
    const { c, events } = make();
    await c.login("ada", "pw");
    const old = rotor.jar;
    await c.getAccessToken({ forceRefresh: true });
    await clock.advance(11_000);
    rotor.jar = old; // someone replays the old cookie past the window
    assert.equal(await c.getAccessToken({ forceRefresh: true }), null);
    assert.deepEqual(types(events).at(-1), "SIGNED_OUT:reuse_detected");
  });

  test("an admin revoke: the API call gets 401, one refresh gets invalid_grant, SIGNED_OUT revoked", async () => {
    const { rotor, make } = setup();
    const { c, events } = make();
    const s = await c.login("ada", "pw");
    assert.equal((await c.me()).session_id, s.sessionId);
    rotor.revoke(s.sessionId);
    const res = await c.fetch("http://rotor1.test/me");
    assert.equal(res.status, 401);
    assert.equal(rotor.refreshLog.length, 1, "refreshed once");
    assert.deepEqual(types(events), ["SIGNED_IN", "SIGNED_OUT:revoked"]);
    assert.equal(await c.getAccessToken(), null);
  });

  test("fetch: a 401 invalid_token refreshes once and retries once", async () => {
    const { rotor, make } = setup();
    let calls = 0;
    const api = async (input: RequestInfo | URL, init: RequestInit = {}) => {
      if (String(input).startsWith("http://api.test")) {
        calls++;
        const auth = new Headers(init.headers).get("Authorization");
        return calls === 1
          ? json(401, { error: "invalid_token" }, { "WWW-Authenticate": 'Bearer error="invalid_token"' })
          : json(200, { ok: true, auth });
      }
      return rotor.fetch(input, init);
    };
    const { c } = make({ fetch: api });
    const s = await c.login("ada", "pw");
    const res = await c.fetch("http://api.test/notes", { headers: { Accept: "application/json" } });
    assert.equal(res.status, 200);
    assert.equal(calls, 2);
    assert.equal(rotor.rotations, 1);
    const body = (await res.json()) as { auth: string };
    assert.notEqual(body.auth, "Bearer " + s.accessToken);
  });

  test("fetch: a 401 without invalid_token (or a 403) is returned as is", async () => {
    const { rotor, make } = setup();
    const api = async (input: RequestInfo | URL, init?: RequestInit) =>
      String(input).startsWith("http://api.test") ? json(401, { error: "nope" }) : rotor.fetch(input, init);
    const { c } = make({ fetch: api });
    await c.login("ada", "pw");
    assert.equal((await c.fetch("http://api.test/x")).status, 401);
    assert.equal(rotor.refreshLog.length, 0);
  });

  test("a refresh with no cookie at start: signed out, no event", async () => {
    const { make } = setup();
    const { c, events } = make();
    assert.equal(await c.getAccessToken(), null);
    assert.deepEqual(events, []);
  });

  test("a cookie left from an earlier page restores the session (SIGNED_IN)", async () => {
    const { rotor, make } = setup();
    const first = make();
    await first.c.login("ada", "pw");
    first.c.close();
    const { c, events } = make({ crossTab: false });
    assert.ok(await c.getAccessToken());
    assert.deepEqual(types(events), ["SIGNED_IN"]);
    assert.equal(rotor.rotations, 1);
  });
});

describe("logout", () => {
  test("waits for the refresh in flight, then signs every tab out", async () => {
    const { clock, rotor, make } = setup();
    const a = make();
    const b = make();
    await a.c.login("ada", "pw");
    await flush();
    rotor.latency = 300;
    const refreshing = b.c.getAccessToken({ forceRefresh: true });
    await flush();
    const out = a.c.logout();
    await clock.advance(2_000);
    await refreshing;
    await out;
    assert.ok(rotor.logoutLog[0]!.at >= rotor.refreshLog[0]!.at + 300, "logout went after the refresh's reply");
    assert.equal(rotor.reuses, 0);
    await flush();
    assert.deepEqual(types(a.events).at(-1), "SIGNED_OUT:logout");
    assert.deepEqual(types(b.events).at(-1), "SIGNED_OUT:other_tab:logout");
    assert.equal(await b.c.getAccessToken(), null);
    assert.equal(rotor.jar, null);
  });

  test("a network failure still signs out locally and rejects", async () => {
    const { make } = setup();
    let down = false;
    const { c, events } = make();
    const s = await c.login("ada", "pw");
    assert.ok(s);
    const c2 = make({
      fetch: async () => {
        down = true;
        throw new TypeError("offline");
      },
    });
    // c2 is another tab whose network is down
    await flush();
    await assert.rejects(c2.c.logout(), /offline/);
    assert.ok(down);
    await flush();
    assert.deepEqual(types(events).at(-1), "SIGNED_OUT:other_tab:logout");
  });
});

describe("tabs and visibility", () => {
  test("a tab waiting longer than lockTimeout for another tab's lock reports lock_timeout and keeps its token", async () => {
    const { clock, locks, make, rotor } = setup({ lockTimeout: 1_000 });
    const { c, events } = make();
    const s = await c.login("ada", "pw");
    // another tab holds the lock and never lets go
    void locks.request("rotor-refresh http://rotor" + n + ".test", {}, () => new Promise<never>(() => undefined));
    await flush();
    const p = c.getAccessToken({ forceRefresh: true });
    await clock.advance(1_500);
    assert.equal(await p, s.accessToken, "the still-valid token");
    const e = events.at(-1) as Extract<AuthEvent, { type: "REFRESH_ERROR" }>;
    assert.equal(e.type, "REFRESH_ERROR");
    assert.equal(e.error.code, "lock_timeout");
    assert.equal(e.willRetry, true);
    assert.equal(rotor.refreshLog.length, 0, "no refresh without the lock");
  });

  test("body mode with a storage adapter: tabs share the refresh token; without one, body mode has no cross-tab state", async () => {
    const { clock, rotor, make } = setup({}, { cookie: false });
    let stored: string | null = null;
    const storage = { get: () => stored, set: (t: string | null) => void (stored = t) };
    const a = make({ storage });
    const b = make({ storage });
    await a.c.login("ada", "pw");
    assert.ok((stored as string | null)?.startsWith("rt_"));
    await flush();
    assert.ok(b.c.session, "b learned of the login");
    const p = Promise.all([a.c.getAccessToken({ forceRefresh: true }), b.c.getAccessToken({ forceRefresh: true })]);
    await clock.advance(1_000);
    const [ta, tb] = await p;
    assert.equal(ta, tb);
    assert.equal(rotor.rotations, 1);
    assert.equal(rotor.reuses, 0);
    await b.c.logout();
    assert.equal(stored, null);
    const lone = make({ crossTab: undefined });
    assert.equal(await lone.c.getAccessToken(), null, "a body-mode client without storage starts signed out");
  });

  test("a hidden tab skips its timer and refreshes when it becomes visible", async () => {
    const listeners: (() => void)[] = [];
    const doc = { visibilityState: "visible", addEventListener: (_: string, f: () => void) => listeners.push(f), removeEventListener() {} };
    (globalThis as { document?: unknown }).document = doc;
    try {
      const { clock, rotor, make } = setup();
      const { c } = make();
      await c.login("ada", "pw");
      doc.visibilityState = "hidden";
      await clock.advance(845_000);
      assert.equal(rotor.rotations, 0, "no refresh while hidden");
      doc.visibilityState = "visible";
      for (const f of listeners) f();
      await clock.advance(100);
      assert.equal(rotor.rotations, 1, "refreshed on becoming visible");
    } finally {
      delete (globalThis as { document?: unknown }).document;
    }
  });
});
