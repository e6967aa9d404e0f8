// The built package in Debian's Chromium against the real Rotor in browser
// mode (REFRESH_COOKIE=true), through a proxy that records and can drop
// replies. Each test has its own browser context (cookie jar) and user.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { call, launchChromium, type Rotor, startPageServer, startProxy, startRotor } from "./support.js";

type Ev = { type: string; at: number; reason?: string; cause?: string | null; code?: string; willRetry?: boolean };
declare const T: {
  start(api: string, opts?: object): boolean;
  client: import("../../src/index.js").RotorClient;
  events: Ev[];
  skew: number;
  token(): string | null;
};

const ADMIN = { email: "admin@example.test", password: "admin password 1" };
let site: Awaited<ReturnType<typeof startPageServer>>;
let rotor: Rotor;
let proxy: Awaited<ReturnType<typeof startProxy>>;
let browser: Browser;
let users = 0;

before(async () => {
  site = await startPageServer();
  rotor = await startRotor({
    REFRESH_COOKIE: "true",
    CORS_ALLOWED_ORIGINS: site.origin,
    LOGIN_RATE_LIMIT: "0",
    QUIET_ACCESS_LOG: "true",
    BOOTSTRAP_ADMIN_EMAIL: ADMIN.email,
    BOOTSTRAP_ADMIN_PASSWORD: ADMIN.password,
  });
  proxy = await startProxy(rotor.base);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await rotor?.stop();
  await site?.close();
});

async function newUser(): Promise<{ email: string; password: string }> {
  const u = { email: `user${++users}@example.test`, password: "correct horse battery" };
  const r = await call(rotor.base, "POST", "/users", u);
  assert.equal(r.status, 201);
  return u;
}

async function openTabs(ctx: BrowserContext, n: number): Promise<Page[]> {
  const pages: Page[] = [];
  for (let i = 0; i < n; i++) {
    const p = await ctx.newPage();
    await p.goto(site.origin + "/");
    await p.waitForFunction(() => document.getElementById("status")?.textContent === "ready");
    await p.evaluate((api) => T.start(api), proxy.url);
    pages.push(p);
  }
  return pages;
}

async function login(page: Page, u: { email: string; password: string }): Promise<void> {
  await page.evaluate(([e, p]) => T.client.login(e!, p!).then(() => undefined), [u.email, u.password]);
}

test("five tabs refreshing at the same moment, 20 rounds: one rotation per round, all signed in; then a logout in one tab signs all out within a second", async () => {
  const ctx = await browser.newContext();
  const tabs = await openTabs(ctx, 5);
  const u = await newUser();
  await login(tabs[0]!, u);
  await tabs[4]!.waitForFunction(() => T.token() !== null);
  const first = await Promise.all(tabs.map((p) => p.evaluate(() => T.token())));
  assert.equal(new Set(first).size, 1, "the login reached every tab");

  let worstSpread = 0;
  for (let round = 1; round <= 20; round++) {
    const okBefore = proxy.refreshOKs().length;
    const at = Date.now() + 120;
    // Every tab's clock jumps past the token's refresh time, then all ask
    // for a token at one wall-clock instant.
    const got = await Promise.all(
      tabs.map((p) =>
        p.evaluate(
          async ({ at, skew }) => {
            T.skew = skew;
            await new Promise((r) => setTimeout(r, at - Date.now()));
            const t0 = Date.now();
            const token = await T.client.getAccessToken();
            return { token, t0 };
          },
          { at, skew: round * 900_000 },
        ),
      ),
    );
    const rotations = proxy.refreshOKs().length - okBefore;
    assert.equal(rotations, 1, `round ${round}: ${rotations} rotations`);
    assert.ok(got.every((g) => g.token), `round ${round}: a tab has no token`);
    assert.equal(new Set(got.map((g) => g.token)).size, 1, `round ${round}: the tabs hold different tokens`);
    worstSpread = Math.max(worstSpread, Math.max(...got.map((g) => g.t0)) - Math.min(...got.map((g) => g.t0)));
    const me = await Promise.all(tabs.map((p) => p.evaluate(() => T.client.me().then((m) => m.email))));
    assert.deepEqual(me, Array(5).fill(u.email), `round ${round}: /me`);
  }
  assert.ok(!/reuse/i.test(rotor.logs()), "the server saw no reuse");
  console.log(`# five tabs × 20 rounds: one rotation each; worst spread of the tabs' calls ${worstSpread} ms`);

  // Log out in tab 2: every tab is signed out within a second.
  const t0 = await tabs[2]!.evaluate(async () => {
    const t0 = Date.now();
    await T.client.logout();
    return t0;
  });
  for (const [i, p] of tabs.entries()) {
    await p.waitForFunction(() => T.events.some((e) => e.type === "SIGNED_OUT"), undefined, { timeout: 2000 });
    const ev = await p.evaluate(() => T.events.find((e) => e.type === "SIGNED_OUT")!);
    assert.ok(ev.at - t0 < 1000, `tab ${i} signed out ${ev.at - t0} ms after the logout`);
    assert.equal(ev.reason, i === 2 ? "logout" : "other_tab");
    if (i !== 2) assert.equal(ev.cause, "logout");
    assert.equal(await p.evaluate(() => T.client.getAccessToken()), null);
  }
  // and the session is over on the server: a new tab cannot restore it
  const [fresh] = await openTabs(ctx, 1);
  assert.equal(await fresh!.evaluate(() => T.client.getAccessToken()), null);
  await ctx.close();
});

