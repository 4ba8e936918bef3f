/**
 * A token bucket per key: `perMinute` requests a minute, refilled continuously, bursts up to the same
 * number. Buckets live in this process, so with N replicas behind a balancer a key gets up to N times
 * the limit; that bounds abuse without a shared store on the write path.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();
  private readonly refillPerMs: number;

  constructor(private readonly perMinute: number) {
    this.refillPerMs = perMinute / 60_000;
  }

  /**
   * 0 when a request costing `cost` (a gateway's coalesced connects count each) may proceed, otherwise
   * the seconds until it may. A cost above the burst is capped at it, so that it can ever pass.
   */
  take(key: string, now = Date.now(), cost = 1): number {
    const needed = Math.min(Math.max(1, cost), this.perMinute);
    const bucket = this.buckets.get(key) ?? { tokens: this.perMinute, updatedAt: now };
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + (now - bucket.updatedAt) * this.refillPerMs);
    bucket.updatedAt = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= needed) {
      bucket.tokens -= needed;
      return 0;
    }
    return Math.max(1, Math.ceil((needed - bucket.tokens) / this.refillPerMs / 1000));
  }

  /** Forgets full buckets, so that idle keys do not accumulate. */
  prune(now = Date.now()): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.updatedAt) * this.refillPerMs >= this.perMinute)
        this.buckets.delete(key);
    }
  }
}
