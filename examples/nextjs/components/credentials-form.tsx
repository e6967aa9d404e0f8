"use client";
import { useState, type FormEvent } from "react";
import { RotorError } from "@rotor/client";
import { rotorClient } from "@/lib/client";

/** The log-in and sign-up form. After a login the browser holds both cookies (set through /auth/token). */
export function CredentialsForm({ signUp }: { signUp?: boolean }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    const data = new FormData(e.currentTarget);
    const email = String(data.get("email")), password = String(data.get("password"));
    setBusy(true);
    setError("");
    try {
      if (signUp) await rotorClient().signUp(email, password);
      await rotorClient().login(email, password);
      const next = new URLSearchParams(location.search).get("next");
      // Only a same-origin path: "/\\evil.example" or "/\t/evil.example" look like
      // paths but browsers read them as other hosts, so resolve and compare.
      let target = "/protected";
      if (next) {
        const u = new URL(next, location.origin);
        if (u.origin === location.origin) target = u.pathname + u.search + u.hash;
      }
      location.assign(target);
    } catch (err) {
      setError(err instanceof RotorError ? err.description || err.code : String(err));
      setBusy(false);
    }
  }
  return (
    <form onSubmit={submit}>
      <input name="email" type="email" placeholder="email" autoComplete="username" required />
      <input name="password" type="password" placeholder="password (8+ characters)" autoComplete={signUp ? "new-password" : "current-password"} required />
      <button disabled={busy}>{signUp ? "Sign up" : "Log in"}</button>
      {error && <p className="error" role="alert">{error}</p>}
    </form>
  );
}
