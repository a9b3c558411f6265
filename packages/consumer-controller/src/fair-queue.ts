/**
 * The controller's queue of cluster names, fair between deliveries so one large delivery cannot hold
 * up a cluster that arrives later ("never blocks other clusters").
 *
 * Names added in the same turn of the event loop form one group: the informer's initial list or a
 * resync of 1,000 clusters is one group, a single watch event its own. Names added with
 * `{ retry: true }` (back-off timers firing) all share one standing group, so many retries after a
 * database outage count as one delivery too. {@link take} serves the groups round-robin, each in
 * arrival order: a cluster that joins during a burst of 1,000 is served after at most one more name
 * of the burst, not after all of it.
 *
 * A name is queued at most once (adding it again keeps its place).
 */
export class FairQueue {
  /** Groups with queued names, in rotation order. */
  private readonly groups: Array<Set<string>> = [];
  /** The group of the current turn, closed by a `setImmediate`. */
  private open: Set<string> | undefined;
  /** The standing group of retries. */
  private readonly retries = new Set<string>();
  private readonly groupOf = new Map<string, Set<string>>();
  /** Index into {@link groups} of the group served next. */
  private cursor = 0;

  /** Number of queued names. */
  get size(): number {
    return this.groupOf.size;
  }

  /** True if `name` is queued. */
  has(name: string): boolean {
    return this.groupOf.has(name);
  }

  /** Queues `name` (a no-op if it is queued already). */
  add(name: string, options: { retry?: boolean } = {}): void {
    if (this.groupOf.has(name)) return;
    const group = options.retry === true ? this.retries : this.openGroup();
    if (!this.groups.includes(group)) this.groups.push(group);
    group.add(name);
    this.groupOf.set(name, group);
  }

  /** Removes `name` if queued. */
  delete(name: string): void {
    this.groupOf.get(name)?.delete(name);
    this.groupOf.delete(name);
  }

  /** Removes everything. */
  clear(): void {
    for (const group of this.groups) group.clear();
    this.groups.length = 0;
    this.groupOf.clear();
    this.cursor = 0;
  }

  /**
   * Removes and returns the next name for which `eligible` is true, taking the groups in turn
   * (the first eligible name of the next group that has one), or `undefined`.
   */
  take(eligible: (name: string) => boolean = () => true): string | undefined {
    this.dropEmptyGroups();
    for (let tried = 0; tried < this.groups.length; tried++) {
      const index = (this.cursor + tried) % this.groups.length;
      const group = this.groups[index] as Set<string>;
      for (const name of group) {
        if (!eligible(name)) continue;
        this.delete(name);
        this.cursor = index + 1;
        return name;
      }
    }
    return undefined;
  }

  private openGroup(): Set<string> {
    if (this.open === undefined) {
      const group = new Set<string>();
      this.open = group;
      setImmediate(() => {
        if (this.open === group) this.open = undefined;
      }).unref();
    }
    return this.open;
  }

  private dropEmptyGroups(): void {
    for (let i = this.groups.length - 1; i >= 0; i--) {
      const group = this.groups[i] as Set<string>;
      if (group.size > 0 || group === this.open) continue;
      this.groups.splice(i, 1);
      if (i < this.cursor) this.cursor--;
    }
    if (this.cursor >= this.groups.length) this.cursor = 0;
  }
}
