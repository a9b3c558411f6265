import { silentLogger, type Logger } from "@ocm-conductor/router";
import type { Sql } from "postgres";
import { assertValidConsumerName, isValidConsumerName } from "./consumer-name.js";
import { ConsumerRepository } from "./consumer-repository.js";
import type { ConsumerStore } from "./consumer-store.js";
import { ConsumerControllerError } from "./errors.js";
import { FairQueue } from "./fair-queue.js";
import { MaestroRestConsumerStore, type MaestroRestConsumerStoreOptions } from "./maestro-rest-consumer-store.js";
import { joinDecision, type JoinDecision, type ManagedClusterLike } from "./managed-cluster.js";

/** Where ManagedCluster changes go; {@link ConsumerController} is one, and `watchManagedClusters` feeds one. */
export interface ManagedClusterSink {
  /** A cluster was added or changed (or re-announced by a resync). */
  upsert(cluster: ManagedClusterLike): void;
  /** The cluster named `name` is gone from the hub. */
  remove(name: string): void;
}

/** Options of {@link ConsumerController}; give `store`, `maestro` or `sql` (used in that order of precedence). */
export interface ConsumerControllerOptions {
  /** postgres.js client of Maestro's database; the controller writes through a {@link ConsumerRepository}. */
  sql?: Sql;
  /** Maestro's REST API (a Maestro URL is configured): the controller goes through a {@link MaestroRestConsumerStore}. */
  maestro?: MaestroRestConsumerStoreOptions;
  /** Another store (tests); takes precedence over `maestro` and `sql`. */
  store?: ConsumerStore;
  logger?: Logger;
  /**
   * First retry delay after a failure (database, Maestro) or a consumer kept for its resources;
   * doubles per consecutive attempt. Default 5 s (as the Go conductor).
   */
  initialBackoffMs?: number;
  /** Upper bound of the retry delay. Default 300 s. */
  maxBackoffMs?: number;
  /** Clusters reconciled at the same time. Default 2. */
  concurrency?: number;
  /** Told the result of every reconcile (metrics, tests). Exceptions it throws are logged and ignored. */
  onSync?: (result: SyncResult) => void;
}

/**
 * The result of reconciling one cluster name:
 * - `created` / `exists`: the joined cluster has its consumer;
 * - `skipped`: a present cluster that is deleting or not joined (nothing done);
 * - `deleted` / `absent`: the cluster is gone and so is its consumer (deleted now, or there was none);
 * - `kept`: the cluster is gone, but resources still reference its consumer, so it stays; retried
 *   after `retryInMs` (resources are hard-deleted once their agents confirm deletion);
 * - `failed`: an error; retried after `retryInMs` unless the code is not retryable.
 */
export type SyncResult =
  | { readonly name: string; readonly outcome: "created" | "exists" | "deleted"; readonly consumerId: string }
  | { readonly name: string; readonly outcome: "absent" }
  | { readonly name: string; readonly outcome: "skipped"; readonly reason: Extract<JoinDecision, { action: "skip" }>["reason"] }
  | {
      readonly name: string; readonly outcome: "kept"; readonly reason: "has-resources"; readonly consumerId: string;
      /** Resources referencing the consumer, `null` if unknown (REST mode). */
      readonly resources: number | null; readonly retryInMs?: number;
    }
  | { readonly name: string; readonly outcome: "failed"; readonly error: ConsumerControllerError; readonly retryInMs?: number };

