// Next.js 16 "proxy" (formerly middleware): runs before every page request.
// If the access cookie is missing or due and the refresh cookie is there,
// it refreshes with Rotor ONCE for this request, forwards Rotor's rotated
// Set-Cookie (with Cache-Control: private, no-store), and hands the new
// access token to the server components of this same request.
import { NextResponse, type NextRequest } from "next/server";
import { rotor } from "./lib/server";

export async function proxy(request: NextRequest) {
  const r = await rotor.middleware(request);
  return NextResponse.next({ request: { headers: r.requestHeaders }, headers: r.responseHeaders });
}

export const config = {
  // Pages only: not Rotor's endpoints (/auth), API routes (Bearer tokens) or assets.
  matcher: ["/((?!auth/|api/|_next/|favicon.ico).*)"],
};
