import { Action } from "@ocm-conductor/protocol";
import { silentLogger, type Logger, type SpecEventSink } from "@ocm-conductor/router";
import type { Sql } from "postgres";
import { ConsumerQueues } from "./consumer-queues.js";
import { RecentIds } from "./recent-ids.js";
import { ResourceRowError, resourceToSpecEvent, type ResourceRow } from "./resource-codec.js";

/** Options of {@link SpecDelivery}. */
export interface SpecDeliveryOptions {
  sql: Sql;
  /** The broker's sink: every spec event goes there, i.e. to the agents connected to *this* replica. */
  sink: SpecEventSink;
  logger?: Logger;
  /** Periodic purge + catch-up. Default 10 min (Maestro: 10 h). */
  syncIntervalMs?: number;
  /** Consumers served at once. Default 4. */
  concurrency?: number;
  /** Events of one consumer handled in one batch (one resource read, one reconcile update). Default 100. */
  batchSize?: number;
  /** First retry delay of a batch whose handling failed; doubles up to 30 s. Default 50 ms. */
  retryBaseMs?: number;
  /**
   * How long reconciled events stay in `events` before the purge, so that a replica whose LISTEN
   * connection dropped can still find what the other replicas delivered meanwhile. Default 10 min.
   */
  retentionMs?: number;
}

const ACTIONS: Record<string, string> = { Create: Action.createRequest, Update: Action.updateRequest, Delete: Action.deleteRequest };
const CLASSIFY_BATCH = 1000;

interface QueuedEvent {
  id: string;
  resourceId: string;
  action: string;
}

interface EventRow {
  id: string;
  source: string | null;
  source_id: string | null;
  event_type: string | null;
  consumer_name: string | null;
}

/**
 * Delivers Maestro's spec events (`events` rows announced by `NOTIFY events`, maestro-db.md §4) to
 * the agents connected to this conductor replica.
 *
 * Every replica LISTENs and delivers every event to **its own** subscribers; `reconciled_date` is
 * set by whichever replica gets there first (a plain `UPDATE … WHERE reconciled_date IS NULL`).
 * The Go conductor instead lets the replica that wins `pg_try_advisory_xact_lock(hash(id),
 * hash('events'))` deliver, and the broker silently drops the event when that replica does not
 * hold the agent's stream (hub-services.md §3.2 note), so an agent on another replica waits for its
 * next resync. The events lock is therefore not taken: it would only serialise replicas that must
 * all deliver.
 *
 * Also better than the reference:
 * - per-consumer queues served round-robin in batches ({@link ConsumerQueues}): a backlog on one
 *   cluster, such as the orphaned deletes of maestro#562, cannot starve the others, and events of
 *   one resource stay in order; several events of one resource in a batch become one delivery of
 *   its current row;
 * - failures re-queue with back-off instead of waiting for the next periodic sync;
 * - purge + catch-up runs at start-up, every `syncIntervalMs` and after every LISTEN (re)connect.
 *   After a reconnect it re-reads the retention window (reconciled events included), so events
 *   another replica reconciled while this one was deaf still reach this replica's agents.
 *
 * Events of unknown source or type are left unreconciled, exactly as Maestro leaves them.
 */
export class SpecDelivery {
  private readonly options: Required<Omit<SpecDeliveryOptions, "logger">> & { logger: Logger };
  private readonly queues = new ConsumerQueues<QueuedEvent>();
  /** Event ids waiting for classification (their consumer is not known yet). */
  private readonly incoming = new Set<string>();
  /** Ids anywhere in the pipeline, so NOTIFY and a catch-up scan do not queue one event twice. */
  private readonly tracked = new Set<string>();
  private readonly delivered: RecentIds;
  private readonly timers = new Set<NodeJS.Timeout>();
  private classifying = false;
  /** Consecutive failures, for the retry back-off; reset by any success. */
  private failures = 0;
  private inFlight = 0;
  private stopped = false;
  private listens = 0;
  private listener: { unlisten(): Promise<void> } | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(options: SpecDeliveryOptions) {
    this.options = {
      syncIntervalMs: 10 * 60_000,
      concurrency: 4,
      batchSize: 100,
      retryBaseMs: 50,
      retentionMs: 10 * 60_000,
      logger: silentLogger,
      ...options,
    };
    // Remember a little longer than the window a catch-up scans.
    this.delivered = new RecentIds(this.options.retentionMs * 2);
  }

