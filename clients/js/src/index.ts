/**
 * @rotor/client: a small client for Rotor, the refresh-token service.
 *
 * In the browser (cookie mode, the default) the refresh token is an HttpOnly
 * cookie script never sees and the access token lives in memory; refreshes
 * are serialized across tabs with Web Locks and shared over
 * BroadcastChannel. See README.md.
 *
 * @packageDocumentation
 */
export { createClient } from "./client.js";
export type {
  AuthEvent,
  ClientOptions,
  Mode,
  RefreshTokenStorage,
  RotorClient,
  Session,
  SessionInfo,
  SignedOutReason,
} from "./client.js";
export { RotorError } from "./errors.js";
export type { LockManagerLike, Timers } from "./tabs.js";
