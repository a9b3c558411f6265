/**
 * Ids seen in the last `ttlMs`, oldest first. SpecDelivery keeps the event ids this replica has
 * already delivered to its own agents, so a catch-up scan over the retention window re-delivers
 * only what this replica missed.
 */
export class RecentIds {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  has(id: string): boolean {
    return this.seen.has(id);
  }

  /** Records ids as seen now, forgetting those older than the time to live. */
  add(ids: Iterable<string>): void {
    const now = this.now();
    for (const id of ids) {
      this.seen.delete(id); // keep insertion order = age order
      this.seen.set(id, now);
    }
    this.prune(now);
  }

  private prune(now: number): void {
    for (const [id, at] of this.seen) {
      if (now - at <= this.ttlMs) return;
      this.seen.delete(id);
    }
  }
}
