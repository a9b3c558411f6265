import { isDeepStrictEqual } from "node:util";
import {
  Action,
  CONDITION_DELETED,
  Extension,
  decodeManifestBundleStatus,
  parseEventType,
  stringExtension,
  type CloudEvent,
} from "@ocm-conductor/protocol";
import { BackendError, silentLogger, type Backend, type ListOptions, type Logger, type RequestContext, type SpecEventSink } from "@ocm-conductor/router";
import type { Sql } from "postgres";
import { randomUUID } from "node:crypto";
import { LockType, advisoryXactLock } from "./advisory-lock.js";
import { ResourceRowError, resourceToSpecEvent, statusEventToJson, type ResourceRow } from "./resource-codec.js";
import { isNewerSequenceId } from "./sequence-id.js";
import { SpecDelivery, type SpecDeliveryOptions } from "./spec-delivery.js";

/** Options of {@link MaestroWorkBackend}. */
export interface MaestroWorkBackendOptions {
  /** A postgres.js client on Maestro's database (schema ensured by `ensureSchema` or `maestro migration`). */
  sql: Sql;
  logger?: Logger;
  /** Tuning of the spec delivery {@link MaestroWorkBackend.start} runs. */
  delivery?: Omit<SpecDeliveryOptions, "sql" | "sink" | "logger">;
}

/**
 * The `maestro` source of manifestbundles over Maestro's database: resync lists a consumer's
 * resources, and agent statuses are written back exactly as Maestro's own status path does
 * (maestro-db.md §3.3, §5.1, §8.3): under the `resource_status` advisory lock, only when the
 * version matches and the sequence id is newer, then a `StatusUpdate` status event and
 * `NOTIFY status_events`; `Deleted=True` writes a `StatusDelete` event carrying payload and status,
 * then hard-deletes the row. Stale, duplicate and unknown statuses are dropped without error.
 * Spec changes reach agents through {@link SpecDelivery}: once the backend is attached to a sink
 * (registered with a broker or a backend service), {@link start} runs it on that sink.
 */
export class MaestroWorkBackend implements Backend {
  private readonly sql: Sql;
  private readonly logger: Logger;
  private readonly deliveryOptions: MaestroWorkBackendOptions["delivery"];
  private sink: SpecEventSink | undefined;
  private delivery: SpecDelivery | undefined;