/**
 * Ensures every joined ManagedCluster has a Maestro consumer named after it (hub-services.md §3.3),
 * and deletes the consumer of a cluster that is gone:
 * - a present cluster that is deleting or not `ManagedClusterJoined=True` is skipped; for the rest a
 *   consumer is created unless one exists. Consumers are never updated or renamed (maestro-db.md §8.4);
 * - {@link remove} (the ManagedCluster object is gone) deletes the consumer, as Maestro's
 *   `ConsumerService.Delete` would (a hard delete), unless resources still reference it: then it is
 *   `kept`, a warning is logged, and the delete is retried with back-off until the resources are
 *   gone (or the cluster comes back). A cluster that is only *deleting* keeps its consumer: its
 *   ManifestWorks are still being cleaned up through it.
 *
 * Work is queued per cluster name (one reconcile per name at a time; a change that arrives during a
 * reconcile runs it again afterwards, with the latest state), fairly between deliveries (see
 * {@link FairQueue}). Failures are retried per name with exponential back-off (5 s → 300 s by
 * default); an invalid name or a soft-deleted consumer is reported once and not retried until the
 * cluster changes or is re-announced. No cluster's failures or back-off delay another cluster.
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
  /** Names of removed clusters whose consumer is not deleted yet. */
  private readonly removed = new Set<string>();
  /** Names waiting to be reconciled. */
  private readonly queue = new FairQueue();
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
    const store = options.store ?? (options.maestro !== undefined ? new MaestroRestConsumerStore(options.maestro)
      : options.sql !== undefined ? new ConsumerRepository(options.sql) : undefined);
    if (store === undefined) throw new Error("ConsumerController needs `sql`, `maestro` or `store`");
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
    this.removed.delete(name);
    this.enqueue(name);
  }

  /**
   * The cluster is gone: forgets it, cancels its retries and deletes its consumer unless resources
   * reference it (then the delete is retried with back-off until they are gone, or until the cluster
   * is upserted again).
   */
  remove(name: string): void {
    if (this.stopped) return;
    this.clusters.delete(name);
    this.removed.add(name);
    this.failures.delete(name);
    this.enqueue(name); // supersedes a queued ensure
  }

  /** Resolves once nothing is queued or running (pending retries do not count). */
  whenIdle(): Promise<void> {
    if (this.queue.size === 0 && this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Names waiting for a retry (after a failure, or a consumer kept for its resources), with their consecutive attempt counts. */
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
      const name = this.queue.take((n) => !this.processing.has(n));
      if (name === undefined) break;
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

  /** One reconcile of `name` against its latest known state. Never throws. */
  private async reconcile(name: string): Promise<SyncResult> {
    try {
      if (!this.clusters.has(name) && this.removed.has(name)) {
        // Maestro refuses such names, so no consumer can carry one: nothing to look up.
        if (!isValidConsumerName(name)) return { name, outcome: "absent" };
        const result = await this.store.deleteConsumer(name);
        return { name, ...result };
      }
      const decision = joinDecision(this.clusters.get(name));
      if (decision.action === "skip") return { name, outcome: "skipped", reason: decision.reason };
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
    const again = (result.outcome === "failed" && result.error.retryable) || result.outcome === "kept";
    if (again && !this.stopped && (this.clusters.has(name) || this.removed.has(name))) {
      const failures = (this.failures.get(name) ?? 0) + 1;
      this.failures.set(name, failures);
      const retryInMs = Math.min(this.initialBackoffMs * 2 ** Math.min(failures - 1, 30), this.maxBackoffMs);
      if (!this.dirty.has(name)) this.scheduleRetry(name, retryInMs);
      reported = { ...result, retryInMs };
      if (result.outcome === "kept") {
        this.logger.warn("consumer of a deleted cluster kept: resources still reference it; retrying the delete",
          { cluster: name, consumerId: result.consumerId, resources: result.resources, retryInMs, attempts: failures });
      } else if (result.outcome === "failed") {
        this.logger.warn("consumer reconcile failed; retrying", { cluster: name, code: result.error.code, error: result.error.message, retryInMs, failures });
      }
    } else {
      this.failures.delete(name);
      if (result.outcome === "deleted" || result.outcome === "absent") this.removed.delete(name);
      if (result.outcome === "failed") {
        this.logger.error("consumer not reconciled", { cluster: name, code: result.error.code, error: result.error.message });
      } else if (result.outcome === "created" || result.outcome === "deleted") {
        this.logger.info(`consumer ${result.outcome}`, { cluster: name, consumerId: result.consumerId });
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
      this.queue.add(name, { retry: true });
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
