"use client";
// Browser side: one client per tab, talking to Rotor through /auth on the
// app's own origin (cookie mode: the refresh token is an HttpOnly cookie).
import { createClient, type RotorClient } from "@rotor/client";

let client: RotorClient | null = null;

export function rotorClient(): RotorClient {
  client ??= createClient({ baseUrl: "/auth" });
  return client;
}