  /** Starts listening; resolves once LISTEN is active and the first catch-up has been queued. */
  async start(): Promise<void> {
    let first: Promise<void> | undefined;
    this.listener = await this.options.sql.listen(
      "events",
      (id) => this.enqueue(id),
      () => {
        // Runs on the first LISTEN and after every reconnect (maestro-db.md §10 item 7).
        const window = this.listens++ > 0;
        if (window) this.options.logger.info("LISTEN events re-established; catching up");
        first = this.sync({ window }).catch((err: unknown) => this.options.logger.warn("events catch-up failed", { error: String(err) }));
      },
    );
    await first;
    this.syncTimer = setInterval(
      () => void this.sync({ window: true }).catch((err: unknown) => this.options.logger.warn("events sync failed", { error: String(err) })),
      this.options.syncIntervalMs,
    );
    this.syncTimer.unref();
  }

  /**
   * Purges events reconciled longer than the retention ago, then queues every unreconciled event
   * and, with `window`, every event reconciled within the retention that this replica has not
   * delivered itself.
   */
  async sync({ window = false }: { window?: boolean } = {}): Promise<void> {
    const { sql, retentionMs } = this.options;
    const retention = retentionMs / 1000;
    await sql`delete from events where reconciled_date < now() - ${retention} * interval '1 second'`;
    const rows = (window
      ? await sql`select id from events where deleted_at is null and (reconciled_date is null or reconciled_date >= now() - ${retention} * interval '1 second') order by created_at`
      : await sql`select id from events where deleted_at is null and reconciled_date is null order by created_at`) as unknown as Array<{ id: string }>;
    for (const { id } of rows) this.enqueue(id);
  }

  /** Resolves when nothing is queued, in flight or waiting for a retry (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops listening and drops what is queued; unreconciled events are picked up by the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.syncTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queues.clear();
    this.incoming.clear();
    await this.listener?.unlisten();
  }

  private enqueue(id: string): void {
    if (this.stopped || id === "" || this.tracked.has(id) || this.delivered.has(id)) return;
    this.tracked.add(id);
    this.incoming.add(id);
    void this.classify();
  }

  /** Looks up the consumer of queued event ids, in batches, and files them under it. */
  private async classify(): Promise<void> {
    if (this.classifying) return;
    this.classifying = true;
    try {
      while (!this.stopped && this.incoming.size > 0) {
        const ids = [...this.incoming].slice(0, CLASSIFY_BATCH);
        for (const id of ids) this.incoming.delete(id);
        let rows: EventRow[];
        try {
          rows = (await this.options.sql`select e.id, e.source, e.source_id, e.event_type, r.consumer_name
            from events e left join resources r on r.id = e.source_id
            where e.id in ${this.options.sql(ids)} and e.deleted_at is null`) as unknown as EventRow[];
        } catch (err) {
          this.options.logger.warn("reading spec events failed; retrying", { error: String(err), events: ids.length });
          this.later(ids.length, () => ids.forEach((id) => this.incoming.add(id)));
          continue;
        }
        const found = new Set<string>();
        const orphans: string[] = [];
        for (const row of rows) {
          found.add(row.id);
          const action = ACTIONS[row.event_type ?? ""];
          if (row.source !== "Resources" || action === undefined || row.source_id === null) {
            this.options.logger.warn("spec event of unknown source or type; left unreconciled, as Maestro does", { id: row.id, source: row.source, type: row.event_type });
            this.tracked.delete(row.id);
          } else if (row.consumer_name === null) {
            orphans.push(row.id); // the resource is gone: nothing to deliver (maestro#562's orphaned deletes)
          } else {
            this.queues.push(row.consumer_name, { id: row.id, resourceId: row.source_id, action });
          }
        }
        for (const id of ids) if (!found.has(id)) this.tracked.delete(id); // purged or deleted meanwhile
        if (orphans.length > 0) this.run(() => this.reconcile(orphans), orphans.length, () => orphans.forEach((id) => this.incoming.add(id)));
        this.pump();
      }
    } finally {
      this.classifying = false;
      this.settle();
    }
  }

