import type { ReactNode } from "react";
import Link from "next/link";
import { cookies } from "next/headers";
import { rotor } from "@/lib/server";
import { AuthWatcher, SignOutButton } from "@/components/auth";
import "./style.css";

export const metadata = { title: "Rotor + Next.js" };

export default async function RootLayout({ children }: { children: ReactNode }) {
  // Read-only: verifies the access cookie, never refreshes (proxy.ts did, if needed).
  const session = await rotor.getSession(await cookies());
  return (
    <html lang="en">
      <body>
        <nav>
          <Link href="/">Home</Link>
          <Link href="/protected">Protected (server)</Link>
          <Link href="/notes">Notes (client + API route)</Link>
          <Link href="/sessions">Sessions</Link>
          <span className="who" data-testid="who">
            {session ? (
              <>
                {session.email ?? session.sub} <SignOutButton />
              </>
            ) : (
              <>
                <Link href="/login">Log in</Link> <Link href="/signup">Sign up</Link>
              </>
            )}
          </span>
        </nav>
        <AuthWatcher />
        <main>{children}</main>
      </body>
    </html>
  );
}
