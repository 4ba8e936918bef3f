/** Retry timing shared by the push and subscribe clients. */

export interface BackoffOptions {
  baseDelayMs: number;
  maxDelayMs: number;
  /** A source of numbers in [0, 1); injectable so tests are deterministic. */
  random: () => number;
}

/**
 * "Full jitter" exponential backoff: a uniformly random delay in [0, min(max, base·2^attempt)], so a
 * fleet of clients that lost the same server does not come back in lockstep.
 */
export function backoffDelayMs(attempt: number, { baseDelayMs, maxDelayMs, random }: BackoffOptions): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, attempt));
  return Math.round(random() * ceiling);
}

/**
 * Parses a Retry-After header: delta-seconds or an HTTP date. Returns milliseconds to wait (never
 * negative), or undefined when the header is absent or unreadable.
 */
export function parseRetryAfterMs(
  header: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (header == null) return undefined;
  const value = header.trim();
  if (value === '') return undefined;
  if (/^[0-9]+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** A timer-based sleep that rejects when the signal aborts. */
export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
