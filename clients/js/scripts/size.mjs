// Prints the size of each entry point as an app would ship it: bundled,
// minified (esbuild) and gzipped.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

for (const entry of ["dist/index.js", "dist/server.js"]) {
  const out = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false, platform: "neutral" });
  const code = out.outputFiles[0].contents;
  console.log(`${entry}: ${code.length} B minified, ${gzipSync(code, { level: 9 }).length} B min+gzip`);
}
