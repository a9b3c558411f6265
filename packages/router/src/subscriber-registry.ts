import type { SubscriberQueue } from "./subscriber-queue.js";

/** One Subscribe stream: what it asked for and where its events go. */
export interface Subscriber {
  /** The `subscription-id` sent to the agent. */
  readonly id: string;
  readonly clusterName: string;
  readonly dataType: string;
  readonly queue: SubscriberQueue;
  /** When the stream was registered (epoch ms). */
  readonly since: number;
  /** Resets the underlying HTTP/2 stream, when the transport can. */
  readonly reset: (() => void) | undefined;
}

/**
 * The live Subscribe streams, indexed by cluster name and data type so routing an event touches
 * only its own subscribers (the Go broker scans all of them under a lock, protocol.md §5.3).
 * Several streams may share a key; each receives every event for it.
 */
export class SubscriberRegistry {
  private readonly byCluster = new Map<string, Map<string, Set<Subscriber>>>();
  private readonly all = new Set<Subscriber>();

  /** Number of live streams. */
  get size(): number {
    return this.all.size;
  }

  add(subscriber: Subscriber): void {
    let byType = this.byCluster.get(subscriber.clusterName);
    if (byType === undefined) this.byCluster.set(subscriber.clusterName, (byType = new Map()));
    let set = byType.get(subscriber.dataType);
    if (set === undefined) byType.set(subscriber.dataType, (set = new Set()));
    set.add(subscriber);
    this.all.add(subscriber);
  }

  /** Removes a stream; true when it was registered. */
  remove(subscriber: Subscriber): boolean {
    if (!this.all.delete(subscriber)) return false;
    const byType = this.byCluster.get(subscriber.clusterName);
    const set = byType?.get(subscriber.dataType);
    set?.delete(subscriber);
    if (set !== undefined && set.size === 0) byType?.delete(subscriber.dataType);
    if (byType !== undefined && byType.size === 0) this.byCluster.delete(subscriber.clusterName);
    return true;
  }

  /** The streams subscribed to (cluster, data type), as a snapshot safe to mutate the registry over. */
  match(clusterName: string, dataType: string): Subscriber[] {
    const set = this.byCluster.get(clusterName)?.get(dataType);
    return set === undefined ? [] : [...set];
  }

  /** True when at least one stream is subscribed to (cluster, data type). */
  has(clusterName: string, dataType: string): boolean {
    return this.byCluster.get(clusterName)?.has(dataType) ?? false;
  }

  /** The cluster names with at least one stream (sdk-go's `Subscribers()`). */
  clusters(): string[] {
    return [...this.byCluster.keys()];
  }

  /** Every live stream. */
  subscribers(): IterableIterator<Subscriber> {
    return this.all.values();
  }
}
