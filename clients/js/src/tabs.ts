import { RotorError } from "./errors.js";

/** The part of the Web Locks API (`navigator.locks`) the client uses. */
export interface LockManagerLike {
  request<T>(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal },
    callback: (lock: unknown) => Promise<T>,
  ): Promise<T>;
}

/** setTimeout/clearTimeout, injectable for tests. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const NOT_GRANTED = Symbol("not granted");

/**
 * Runs fn holding the exclusive Web Lock `name`, shared by every tab of the
 * origin. fn learns whether it had to wait (another tab held the lock,
 * which usually means that tab was refreshing and is about to broadcast the
 * result). Waiting is bounded by timeoutMs; past it, lock_timeout is thrown
 * and fn never runs.
 */
export async function withWebLock<T>(
  locks: LockManagerLike,
  name: string,
  timeoutMs: number,
  timers: Timers,
  fn: (waited: boolean) => Promise<T>,
): Promise<T> {
  const first = await locks.request(name, { ifAvailable: true }, async (lock) =>
    lock ? fn(false) : NOT_GRANTED,
  );
  if (first !== NOT_GRANTED) return first as T;
  const ctl = new AbortController();
  const timer = timers.setTimeout(() => ctl.abort(), timeoutMs);
  try {
    return await locks.request(name, { signal: ctl.signal }, async () => {
      timers.clearTimeout(timer);
      return fn(true);
    });
  } catch (e) {
    if (ctl.signal.aborted) {
      throw new RotorError(0, "lock_timeout", `another tab held the refresh lock for more than ${timeoutMs} ms`);
    }
    throw e;
  } finally {
    timers.clearTimeout(timer);
  }
}
