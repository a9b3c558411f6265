import type { PbCloudEvent } from "@ocm-conductor/protocol";

/**
 * The bounded queue between the broker and one Subscribe stream.
 *
 * Producers never wait: {@link offer} refuses when the queue is full and the broker then ends the
 * stream (the agent reconnects and resyncs, protocol.md gotcha 26). The capacity bounds *live*
 * events only: a resync answer is offered with `{ resync: true }` and never refused for its size —
 * it is as large as the cluster's list (already in memory), and refusing it would end the stream,
 * whose agent would ask for the same resync again, forever (a cluster with more resources than the
 * capacity could never resync). Live events behind it still count against the capacity, so an
 * agent that stops reading is still detected. Heartbeats do not take a slot:
 * at most one is pending, and it is delivered before queued events so a busy stream still shows
 * the agent that the server is alive.
 */
export class SubscriberQueue {
  private items: PbCloudEvent[] = [];
  /** Per queued item (same index as {@link items}): true for resync answers, which take no slot. */
  private resync: boolean[] = [];
  /** Queued live events: what {@link capacity} bounds. */
  private live = 0;
  private head = 0;
  private heartbeat: (() => PbCloudEvent) | undefined;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** Messages handed to the stream so far, heartbeats included. */
  sent = 0;
  /** When the last heartbeat was handed to the stream (epoch ms). */
  lastHeartbeatAt: number | undefined;

  constructor(readonly capacity: number) {}

  /** Events waiting to be sent. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** True while the consumer is parked in {@link next}, i.e. the stream is keeping up. */
  get consumerWaiting(): boolean {
    return this.wake !== undefined;
  }

  /**
   * Queues an event; false when the queue is closed, or full of live events. With `resync`, the
   * event is part of a resync answer and is queued regardless of the capacity.
   */
  offer(message: PbCloudEvent, options: { resync?: boolean } = {}): boolean {
    const resync = options.resync === true;
    if (this.ended || (!resync && this.live >= this.capacity)) return false;
    this.items.push(message);
    this.resync.push(resync);
    if (!resync) this.live++;
    this.notify();
    return true;
  }

  /** Marks a heartbeat as due; a heartbeat already pending is not duplicated. */
  offerHeartbeat(make: () => PbCloudEvent): void {
    if (this.ended) return;
    this.heartbeat = make;
    this.notify();
  }

  /** Ends the queue. With an error, the consumer's next {@link next} throws it. Idempotent. */
  close(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.items = [];
    this.resync = [];
    this.live = 0;
    this.head = 0;
    this.notify();
  }

  /** Waits for the next message; undefined once the queue is closed without error. */
  async next(): Promise<PbCloudEvent | undefined> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return undefined;
      const beat = this.heartbeat;
      if (beat !== undefined) {
        this.heartbeat = undefined;
        this.sent++;
        this.lastHeartbeatAt = Date.now();
        return beat();
      }
      if (this.size > 0) {
        this.sent++;
        return this.take();
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private take(): PbCloudEvent {
    const message = this.items[this.head] as PbCloudEvent;
    if (this.resync[this.head] !== true) this.live--;
    this.head++;
    // Compact once the consumed prefix dominates, keeping take() amortised O(1).
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.resync = this.resync.slice(this.head);
      this.head = 0;
    }
    return message;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
