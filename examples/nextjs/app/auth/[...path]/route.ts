// Rotor's user-facing endpoints under the app's origin (/auth/token,
// /auth/refresh, /auth/logout, /auth/me, /auth/sessions…), so the
// __Host-rotor_refresh cookie belongs to this origin and the server can use
// it. Forwards only the refresh cookie; keeps the access cookie in step.
import { rotor } from "@/lib/server";

export const dynamic = "force-dynamic";

export const GET = (request: Request) => rotor.authRoute(request);
export const POST = (request: Request) => rotor.authRoute(request);
export const DELETE = (request: Request) => rotor.authRoute(request);
