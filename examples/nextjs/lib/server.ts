// Server side: one instance of the helpers for the whole app (proxy.ts,
// route handlers and server components share its JWKS cache).
import "server-only";
import { createRotorServer } from "@rotor/client/server";

export const rotor = createRotorServer({
  // Rotor as this server reaches it. The browser never talks to it directly:
  // it goes through app/auth/[...path]/route.ts under the app's own origin.
  rotorUrl: process.env.ROTOR_URL ?? "http://127.0.0.1:8080",
  // The app's public origin; Rotor's CORS_ALLOWED_ORIGINS must list it.
  appOrigin: process.env.APP_ORIGIN ?? "http://localhost:3000",
  // Rotor's JWT_ISSUER and JWT_AUDIENCE (their defaults here).
  issuer: process.env.ROTOR_ISSUER ?? "http://localhost:8080",
  audience: process.env.ROTOR_AUDIENCE ?? "rotor",
});
