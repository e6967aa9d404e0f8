"use client";
import { useEffect, useState } from "react";
import { rotorClient } from "@/lib/client";

/** Sends this tab to /login when any tab signs out (or the session is revoked). */
export function AuthWatcher() {
  useEffect(
    () =>
      rotorClient().onAuthStateChange((e) => {
        if (e.type === "SIGNED_OUT" && location.pathname !== "/login") location.assign("/login");
      }),
    [],
  );
  return null;
}

/** Logs out of this session; every tab of the app follows. */
export function SignOutButton({ label = "Log out", scope }: { label?: string; scope?: "global" }) {
  const [busy, setBusy] = useState(false);
  return (
    <button
      disabled={busy}
      onClick={async () => {
        setBusy(true);
        await rotorClient()
          .logout(scope ? { scope } : {})
          .catch(() => undefined); // signed out locally even if Rotor was unreachable
        location.assign("/login");
      }}
    >
      {label}
    </button>
  );
}
