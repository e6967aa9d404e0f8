// examples/nextjs (built with `next build`) driven end to end in Chromium
// against the real Rotor: sign up, a server-rendered protected page, a
// client page calling an API route, the sessions list, proxy.ts refreshing
// once after the access token is due, and logout.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import { call, freePort, launchChromium, type Rotor, repoRoot, startRotor, track } from "./support.js";

const example = path.join(repoRoot, "examples/nextjs");
let rotor: Rotor;
let browser: Browser;
let app: string;
let nextOut = "";
let stopNext: () => Promise<void> = async () => {};

before(async () => {
  if (!existsSync(path.join(example, ".next/BUILD_ID"))) {
    throw new Error("examples/nextjs is not built: cd examples/nextjs && npm ci && npx next build");
  }
  const port = await freePort();
  app = `http://localhost:${port}`;
  rotor = await startRotor({
    REFRESH_COOKIE: "true",
    CORS_ALLOWED_ORIGINS: app,
    LOGIN_RATE_LIMIT: "0",
    ACCESS_TOKEN_TTL: "1m", // the shortest Rotor allows: due for refresh 30 s after issue
  });
  const proc = track(
    spawn(process.execPath, [path.join(example, "node_modules/next/dist/bin/next"), "start", "-p", String(port), "-H", "127.0.0.1"], {
      cwd: example,
      env: { ...process.env, ROTOR_URL: rotor.base, APP_ORIGIN: app, NEXT_TELEMETRY_DISABLED: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  proc.stdout!.on("data", (d) => (nextOut += d));
  proc.stderr!.on("data", (d) => (nextOut += d));
  stopNext = () => new Promise((r) => (proc.exitCode !== null ? r() : (proc.once("exit", () => r()), proc.kill("SIGTERM"))));
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(app + "/")).ok) break;
    } catch {
      // starting
    }
    if (proc.exitCode !== null || Date.now() > until) throw new Error("next start failed:\n" + nextOut);
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stopNext();
  await rotor?.stop();
});

const refreshes = () => (rotor.logs().match(/route=\/refresh status=200/g) ?? []).length;
const claims = (jwt: string) => JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as { iat: number; exp: number; jti: string };

test("Next.js example: sign up, server-rendered page, API route, sessions, refresh in proxy.ts after expiry, logout", { timeout: 150_000 }, async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const email = "next@example.test", password = "correct horse battery";
  const accessCookie = async () => (await ctx.cookies(app)).find((c) => c.name === "__Host-rotor_access")?.value;
  const refreshCookie = async () => (await ctx.cookies(app)).find((c) => c.name === "__Host-rotor_refresh")?.value;

  // Sign up (and log in) through the client page.
  await page.goto(app + "/signup");
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await page.click("button:has-text('Sign up')");
  await page.waitForURL(app + "/protected");
  assert.equal(await page.textContent("[data-testid=email]"), email);

  // Server-rendered: the HTML itself (no script run) carries the user.
  const html = await (await ctx.request.get(app + "/protected", { maxRedirects: 0 })).text();
  assert.match(html, new RegExp(`data-testid="email">${email}<`));
  assert.equal((await ctx.request.get(app + "/protected", { maxRedirects: 0, headers: { cookie: "" } })).status(), 307, "no cookies: redirected");

  // A client page calling an API route with the bearer token.
  await page.goto(app + "/notes");
  assert.equal(await page.textContent("[data-testid=notes-user]"), email);

  // Sessions: another device logs in; revoke it from this one.
  const other = await call(rotor.base, "POST", "/token", { username: email, password }, { Origin: app });
  assert.equal(other.status, 200);
  await page.goto(app + "/sessions");
  await page.waitForSelector("[data-testid=sessions] tbody tr");
  assert.equal(await page.locator("[data-testid=sessions] tbody tr").count(), 2);
  await page.click(`tr[data-session="${other.json!["session_id"]}"] button:has-text('Revoke')`);
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=sessions] tbody tr").length === 1);
  if (process.env["ARTIFACT_DIR"]) await page.screenshot({ path: path.join(process.env["ARTIFACT_DIR"], "nextjs-sessions.png"), fullPage: true });
  assert.equal(await page.getAttribute("[data-testid=sessions] tbody tr", "data-current"), "yes");

  // The user leaves (no client runs), the access token becomes due, and
  // the next page request is refreshed by proxy.ts, once.
  await page.goto("about:blank");
  const before = (await accessCookie())!;
  const rtBefore = await refreshCookie();
  const c = claims(before);
  const dueAt = (c.exp - Math.min(60, (c.exp - c.iat) / 2)) * 1000;
  await new Promise((r) => setTimeout(r, Math.max(0, dueAt - Date.now() + 1500)));
  const n = refreshes();
  const res = await page.goto(app + "/protected");
  assert.equal(res!.status(), 200);
  assert.equal(refreshes() - n, 1, "one refresh for the request");
  assert.equal(await res!.headerValue("cache-control"), "private, no-store");
  assert.match((await res!.headerValue("set-cookie")) ?? "", /__Host-rotor_refresh=rt_/);
  const afterToken = (await accessCookie())!;
  assert.notEqual(afterToken, before);
  assert.notEqual(await refreshCookie(), rtBefore, "the rotated refresh cookie reached the browser");
  assert.equal(await page.textContent("[data-testid=jti]"), claims(afterToken).jti, "the page rendered with the new token");
  assert.equal(await page.textContent("[data-testid=email]"), email);
  const shots = process.env["ARTIFACT_DIR"];
  if (shots) await page.screenshot({ path: path.join(shots, "nextjs-protected.png"), fullPage: true });
  // and the next request needs no refresh
  await page.goto(app + "/protected");
  assert.equal(refreshes() - n, 1);

  // Log out ("sign out this device"): the server page is closed again.
  await page.goto(app + "/sessions");
  await page.click("button:has-text('Sign out this device')");
  await page.waitForURL(app + "/login");
  assert.equal(await refreshCookie(), undefined);
  assert.equal(await accessCookie(), undefined);
  const closed = await ctx.request.get(app + "/protected", { maxRedirects: 0 });
  assert.equal(closed.status(), 307);
  assert.match(closed.headers()["location"] ?? "", /\/login/);
  assert.ok(!/reuse/i.test(rotor.logs()), "no reuse detected");
  await ctx.close();
});
