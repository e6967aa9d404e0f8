// Rendered on the server. It only reads and verifies the access cookie
// (proxy.ts already refreshed it if it was due): a server component must
// never refresh, since it cannot set the rotated cookie.
import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { rotor } from "@/lib/server";

export default async function Protected() {
  const session = await rotor.getSession(await cookies());
  if (!session) redirect("/login?next=/protected");
  return (
    <>
      <h1>Protected page</h1>
      <p>Rendered on the server for <b data-testid="email">{session.email ?? session.sub}</b>.</p>
      <table>
        <tbody>
          <tr><th>user id</th><td>{session.sub}</td></tr>
          <tr><th>session</th><td data-testid="sid">{session.sid}</td></tr>
          <tr><th>access token id</th><td data-testid="jti">{session.jti}</td></tr>
          <tr><th>expires</th><td data-testid="exp">{new Date(session.exp * 1000).toISOString()}</td></tr>
        </tbody>
      </table>
    </>
  );
}
