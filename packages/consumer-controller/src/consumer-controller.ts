import { silentLogger, type Logger } from "@ocm-conductor/router";
import type { Sql } from "postgres";
import { assertValidConsumerName } from "./consumer-name.js";
import { ConsumerRepository, type ConsumerStore } from "./consumer-repository.js";
import { ConsumerControllerError } from "./errors.js";
import { joinDecision, type JoinDecision, type ManagedClusterLike } from "./managed-cluster.js";

/** Where ManagedCluster changes go; {@link ConsumerController} is one, and `watchManagedClusters` feeds one. */
export interface ManagedClusterSink {
  /** A cluster was added or changed (or re-announced by a resync). */
  upsert(cluster: ManagedClusterLike): void;
  /** The cluster named `name` is gone from the hub. */
  remove(name: string): void;
}

/** Options of {@link ConsumerController}; give `sql` or `store`. */
export interface ConsumerControllerOptions {
  /** postgres.js client of Maestro's database; the controller writes through a {@link ConsumerRepository}. */
  sql?: Sql;
  /** Another store (tests); takes precedence over `sql`. */
  store?: ConsumerStore;
  logger?: Logger;
  /** First retry delay after a database failure; doubles per consecutive failure. Default 5 s (as the Go conductor). */
  initialBackoffMs?: number;
  /** Upper bound of the retry delay. Default 300 s. */
  maxBackoffMs?: number;
  /** Clusters reconciled at the same time. Default 2. */
  concurrency?: number;
  /** Told the result of every reconcile (metrics, tests). Exceptions it throws are logged and ignored. */
  onSync?: (result: SyncResult) => void;
}

/** The result of reconciling one cluster name. */
export type SyncResult =
  | { readonly name: string; readonly outcome: "created" | "exists"; readonly consumerId: string }
  | { readonly name: string; readonly outcome: "skipped"; readonly reason: Extract<JoinDecision, { action: "skip" }>["reason"] }
  | { readonly name: string; readonly outcome: "failed"; readonly error: ConsumerControllerError; readonly retryInMs?: number };

/**
 * Ensures every joined ManagedCluster has a Maestro consumer named after it (hub-services.md §3.3):
 * clusters that are missing, deleting or not `ManagedClusterJoined=True` are skipped; for the rest
 * a consumer row is created unless one exists. Consumers are never updated, renamed or deleted
 * (maestro-db.md §8.4), so removing a cluster only cancels its pending work.
 *
 * Work is queued per cluster name (one reconcile per name at a time; a change that arrives during a
 * reconcile runs it again afterwards, with the latest state). Database failures are retried per
 * name with exponential back-off (5 s → 300 s by default); an invalid name or a soft-deleted
 * consumer is reported once and not retried until the cluster changes or is re-announced.
 */
export class ConsumerController implements ManagedClusterSink {
  private readonly store: ConsumerStore;
  private readonly logger: Logger;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly concurrency: number;
  private readonly onSync: ((result: SyncResult) => void) | undefined;
  /** The latest state of each known cluster. */
  private readonly clusters = new Map<string, ManagedClusterLike>();
  /** Names waiting to be reconciled, in arrival order. */
  private readonly queue = new Set<string>();
  /** Names being reconciled now. */
  private readonly processing = new Set<string>();
  /** Names that changed while being reconciled (run again afterwards). */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<void>>();
  private idleWaiters: Array<() => void> = [];
  private stopped = false;

  /** @throws Error if neither `sql` nor `store` is given. */
  constructor(options: ConsumerControllerOptions) {
    const store = options.store ?? (options.sql === undefined ? undefined : new ConsumerRepository(options.sql));
    if (store === undefined) throw new Error("ConsumerController needs `sql` or `store`");
    this.store = store;
    this.logger = options.logger ?? silentLogger;
    this.initialBackoffMs = options.initialBackoffMs ?? 5_000;
    this.maxBackoffMs = options.maxBackoffMs ?? 300_000;
    this.concurrency = Math.max(1, options.concurrency ?? 2);
    this.onSync = options.onSync;
  }

  /** Records the cluster's latest state and queues it; a pending retry of that name runs now instead. */
  upsert(cluster: ManagedClusterLike): void {
    if (this.stopped) return;
    const name = cluster.metadata.name;
    this.clusters.set(name, cluster);
    this.enqueue(name);
  }

