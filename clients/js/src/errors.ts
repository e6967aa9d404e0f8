/**
 * An error answered by Rotor (its `{error, error_description}` body), or a
 * failure to reach it.
 *
 * `status` is the HTTP status, or 0 when no response arrived (network error,
 * timeout). `code` is Rotor's error code (`invalid_grant`,
 * `temporarily_unavailable`, …), or `network_error`, `timeout`,
 * `bad_response` (a reply that is not Rotor's JSON, e.g. from a proxy) and
 * `lock_timeout` (another tab held the refresh lock for too long).
 */
export class RotorError extends Error {
  readonly status: number;
  readonly code: string;
  readonly description: string;
  /** Seconds from `Retry-After`, when the server sent one. */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, description: string, retryAfter?: number) {
    super(description ? `${code}: ${description}` : code);
    this.name = "RotorError";
    this.status = status;
    this.code = code;
    this.description = description;
    this.retryAfter = retryAfter;
  }
}

/** Reads Rotor's error body from a non-2xx response; never throws. */
export async function errorFrom(res: Response): Promise<RotorError> {
  let code = "bad_response";
  let description = `HTTP ${res.status}`;
  try {
    const body: unknown = await res.json();
    if (body && typeof body === "object" && typeof (body as { error?: unknown }).error === "string") {
      code = (body as { error: string }).error;
      const d = (body as { error_description?: unknown }).error_description;
      description = typeof d === "string" ? d : "";
    }
  } catch {
    // not JSON: a proxy's or load balancer's page
  }
  const ra = Number(res.headers.get("Retry-After"));
  return new RotorError(res.status, code, description, Number.isFinite(ra) && ra > 0 ? ra : undefined);
}

/** base64url → bytes. */
export function b64urlBytes(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Decodes one base64url JSON segment of a JWT, or returns null. */
export function jsonSegment(seg: string | undefined): Record<string, unknown> | null {
  if (!seg || !/^[A-Za-z0-9_-]+$/.test(seg)) return null;
  try {
    const v: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b64urlBytes(seg)));
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
