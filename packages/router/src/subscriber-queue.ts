import type { PbCloudEvent } from "@ocm-conductor/protocol";

/**
 * The bounded queue between the broker and one Subscribe stream.
 *
 * Producers never wait: {@link offer} refuses when the queue is full and the broker then ends the
 * stream (the agent reconnects and resyncs, protocol.md gotcha 26). Heartbeats do not take a slot:
 * at most one is pending, and it is delivered before queued events so a busy stream still shows
 * the agent that the server is alive.
 */
export class SubscriberQueue {
  private items: PbCloudEvent[] = [];
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

  /** Queues an event; false when the queue is full or closed. */
  offer(message: PbCloudEvent): boolean {
    if (this.ended || this.size >= this.capacity) return false;
    this.items.push(message);
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
    this.head++;
    // Compact once the consumed prefix dominates, keeping take() amortised O(1).
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
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
