"use client";
// A client page: it calls an API route with the access token the client
// holds in memory (rotorClient().fetch adds Authorization: Bearer, and on a
// 401 invalid_token refreshes once and retries once).
import { useEffect, useState } from "react";
import { rotorClient } from "@/lib/client";

type Notes = { user: string; notes: { id: number; text: string }[] };

export default function NotesPage() {
  const [state, setState] = useState<{ notes?: Notes; error?: string }>({});
  useEffect(() => {
    let live = true;
    (async () => {
      const res = await rotorClient().fetch("/api/notes");
      const body = await res.json();
      if (live) setState(res.ok ? { notes: body as Notes } : { error: `${res.status} ${body.error ?? ""}` });
    })().catch((e) => live && setState({ error: String(e) }));
    return () => {
      live = false;
    };
  }, []);
  if (state.error) return <p className="error" data-testid="notes-error">{state.error} — <a href="/login?next=/notes">log in</a></p>;
  if (!state.notes) return <p>Loading…</p>;
  return (
    <>
      <h1>Notes of <span data-testid="notes-user">{state.notes.user}</span></h1>
      <ul data-testid="notes">
        {state.notes.notes.map((n) => (
          <li key={n.id}>{n.text}</li>
        ))}
      </ul>
    </>
  );
}
