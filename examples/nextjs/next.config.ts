import path from "node:path";
import type { NextConfig } from "next";

const config: NextConfig = {
  // @rotor/client is linked from ../../clients/js: let the bundler look there.
  turbopack: { root: path.resolve(import.meta.dirname, "../..") },
  outputFileTracingRoot: path.resolve(import.meta.dirname, "../.."),
  poweredByHeader: false,
};

export default config;
