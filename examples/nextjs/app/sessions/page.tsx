"use client";
// The user's sessions (GET /sessions through /auth): revoke another device,
// sign out this device, or sign out everywhere.
import { useCallback, useEffect, useState } from "react";
import type { SessionInfo } from "@rotor/client";
import { rotorClient } from "@/lib/client";
import { SignOutButton } from "@/components/auth";

export default function SessionsPage() {
  const [list, setList] = useState<SessionInfo[] | null>(null);
  const [error, setError] = useState("");
  const load = useCallback(async () => {
    try {
      if (!(await rotorClient().getAccessToken())) return location.assign("/login?next=/sessions");
      setList(await rotorClient().sessions.list());
    } catch (e) {
      setError(String(e));
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);
  if (error) return <p className="error">{error}</p>;
  if (!list) return <p>Loading…</p>;
  return (
    <>
      <h1>Your sessions</h1>
      <table data-testid="sessions">
        <thead>
          <tr><th>device</th><th>last used</th><th>ip</th><th></th></tr>
        </thead>
        <tbody>
          {list.map((s) => (
            <tr key={s.id} data-session={s.id} data-current={s.current ? "yes" : "no"}>
              <td>{s.user_agent.slice(0, 60) || "unknown"}{s.current ? " (this device)" : ""}</td>
              <td>{new Date(s.last_used_at).toLocaleString()}</td>
              <td>{s.ip}</td>
              <td>
                {s.current ? (
                  <SignOutButton label="Sign out this device" />
                ) : (
                  <button onClick={() => rotorClient().sessions.revoke(s.id).then(load, (e) => setError(String(e)))}>Revoke</button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        <SignOutButton label="Sign out everywhere" scope="global" />
      </p>
    </>
  );
}
