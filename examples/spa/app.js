// A minimal SPA client for Rotor's browser mode (REFRESH_COOKIE=true).
// The access token is kept in a variable; the refresh token is an HttpOnly
// cookie sent by the browser with credentials: "include".
// The API address comes from config.js (same origin, written at deploy
// time), never from the URL, so a link cannot send the password elsewhere.
"use strict";

const CONFIG = window.ROTOR_CONFIG || {};
if (!CONFIG.api) {
  document.getElementById("status").textContent = "config.js does not set ROTOR_CONFIG.api";
  throw new Error("no API address configured");
}
const API = new URL(CONFIG.api).origin; // scheme://host:port, nothing else
document.getElementById("api").textContent = API;

let accessToken = null;

function log(ok, text) {
  const li = document.createElement("li");
  li.className = ok ? "ok" : "fail";
  li.textContent = text;
  document.getElementById("log").appendChild(li);
}

async function call(method, path, body, bearer) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (bearer) headers["Authorization"] = "Bearer " + bearer;
  const resp = await fetch(API + path, {
    method, headers, credentials: "include",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  return { status: resp.status, json };
}

async function login(email, password) {
  const r = await call("POST", "/token", { username: email, password });
  if (r.status === 200) accessToken = r.json.access_token;
  log(r.status === 200 && !("refresh_token" in r.json), "log in → " + r.status + (r.json && "refresh_token" in r.json ? " (refresh token in body!)" : ""));
  return r;
}

async function me() {
  const r = await call("GET", "/me", undefined, accessToken);
  log(r.status === 200, "/me → " + r.status + (r.json && r.json.email ? " " + r.json.email : ""));
  document.getElementById("who").textContent = r.status === 200 ? r.json.email : "nobody";
  return r;
}

async function refresh() {
  const r = await call("POST", "/refresh");
  if (r.status === 200) accessToken = r.json.access_token;
  log(r.status === 200, "refresh → " + r.status);
  return r;
}

// Two tabs refreshing at the same moment: both must stay logged in.
async function twoTabs() {
  const [a, b] = await Promise.all([call("POST", "/refresh"), call("POST", "/refresh")]);
  const ok = a.status === 200 && b.status === 200;
  if (ok) accessToken = b.json.access_token;
  log(ok, "two tabs refresh at once → " + a.status + " and " + b.status);
  return { status: ok ? 200 : 400 };
}

async function logout() {
  const r = await call("POST", "/logout", undefined, accessToken);
  log(r.status === 204, "log out → " + r.status);
  const after = await call("POST", "/refresh");
  log(after.status === 400, "refresh after logout → " + after.status);
  accessToken = null;
  document.getElementById("who").textContent = "nobody";
  return { status: r.status === 204 && after.status === 400 ? 204 : 500 };
}

document.getElementById("login").addEventListener("submit", (e) => {
  e.preventDefault();
  login(document.getElementById("email").value, document.getElementById("password").value);
});
document.getElementById("me").addEventListener("click", me);
document.getElementById("refresh").addEventListener("click", refresh);
document.getElementById("tabs").addEventListener("click", twoTabs);
document.getElementById("logout").addEventListener("click", logout);

// ROTOR_CONFIG.selfTest = {email, password} (set only by the config.js the
// headless-browser test serves) runs the whole scenario and writes a JSON
// summary into #result.
(async () => {
  const auto = CONFIG.selfTest;
  if (!auto) return;
  const { email, password } = auto;
  const steps = {};
  const status = document.getElementById("status");
  try {
    steps.login = (await login(email, password)).status;
    steps.me = (await me()).status;
    steps.refresh = (await refresh()).status;
    steps.meAfterRefresh = (await me()).status;
    steps.twoTabs = (await twoTabs()).status;
    steps.meAfterTabs = (await me()).status;
    steps.logout = (await logout()).status;
    steps.cookieVisibleToScript = document.cookie.includes("rotor_refresh");
  } catch (e) {
    steps.error = String(e);
  }
  status.textContent = "done";
  const out = document.getElementById("result");
  out.textContent = JSON.stringify(steps);
  out.hidden = false;
})();
