/**
 * The drills play Maestro: they write Maestro's PostgreSQL as Maestro's `ResourceService` does
 * (shared/reference/maestro-db.md §3): the `resources` write, the `events` row, then
 * `pg_notify('events', <event id>)`, each its own autocommit. Adapted from test/e2e/src/maestro.ts:
 * every write is retried until the database answers (a writer that outlives a PostgreSQL restart)
 * and is idempotent on retry.
 */
import { randomUUID } from "node:crypto";
import postgres, { type Sql } from "postgres";

export const MANIFEST_BUNDLES = "io.open-cluster-management.works.v1alpha1.manifestbundles";
export const SOURCE_CLIENT = "drill-source-client";

export function connect(url: string): Sql {
  return postgres(url, { max: 4, onnotice: () => {}, connect_timeout: 5, idle_timeout: 5 });
}

export function createPayload(id: string, cluster: string, pad = 0): Record<string, unknown> {
  return {
    specversion: "1.0",
    id: randomUUID(),
    source: SOURCE_CLIENT,
    type: `${MANIFEST_BUNDLES}.spec.create_request`,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    resourceid: id,
    resourceversion: 0,
    clustername: cluster,
    metadata: { uid: id, name: `maestro-${id.slice(0, 8)}`, namespace: cluster, resourceVersion: "0" },
    data: {
      manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${id.slice(0, 8)}`, namespace: "default" }, data: pad > 0 ? { from: "maestro", pad: "x".repeat(pad) } : { from: "maestro" } }],
      deleteOption: { propagationPolicy: "Foreground" },
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Maestro {
  /** Failed attempts that were retried (database down). */
  retries = 0;

  constructor(readonly sql: Sql, private readonly retryForMs = 60_000) {}

  /** Runs `op` until it succeeds or `retryForMs` has passed. */
  async retry<T>(op: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.retryForMs;
    for (;;) {
      try {
        return await op();
      } catch (err) {
        if (Date.now() > deadline) throw err;
        this.retries++;
        await sleep(100);
      }
    }
  }

  async ensureConsumer(name: string): Promise<void> {
    await this.retry(() => this.sql`insert into consumers (id, created_at, updated_at, deleted_at, name, labels)
      values (${randomUUID()}, now(), now(), null, ${name}, null) on conflict (name) do nothing`);
  }

  /** `ResourceService.Create` (§3.1), each statement retried. Returns the resource id. */
  async create(cluster: string, id: string = randomUUID(), pad = 0): Promise<string> {
    const payload = createPayload(id, cluster, pad);
    await this.retry(() => this.sql`insert into resources (id, created_at, updated_at, deleted_at, version, source, consumer_name, type, payload, status, name)
      values (${id}, now(), now(), null, 1, ${SOURCE_CLIENT}, ${cluster}, '', ${this.sql.json(payload as never)}, 'null'::jsonb, ${id})
      on conflict (id) do nothing`);
    await this.event(id, "Create");
    return id;
  }

  /** `ResourceService.MarkAsDeleting` (§3.4): soft delete, then a `Delete` event. */
  async markDeleting(id: string): Promise<void> {
    await this.retry(() => this.sql`update resources set deleted_at = now() where id = ${id} and deleted_at is null`);
    await this.event(id, "Delete");
  }

  async event(resourceId: string, type: "Create" | "Update" | "Delete"): Promise<void> {
    const eventId = randomUUID();
    await this.retry(() => this.sql`insert into events (id, created_at, updated_at, deleted_at, source, source_id, event_type, reconciled_date)
      values (${eventId}, now(), now(), null, 'Resources', ${resourceId}, ${type}, null) on conflict (id) do nothing`);
    await this.retry(() => this.sql`select pg_notify('events', ${eventId})`);
  }

  /** Live (not soft-deleted) resources of a consumer: id → version. */
  async liveResources(cluster: string): Promise<Map<string, number>> {
    const rows = await this.sql<Array<{ id: string; version: string }>>`
      select id, version from resources where consumer_name = ${cluster} and deleted_at is null`;
    return new Map(rows.map((r) => [r.id, Number(r.version)]));
  }

  /** Resources of the consumer whose status is not written for their current version, or have no StatusUpdate row. */
  async missingStatuses(cluster: string): Promise<string[]> {
    const rows = await this.sql<Array<{ id: string }>>`
      select r.id from resources r where r.consumer_name = ${cluster} and r.deleted_at is null and (
        r.status is null or r.status = 'null'::jsonb or (r.status->>'resourceversion') is distinct from r.version::text
        or not exists (select 1 from status_events s where s.resource_id = r.id and s.status_event_type = 'StatusUpdate'))`;
    return rows.map((r) => r.id);
  }

  /** Events of the consumer's resources not reconciled yet. */
  async unreconciled(cluster: string): Promise<number> {
    const [row] = await this.sql<Array<{ n: string }>>`
      select count(*) as n from events e join resources r on r.id = e.source_id
      where r.consumer_name = ${cluster} and e.reconciled_date is null and e.deleted_at is null`;
    return Number(row?.n ?? 0);
  }
}
