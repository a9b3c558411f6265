/**
 * Per-consumer FIFO queues served round-robin, one batch per consumer at a time.
 *
 * Why: Maestro's spec controller is a single FIFO worker, and a backlog of orphaned Delete events
 * starved every Create in production (maestro PR #562, anchors.md §1 item 7). Here every consumer
 * (cluster) has its own queue, the scheduler takes the next batch from the next consumer in turn,
 * and a consumer is never served by two workers at once, so events of one resource stay in order
 * while a backlog on one cluster cannot delay another.
 */
export class ConsumerQueues<T> {
  private readonly queues = new Map<string, T[]>();
  /** Consumers with queued items and no batch in flight, in service order. */
  private readonly ready: string[] = [];
  private readonly readySet = new Set<string>();
  private readonly busy = new Set<string>();
  private count = 0;

  /** Items queued (not counting batches in flight). */
  get size(): number {
    return this.count;
  }

  /** Queues an item at the end of its consumer's queue. */
  push(consumer: string, item: T): void {
    this.queueOf(consumer).push(item);
    this.count++;
    this.markReady(consumer);
  }

  /** Puts a batch that could not be handled back at the head of its consumer's queue. */
  requeue(consumer: string, items: readonly T[]): void {
    if (items.length === 0) return;
    this.queueOf(consumer).unshift(...items);
    this.count += items.length;
    this.markReady(consumer);
  }

  /**
   * The next consumer's oldest items (at most `max`); that consumer is busy until {@link done}.
   * `undefined` when every consumer with items is busy or nothing is queued.
   */
  take(max: number): { consumer: string; items: T[] } | undefined {
    const consumer = this.ready.shift();
    if (consumer === undefined) return undefined;
    this.readySet.delete(consumer);
    const queue = this.queues.get(consumer) ?? [];
    const items = queue.splice(0, max);
    if (queue.length === 0) this.queues.delete(consumer);
    this.count -= items.length;
    this.busy.add(consumer);
    return { consumer, items };
  }

  /** Ends the consumer's batch: it goes to the back of the line if it has more items. */
  done(consumer: string): void {
    this.busy.delete(consumer);
    this.markReady(consumer);
  }

  /** Drops everything queued (batches in flight finish on their own). */
  clear(): void {
    this.queues.clear();
    this.ready.length = 0;
    this.readySet.clear();
    this.count = 0;
  }

  private queueOf(consumer: string): T[] {
    let queue = this.queues.get(consumer);
    if (queue === undefined) this.queues.set(consumer, (queue = []));
    return queue;
  }

  private markReady(consumer: string): void {
    if (this.busy.has(consumer) || this.readySet.has(consumer) || (this.queues.get(consumer)?.length ?? 0) === 0) return;
    this.ready.push(consumer);
    this.readySet.add(consumer);
  }
}
