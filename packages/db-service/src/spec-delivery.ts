import { Action } from "@ocm-conductor/protocol";
import { silentLogger, type Logger, type SpecEventSink } from "@ocm-conductor/router";
import type { Sql, TransactionSql } from "postgres";
import { LockType, withTryAdvisoryLock } from "./advisory-lock.js";
import { ResourceRowError, resourceToSpecEvent, type ResourceRow } from "./resource-codec.js";

/** Options of {@link SpecDelivery}. */
export interface SpecDeliveryOptions {
  sql: Sql;
  /** The broker's sink: every spec event goes there (to the agents of its cluster). */
  sink: SpecEventSink;
  logger?: Logger;
  /** Periodic purge + re-queue of unreconciled events. Default 10 min (Maestro: 10 h). */
  syncIntervalMs?: number;
  /** Events handled at once. Default 8. */
  concurrency?: number;
  /** First retry delay of an event whose lock was busy or whose handling failed; doubles to 30 s. Default 50 ms. */
  retryBaseMs?: number;
}

const ACTIONS: Record<string, string> = { Create: Action.createRequest, Update: Action.updateRequest, Delete: Action.deleteRequest };

/**
 * Delivers Maestro's spec events to agents (maestro-db.md §4.2, §8.3): LISTEN on `events`; for each
 * event id, under `pg_try_advisory_xact_lock(hash(id), hash('events'))` so conductor replicas
 * exclude each other, read the unreconciled `Resources` event, send the resource's spec event to
 * the broker, and set `reconciled_date`.
 *
 * Better than the reference: a busy lock or a failure re-queues the event with back-off instead of
 * dropping it; the purge + re-queue sync runs at start-up, every `syncIntervalMs`, **and after every
 * LISTEN (re)connect**, so a NOTIFY missed while disconnected costs seconds, not up to 12.5 h.
 * Events of unknown source or type are left unreconciled, exactly as Maestro leaves them.
 */
export class SpecDelivery {
  private readonly options: Required<Omit<SpecDeliveryOptions, "logger">> & { logger: Logger };
  private readonly pending = new Set<string>();
  private readonly attempts = new Map<string, number>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private inFlight = 0;
  private stopped = false;
  private listener: { unlisten(): Promise<void> } | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(options: SpecDeliveryOptions) {
    this.options = { syncIntervalMs: 10 * 60_000, concurrency: 8, retryBaseMs: 50, logger: silentLogger, ...options };
  }

  /** Starts listening; resolves once LISTEN is active and the first catch-up has been queued. */
  async start(): Promise<void> {
    let first: Promise<void> | undefined;
    this.listener = await this.options.sql.listen(
      "events",
      (id) => this.enqueue(id),
      () => {
        // Runs on the first LISTEN and after every reconnect: catch up on NOTIFYs missed meanwhile.
        first = this.sync().catch((err: unknown) => this.options.logger.warn("events catch-up failed", { error: String(err) }));
      },
    );
    await first;
    this.syncTimer = setInterval(() => void this.sync().catch(() => {}), this.options.syncIntervalMs);
    this.syncTimer.unref();
  }

  /** Purges reconciled events and queues every unreconciled one (Maestro's `syncEvents`). */
  async sync(): Promise<void> {
    const { sql } = this.options;
    await sql`delete from events where reconciled_date is not null`;
    const rows = (await sql`select id from events where reconciled_date is null and deleted_at is null order by created_at`) as unknown as Array<{ id: string }>;
    for (const { id } of rows) this.enqueue(id);
  }

  /** Resolves when nothing is queued, in flight or waiting for a retry (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.syncTimer);
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    this.pending.clear();
    await this.listener?.unlisten();
  }

  private enqueue(id: string): void {
    if (this.stopped || id === "") return;
    this.pending.add(id);
    this.pump();
  }

  private pump(): void {
    while (!this.stopped && this.inFlight < this.options.concurrency && this.pending.size > 0) {
      const id = this.pending.values().next().value as string;
      this.pending.delete(id);
      this.inFlight++;
      void this.process(id).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.isIdle()) this.idleWaiters.splice(0).forEach((w) => w());
      });
    }
  }

  private async process(id: string): Promise<void> {
    try {
      const outcome = await withTryAdvisoryLock(this.options.sql, id, LockType.Events, (tx) => this.deliver(tx, id));
      if (!outcome.acquired) this.retry(id, "lock busy");
      else this.attempts.delete(id);
    } catch (err) {
      this.retry(id, err instanceof Error ? err.message : String(err));
    }
  }

  private async deliver(tx: TransactionSql, id: string): Promise<void> {
    const [event] = (await tx`select source, source_id, event_type, reconciled_date from events where id = ${id} and deleted_at is null`) as unknown as
      Array<{ source: string | null; source_id: string | null; event_type: string | null; reconciled_date: Date | null }>;
    if (event === undefined || event.reconciled_date !== null) return;
    const action = ACTIONS[event.event_type ?? ""];
    if (event.source !== "Resources" || action === undefined) {
      this.options.logger.warn("spec event of unknown source or type; left unreconciled, as Maestro does", { id, source: event.source, type: event.event_type });
      return;
    }
    const [resource] = (await tx`select * from resources where id = ${event.source_id}`) as unknown as ResourceRow[];
    if (resource !== undefined) {
      try {
        this.options.sink.publish(resourceToSpecEvent(resource, action));
      } catch (err) {
        if (!(err instanceof ResourceRowError)) throw err;
        this.options.logger.error("resource cannot be sent to its agent; event reconciled", { id, resource: resource.id, error: err.message });
      }
    }
    await tx`update events set updated_at = now(), reconciled_date = now() where id = ${id} and deleted_at is null`;
  }

  private retry(id: string, why: string): void {
    if (this.stopped) return;
    const attempt = (this.attempts.get(id) ?? 0) + 1;
    this.attempts.set(id, attempt);
    const delay = Math.min(this.options.retryBaseMs * 2 ** (attempt - 1), 30_000);
    this.options.logger.debug("spec event re-queued", { id, why, attempt, delayMs: delay });
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      this.enqueue(id);
    }, delay);
    timer.unref();
    this.retryTimers.add(timer);
  }

  private isIdle(): boolean {
    return this.pending.size === 0 && this.inFlight === 0 && this.retryTimers.size === 0;
  }
}