  private pump(): void {
    while (!this.stopped && this.inFlight < this.options.concurrency) {
      const batch = this.queues.take(this.options.batchSize);
      if (batch === undefined) return;
      this.run(
        () => this.deliver(batch.items),
        batch.items.length,
        () => this.queues.requeue(batch.consumer, batch.items),
        () => this.queues.done(batch.consumer),
      );
    }
  }

  /** Sends the current row of every resource in the batch once, then reconciles the batch's events. */
  private async deliver(items: QueuedEvent[]): Promise<void> {
    const { sql, sink, logger } = this.options;
    const latest = new Map<string, string>(); // resource id → action of its last event in the batch
    for (const item of items) {
      latest.delete(item.resourceId);
      latest.set(item.resourceId, item.action);
    }
    const rows = (await sql`select * from resources where id in ${sql([...latest.keys()])}`) as unknown as ResourceRow[];
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const [resourceId, action] of latest) {
      const row = byId.get(resourceId);
      if (row === undefined) continue; // hard-deleted meanwhile: the agent already confirmed the deletion
      try {
        sink.publish(resourceToSpecEvent(row, row.deleted_at === null ? action : Action.deleteRequest));
      } catch (err) {
        if (!(err instanceof ResourceRowError)) throw err;
        logger.error("resource cannot be sent to its agent; event reconciled", { resource: resourceId, error: err.message });
      }
    }
    await this.reconcile(items.map((i) => i.id));
  }

  /** Sets `reconciled_date` with a plain UPDATE (never gorm's upserting `Save`, §10 item 15). */
  private async reconcile(ids: string[]): Promise<void> {
    const { sql } = this.options;
    await sql`update events set updated_at = now(), reconciled_date = now() where id in ${sql(ids)} and deleted_at is null and reconciled_date is null`;
    this.delivered.add(ids);
    for (const id of ids) this.tracked.delete(id);
  }

  /** Runs one unit of work; on failure calls `requeue` after a back-off that grows with repeated failures. */
  private run(work: () => Promise<void>, size: number, requeue: () => void, finish: () => void = () => {}): void {
    this.inFlight++;
    work()
      .then(() => (this.failures = 0))
      .catch((err: unknown) => {
        this.options.logger.warn("spec delivery failed; retrying", { error: err instanceof Error ? err.message : String(err), events: size });
        this.later(size, requeue);
      })
      .finally(() => {
        this.inFlight--;
        finish();
        this.pump();
        this.settle();
      });
  }

  private later(size: number, requeue: () => void): void {
    if (this.stopped) return;
    const delay = Math.min(this.options.retryBaseMs * 2 ** this.failures++, 30_000);
    this.options.logger.debug("spec events re-queued", { events: size, delayMs: delay });
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.stopped) return;
      requeue();
      void this.classify();
      this.pump();
      this.settle();
    }, delay);
    timer.unref();
    this.timers.add(timer);
  }

  private isIdle(): boolean {
    return this.incoming.size === 0 && !this.classifying && this.queues.size === 0 && this.inFlight === 0 && this.timers.size === 0;
  }

  private settle(): void {
    if (this.isIdle()) this.idleWaiters.splice(0).forEach((w) => w());
  }
}