  /** Forgets the cluster and cancels its retries. Its consumer, if any, is kept (never deleted). */
  remove(name: string): void {
    if (this.stopped) return;
    this.clusters.delete(name);
    this.failures.delete(name);
    this.enqueue(name); // reconciles to "skipped: missing", and supersedes a queued ensure
  }

  /** Resolves once nothing is queued or running (pending retries do not count). */
  whenIdle(): Promise<void> {
    if (this.queue.size === 0 && this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Names waiting for a retry after a database failure, with their consecutive failure counts. */
  pendingRetries(): ReadonlyMap<string, number> {
    return new Map([...this.retryTimers.keys()].map((name) => [name, this.failures.get(name) ?? 0]));
  }

  /** Stops taking work, cancels retries and waits for running reconciles. Idempotent. Does not close `sql`. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.retryTimers.values()) clearTimeout(timer);
    this.retryTimers.clear();
    this.queue.clear();
    this.dirty.clear();
    await Promise.allSettled([...this.inFlight]);
    this.notifyIdle();
  }

  private enqueue(name: string): void {
    const timer = this.retryTimers.get(name);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.retryTimers.delete(name);
    }
    if (this.processing.has(name)) this.dirty.add(name);
    else this.queue.add(name);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.processing.size < this.concurrency) {
      const name = this.next();
      if (name === undefined) break;
      this.queue.delete(name);
      this.processing.add(name);
      const run = this.reconcile(name).then(
        (result) => this.finish(name, result),
        (err: unknown) => this.logger.error("consumer reconcile failed unexpectedly", { cluster: name, error: String(err) }),
      );
      this.inFlight.add(run);
      void run.finally(() => {
        this.inFlight.delete(run);
        this.processing.delete(name);
        if (this.dirty.delete(name) && !this.stopped) this.queue.add(name);
        this.pump();
        this.notifyIdle();
      });
    }
  }

  /** The first queued name not being reconciled already. */
  private next(): string | undefined {
    for (const name of this.queue) if (!this.processing.has(name)) return name;
    return undefined;
  }

  /** One reconcile of `name` against its latest known state. Never throws. */
  private async reconcile(name: string): Promise<SyncResult> {
    const decision = joinDecision(this.clusters.get(name));
    if (decision.action === "skip") return { name, outcome: "skipped", reason: decision.reason };
    try {
      assertValidConsumerName(decision.name);
      const { outcome, consumer } = await this.store.ensureConsumer(decision.name);
      return { name, outcome, consumerId: consumer.id };
    } catch (err) {
      const error = err instanceof ConsumerControllerError ? err : new ConsumerControllerError("database-error", String(err), { cause: err });
      return { name, outcome: "failed", error };
    }
  }

  private finish(name: string, result: SyncResult): void {
    let reported = result;
    if (result.outcome === "failed" && result.error.retryable && !this.stopped && this.clusters.has(name)) {
      const failures = (this.failures.get(name) ?? 0) + 1;
      this.failures.set(name, failures);
      const retryInMs = Math.min(this.initialBackoffMs * 2 ** Math.min(failures - 1, 30), this.maxBackoffMs);
      if (!this.dirty.has(name)) this.scheduleRetry(name, retryInMs);
      reported = { ...result, retryInMs };
      this.logger.warn("consumer reconcile failed; retrying", { cluster: name, code: result.error.code, error: result.error.message, retryInMs, failures });
    } else {
      this.failures.delete(name);
      if (result.outcome === "failed") {
        this.logger.error("consumer not created", { cluster: name, code: result.error.code, error: result.error.message });
      } else if (result.outcome === "created") {
        this.logger.info("consumer created", { cluster: name, consumerId: result.consumerId });
      }
    }
    try {
      this.onSync?.(reported);
    } catch (err) {
      this.logger.error("onSync callback failed", { cluster: name, error: String(err) });
    }
  }

  private scheduleRetry(name: string, delayMs: number): void {
    const timer = setTimeout(() => {
      this.retryTimers.delete(name);
      if (this.stopped) return;
      this.queue.add(name);
      this.pump();
    }, delayMs);
    timer.unref();
    this.retryTimers.set(name, timer);
  }

  private notifyIdle(): void {
    if (this.queue.size > 0 || this.processing.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
