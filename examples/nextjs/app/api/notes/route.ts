// An API route a client page calls with `Authorization: Bearer` (the
// client's fetch adds it). The token is verified offline with Rotor's JWKS.
import { rotor } from "@/lib/server";

export const dynamic = "force-dynamic";

export async function GET(request: Request) {
  const claims = await rotor.verifyRequest(request).catch(() => undefined);
  if (claims === undefined) return Response.json({ error: "temporarily_unavailable" }, { status: 503 });
  if (!claims) return rotor.unauthorized();
  return Response.json(
    {
      user: claims.email ?? claims.sub,
      notes: [
        { id: 1, text: "This came from an API route that verified your access token." },
        { id: 2, text: `Token id ${claims.jti}, session ${claims.sid}.` },
      ],
    },
    { headers: { "Cache-Control": "private, no-store" } },
  );
}