  constructor(options: MaestroWorkBackendOptions) {
    this.sql = options.sql;
    this.logger = options.logger ?? silentLogger;
    this.deliveryOptions = options.delivery;
  }

  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }

  /** Starts spec delivery to the attached sink; resolves once LISTEN is active and the catch-up queued. */
  async start(): Promise<void> {
    if (this.sink === undefined) throw new Error("MaestroWorkBackend.start: attach it to a sink first (register it)");
    if (this.delivery !== undefined) return;
    const delivery = new SpecDelivery({ ...this.deliveryOptions, sql: this.sql, sink: this.sink, logger: this.logger });
    await delivery.start();
    this.delivery = delivery;
  }

  /** Stops spec delivery. */
  async stop(): Promise<void> {
    await this.delivery?.stop();
    this.delivery = undefined;
  }

  /** True while spec delivery runs (for readiness). */
  get ready(): boolean {
    return this.delivery !== undefined;
  }

  /** Every resource of the consumer, soft-deleted ones included (they go out as deletions), in one query. */
  async list({ clusterName }: ListOptions): Promise<CloudEvent[]> {
    const rows = (await this.sql`select * from resources where consumer_name = ${clusterName}`) as unknown as ResourceRow[];
    const events: CloudEvent[] = [];
    for (const row of rows) {
      try {
        events.push(resourceToSpecEvent(row, Action.updateRequest));
      } catch (err) {
        if (!(err instanceof ResourceRowError)) throw err;
        this.logger.warn("resource row cannot be sent; skipped", { id: row.id, error: err.message });
      }
    }
    return events;
  }

  /** A status for a resource that is not (or no longer) in the database: dropped, as Maestro does. */
  private unknown(id: string): undefined {
    this.logger.debug("status for an unknown resource; dropped", { id });
    return undefined;
  }

  async handle(event: CloudEvent, _context: RequestContext): Promise<void> {
    const type = parseEventType(event.type);
    if (type.subResource !== "status" || (type.action !== Action.updateRequest && type.action !== Action.resyncResponse)) {
      throw BackendError.of("BadRequest", `unsupported action ${type.subResource}.${type.action} for a maestro resource`);
    }
    const id = BackendError.badRequestOn("failed to get resource id", () => stringExtension(event, Extension.resourceId));
    const clusterName = BackendError.badRequestOn("failed to get cluster name", () => stringExtension(event, Extension.clusterName));
    const version = resourceVersionOf(event);
    const status = BackendError.badRequestOn("failed to unmarshal event data", () => decodeManifestBundleStatus(event));
    if (status.conditions?.some((c) => c.type === CONDITION_DELETED && c.status === "True")) {
      const [row] = (await this.sql`select * from resources where id = ${id}`) as unknown as ResourceRow[];
      if (row === undefined) return this.unknown(id);
      if (row.consumer_name !== clusterName) throw wrongCluster(id, clusterName);
      const stored = statusEventToJson(event, row.payload?.[Extension.metadata]);
      await this.sql.begin(async (tx) => {
        const statusEventId = randomUUID();
        await tx`insert into status_events (id, created_at, updated_at, resource_id, resource_source, resource_type, payload, status, status_event_type)
          values (${statusEventId}, now(), now(), ${id}, ${row.source ?? ""}, '', ${tx.json(row.payload as never)}, ${tx.json(stored as never)}, 'StatusDelete')`;
        await tx`select pg_notify('status_events', ${statusEventId})`;
        await tx`delete from resources where id = ${id}`;
      });
      return;
    }
    // Maestro's UpdateStatus under the `resource_status` lock. The row is read in the same
    // transaction, pipelined behind the lock (the server runs the select once the lock is granted),
    // and only the columns the check needs: `payload` stays in the database.
    const updated = await this.sql.begin(async (tx) => {
      const [, rows] = await Promise.all([
        advisoryXactLock(tx, id, LockType.ResourceStatus),
        tx`select consumer_name, version, status, payload -> 'metadata' as metadata from resources where id = ${id}`,
      ]);
      const found = rows[0] as (Pick<ResourceRow, "consumer_name" | "version" | "status"> & { metadata: unknown }) | undefined;
      if (found === undefined) return this.unknown(id);
      if (found.consumer_name !== clusterName) throw wrongCluster(id, clusterName);
      const sequenceId = BackendError.badRequestOn("failed to get status update sequence id", () => stringExtension(event, Extension.sequenceId));
      if (Number(found.version) !== version) return false; // stale: disregard
      const stored = statusEventToJson(event, found.metadata ?? undefined);
      if (isDeepStrictEqual(found.status, stored)) return false;
      const previous = found.status?.[Extension.sequenceId];
      try {
        if (!isNewerSequenceId(sequenceId, typeof previous === "string" ? previous : undefined)) return false;
      } catch (err) {
        throw BackendError.of("BadRequest", `status of resource ${id}: ${(err as Error).message}`);
      }
      await tx`update resources set updated_at = now(), status = ${tx.json(stored as never)} where id = ${id}`;
      return true;
    });
    if (updated !== true) return;
    // Written after the status and outside the lock, as Maestro does. Maestro sends the insert and
    // the NOTIFY as two statements of one transaction; one statement that does both is the same to
    // every observer (the NOTIFY is delivered at commit, when the row is visible) and saves three
    // round trips per status.
    await this.sql`with e as (
        insert into status_events (id, created_at, updated_at, resource_id, resource_source, resource_type, payload, status, status_event_type)
        values (${randomUUID()}, now(), now(), ${id}, '', '', 'null'::jsonb, 'null'::jsonb, 'StatusUpdate') returning id)
      select pg_notify('status_events', id) from e`;
  }
}

function wrongCluster(id: string, clusterName: string): BackendError {
  return BackendError.of("BadRequest", `resource ${id} does not belong to cluster ${clusterName}`);
}

/** `resourceversion` may be a number or a numeric string (maestro-db.md §3.6, §8.3 item 6). */
function resourceVersionOf(event: CloudEvent): number {
  const value = event.extensions[Extension.resourceVersion];
  const n = typeof value === "number" ? value : typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw BackendError.of("BadRequest", "failed to get resource version: missing or not an integer");
  return n;
}