test("a refresh reply dropped after Rotor committed: the retry re-sends the old cookie, gets the same successor, and the session lives", async () => {
  const ctx = await browser.newContext();
  const [tab] = await openTabs(ctx, 1);
  await login(tab!, await newUser());
  const from = proxy.log.length;
  proxy.state.dropRefreshReplies = 1;
  const token = await tab!.evaluate(async () => {
    T.skew = 900_000;
    return T.client.getAccessToken();
  });
  assert.ok(token);
  const refreshes = proxy.log.slice(from).filter((f) => f.path === "/refresh" && f.method === "POST");
  assert.ok(refreshes.length >= 2, JSON.stringify(refreshes));
  const [lost, retry] = refreshes as [(typeof refreshes)[0], (typeof refreshes)[0]];
  assert.equal(lost.dropped, true);
  assert.equal(lost.status, 200, "Rotor rotated before the reply was lost");
  assert.equal(retry.dropped, false);
  assert.equal(retry.sentCookie, lost.sentCookie, "the browser still held the old cookie");
  assert.equal(retry.status, 200);
  assert.equal(retry.setCookie, lost.setCookie, "the retry got the byte-identical successor");
  const events = await tab!.evaluate(() => T.events.map((e) => `${e.type}${e.willRetry !== undefined ? ":" + e.willRetry : ""}`));
  assert.deepEqual(events, ["SIGNED_IN", "REFRESH_ERROR:true", "TOKEN_REFRESHED"]);
  // the session lives: /me works, and the next rotation (from the successor) too
  assert.equal(await tab!.evaluate(() => T.client.me().then((m) => typeof m.id)), "string");
  const next = await tab!.evaluate(async () => {
    T.skew = 1_800_000;
    return T.client.getAccessToken();
  });
  assert.ok(next && next !== token);
  assert.ok(!/reuse/i.test(rotor.logs()));
  await ctx.close();
});

test("an admin revokes the session: the next API call gets 401, the client refreshes once, gets invalid_grant, SIGNED_OUT revoked", async () => {
  const ctx = await browser.newContext();
  const [tab] = await openTabs(ctx, 1);
  await login(tab!, await newUser());
  const sid = await tab!.evaluate(() => T.client.session!.sessionId);
  const admin = await call(rotor.base, "POST", "/token", { username: ADMIN.email, password: ADMIN.password }, { Origin: site.origin });
  assert.equal(admin.status, 200);
  const del = await call(rotor.base, "DELETE", `/admin/sessions/${sid}`, undefined, { Authorization: `Bearer ${admin.json!["access_token"]}` });
  assert.equal(del.status, 204);
  const from = proxy.log.length;
  const status = await tab!.evaluate(() => T.client.me().then(() => 200, (e: { status: number }) => e.status));
  assert.equal(status, 401);
  const after = proxy.log.slice(from).map((f) => `${f.method} ${f.path} ${f.status}`).filter((l) => !l.startsWith("OPTIONS") && !l.includes("/.well-known/"));
  assert.deepEqual(after, ["GET /me 401", "POST /refresh 400"], "one refresh, no second try of /me");
  const events = await tab!.evaluate(() => T.events.map((e) => e.type + (e.reason ? ":" + e.reason : "")));
  assert.deepEqual(events, ["SIGNED_IN", "SIGNED_OUT:revoked"]);
  assert.equal(await tab!.evaluate(() => T.client.getAccessToken()), null);
  await ctx.close();
});

describe("cookie hygiene", () => {
  test("the refresh token never reaches script: not in the body, not in document.cookie", async () => {
    const ctx = await browser.newContext();
    const [tab] = await openTabs(ctx, 1);
    const u = await newUser();
    const seen = await tab!.evaluate(
      async ({ api, u }) => {
        const res = await fetch(api + "/token", {
          method: "POST",
          credentials: "include",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ username: u.email, password: u.password }),
        });
        const body = await res.json();
        return { status: res.status, inBody: "refresh_token" in body, inCookie: document.cookie.includes("rotor_refresh") };
      },
      { api: proxy.url, u },
    );
    assert.deepEqual(seen, { status: 200, inBody: false, inCookie: false });
    const cookies = await ctx.cookies();
    const rt = cookies.find((c) => c.name === "__Host-rotor_refresh");
    assert.ok(rt && rt.httpOnly && rt.secure && rt.sameSite === "Strict" && rt.path === "/");
    await ctx.close();
  });
});
