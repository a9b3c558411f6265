/**
 * A small TTL cache with request coalescing for hub review results (TokenReview, SubjectAccessReview).
 *
 * - A value is served from the cache for `ttlMs` after the hub call that produced it *started*, so a
 *   cached decision is never older than the TTL, however long the call took.
 * - Concurrent lookups of one key share one in-flight hub call (coalescing).
 * - Failures (hub API errors) are never cached: every waiter of the failed call gets the error, and the
 *   next lookup calls the hub again.
 * - `ttlMs = 0` turns both caching and coalescing off: every lookup is its own hub call.
 * - At most `maxEntries` keys are kept; the oldest are dropped first.
 */
export class ReviewCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  private readonly pending = new Map<string, Promise<V>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isFinite(ttlMs) || ttlMs < 0) throw new RangeError(`cache TTL must be ≥ 0 ms, got ${ttlMs}`);
  }

  /** Number of cached (possibly expired) entries. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Returns the cached value of `key`, joins the call in flight for it, or starts `load()`.
   * `hit` is told whether the hub was spared (cached or joined).
   */
  async get(key: string, load: () => Promise<V>, hit?: (kind: "cached" | "joined") => void): Promise<V> {
    if (this.ttlMs === 0) return load();
    const cached = this.entries.get(key);
    if (cached !== undefined) {
      if (cached.expires > this.now()) {
        hit?.("cached");
        return cached.value;
      }
      this.entries.delete(key);
    }
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) {
      hit?.("joined");
      return inFlight;
    }
    const started = this.now();
    const call = (async () => {
      try {
        const value = await load();
        this.store(key, value, started + this.ttlMs);
        return value;
      } finally {
        this.pending.delete(key);
      }
    })();
    this.pending.set(key, call);
    return call;
  }

  /** Drops every cached entry (calls in flight still complete and are cached). */
  clear(): void {
    this.entries.clear();
  }

  private store(key: string, value: V, expires: number): void {
    if (expires <= this.now()) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expires });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }
}
