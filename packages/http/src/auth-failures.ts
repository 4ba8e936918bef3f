import { LRUCache } from 'lru-cache';

const WINDOW_MS = 60_000;

/**
 * Failed authentications per client address, AUTH_FAILURES_PER_MIN in a fixed one-minute window that
 * starts at an address's first failure. An address over its budget is refused (429) before its
 * credential costs a lookup, so guessing keys costs the guesser, not the database. Bounded: the least
 * recently failing addresses are forgotten first.
 */
export class AuthFailureThrottle {
  private readonly failures: LRUCache<string, { count: number }>;

  constructor(
    private readonly perMinute: number,
    maxAddresses = 10_000,
  ) {
    this.failures = new LRUCache({ max: maxAddresses, ttl: WINDOW_MS });
  }

  /** 0 while the address may try; otherwise the seconds until its window ends. */
  retryAfterSeconds(address: string): number {
    const entry = this.failures.get(address);
    if (!entry || entry.count < this.perMinute) return 0;
    return Math.max(1, Math.ceil(this.failures.getRemainingTTL(address) / 1000));
  }

  recordFailure(address: string): void {
    const entry = this.failures.get(address);
    // Counted in place: the window keeps the time of the first failure.
    if (entry) entry.count += 1;
    else this.failures.set(address, { count: 1 });
  }
}
