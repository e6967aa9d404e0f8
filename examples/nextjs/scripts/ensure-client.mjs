// Builds ../../clients/js (the @rotor/client this example links to) when its
// dist/ is missing, so `npm install && npm run dev` works from a fresh clone.
import { execSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const pkg = fileURLToPath(new URL("../../../clients/js/", import.meta.url));
if (!existsSync(pkg + "dist/index.js") || !existsSync(pkg + "dist/server.js")) {
  console.log("building @rotor/client in clients/js …");
  const run = (cmd) => execSync(cmd, { cwd: pkg, stdio: "inherit", env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: "1" } });
  if (!existsSync(pkg + "node_modules/typescript")) run("npm ci --no-fund --no-audit");
  run("npm run build");
}
