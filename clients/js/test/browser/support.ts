// Shared by the browser tests: the real Rotor binary, a static server for
// the test page, a fault-injecting proxy in front of Rotor, and Chromium.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
/** clients/js (this file runs from clients/js/build/test/browser). */
export const pkgDir = path.resolve(here, "../../..");
export const repoRoot = path.resolve(pkgDir, "../..");

/** A free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

let built: string | null = null;
/** ROTOR_BIN if set (clients/test.sh builds it once), else `go build` into a temp dir. */
export function rotorBinary(): string {
  if (process.env["ROTOR_BIN"]) return process.env["ROTOR_BIN"];
  if (!built) {
    built = path.join(mkdtempSync(path.join(tmpdir(), "rotor-js-")), "rotor");
    execFileSync("go", ["build", "-o", built, "./cmd/server"], { cwd: repoRoot, stdio: "inherit" });
  }
  return built;
}

export interface Rotor {
  /** http://127.0.0.1:port */
  base: string;
  port: number;
  logs: () => string;
  stop: () => Promise<void>;
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** Starts the real Rotor (in-memory store) with env on a free port and waits for /healthz. */
export async function startRotor(env: Record<string, string>): Promise<Rotor> {
  const port = await freePort();
  let out = "";
  const proc = spawn(rotorBinary(), [], {
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", HTTP_ADDR: `127.0.0.1:${port}`, LOG_FORMAT: "text", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const base = `http://127.0.0.1:${port}`;
  const until = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`rotor exited (${proc.exitCode}):\n${out}`);
    try {
      if ((await fetch(base + "/healthz")).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new Error("rotor did not start:\n" + out);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base,
    port,
    logs: () => out,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", () => {
          children.delete(proc);
          resolve();
        });
        proc.kill("SIGTERM");
      }),
  };
}

/** Starts a child process (like `next start`) that is killed at exit. */
export function track(proc: ChildProcess): ChildProcess {
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  return proc;
}

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Debian's Chromium through playwright-core (never a downloaded browser). */
export async function launchChromium(): Promise<Browser> {
  const executablePath = process.env["CHROMIUM"] ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: apt-get install -y chromium fonts-liberation`);
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}

/** Serves the test page and the built package (dist/) at http://localhost:port. */
export async function startPageServer(): Promise<{ origin: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    let file: string | null = null;
    if (url.pathname === "/" || url.pathname === "/index.html") file = path.join(here, "../../../test/browser/harness.html");
    else if (/^\/dist\/[\w.-]+\.js$/.test(url.pathname)) file = path.join(pkgDir, url.pathname);
    if (!file || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      "Content-Type": file.endsWith(".js") ? "text/javascript" : "text/html; charset=utf-8",
      "Cache-Control": "no-store",
    });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return { origin: `http://localhost:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

/** One request the proxy forwarded. */
export interface Forwarded {
  method: string;
  path: string;
  status: number;
  /** The refresh cookie the request carried, and the one the reply set. */
  sentCookie: string | null;
  setCookie: string | null;
  dropped: boolean;
}

/**
 * A reverse proxy to Rotor at http://localhost:port that records every
 * request and can drop replies: it forwards the request, reads Rotor's
 * whole reply (so the rotation has committed), and then destroys the
 * browser's socket instead of answering.
 */
export async function startProxy(target: string) {
  const log: Forwarded[] = [];
  const state = { dropRefreshReplies: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === "string" && !["host", "connection", "content-length"].includes(k)) headers.set(k, v);
      }
      const sentCookie = /__Host-rotor_refresh=([^;]+)/.exec(req.headers.cookie ?? "")?.[1] ?? null;
      let upstream: Response;
      try {
        upstream = await fetch(target + req.url, {
          method: req.method ?? "GET",
          headers,
          body: chunks.length ? Buffer.concat(chunks) : null,
          redirect: "manual",
        });
      } catch {
        res.writeHead(502).end();
        return;
      }
      const body = Buffer.from(await upstream.arrayBuffer()); // Rotor has answered: the rotation committed
      const setCookies = upstream.headers.getSetCookie();
      const setCookie = /__Host-rotor_refresh=([^;]*)/.exec(setCookies.join("\n"))?.[1] ?? null;
      const drop = req.method === "POST" && req.url === "/refresh" && state.dropRefreshReplies > 0;
      if (drop) state.dropRefreshReplies--;
      log.push({ method: req.method ?? "", path: req.url ?? "", status: upstream.status, sentCookie, setCookie, dropped: drop });
      if (drop) {
        req.socket.destroy(); // the reply is lost
        return;
      }
      const out: Record<string, string | string[]> = { Connection: "close" };
      upstream.headers.forEach((v, k) => {
        if (!["set-cookie", "content-length", "connection", "transfer-encoding", "content-encoding"].includes(k)) out[k] = v;
      });
      if (setCookies.length) out["set-cookie"] = setCookies;
      res.writeHead(upstream.status, out);
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    log,
    state,
    /** POST /refresh answered 200 (rotations, or grace replays). */
    refreshOKs: () => log.filter((f) => f.method === "POST" && f.path === "/refresh" && f.status === 200),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** JSON to Rotor from Node, as a non-browser caller. */
export async function call(base: string, method: string, p: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + p, {
    method,
    headers: { ...(body !== undefined ? { "Content-Type": "application/json" } : {}), ...headers },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : null, headers: res.headers };
}
