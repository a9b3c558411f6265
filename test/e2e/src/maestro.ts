/**
 * The test plays Maestro: it writes Maestro's PostgreSQL as Maestro's `ResourceService` does
 * (shared/reference/maestro-db.md §3): the `resources` write, the `events` row, then
 * `pg_notify('events', <event id>)`, each its own autocommit; the consumer row exists first (§7).
 */
import { randomUUID } from "node:crypto";
import postgres, { type Sql } from "postgres";

export const MANIFEST_BUNDLES = "io.open-cluster-management.works.v1alpha1.manifestbundles";
/** `resources.source`: the name of the Maestro source client that published the resource. */
export const SOURCE_CLIENT = "e2e-source-client";

export function connect(url: string): Sql {
  return postgres(url, { max: 4, onnotice: () => {} });
}

/** The CloudEvent (JSON format) Maestro stores in `resources.payload` for a create (§3.6). */
function createPayload(id: string, cluster: string): Record<string, unknown> {
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
      manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${id.slice(0, 8)}`, namespace: "default" }, data: { from: "maestro" } }],
      deleteOption: { propagationPolicy: "Foreground" },
    },
  };
}

export class Maestro {
  constructor(readonly sql: Sql) {}

  /** A consumer row as `POST /consumers` writes it; nothing when the name exists. */
  async ensureConsumer(name: string): Promise<void> {
    await this.sql`insert into consumers (id, created_at, updated_at, deleted_at, name, labels)
      values (${randomUUID()}, now(), now(), null, ${name}, null) on conflict (name) do nothing`;
  }

  /** `ResourceService.Create` (§3.1). Returns the resource id. */
  async create(cluster: string, id: string = randomUUID()): Promise<string> {
    const payload = createPayload(id, cluster);
    await this.sql`insert into resources (id, created_at, updated_at, deleted_at, version, source, consumer_name, type, payload, status, name)
      values (${id}, now(), now(), null, 1, ${SOURCE_CLIENT}, ${cluster}, '', ${this.sql.json(payload as never)}, 'null'::jsonb, ${id})`;
    await this.event(id, "Create");
    return id;
  }

  /** `ResourceService.MarkAsDeleting` (§3.4): soft delete, then a `Delete` event. */
  async markDeleting(id: string): Promise<void> {
    await this.sql`update resources set deleted_at = now() where id = ${id} and deleted_at is null`;
    await this.event(id, "Delete");
  }

  private async event(resourceId: string, type: "Create" | "Update" | "Delete"): Promise<void> {
    const eventId = randomUUID();
    await this.sql`insert into events (id, created_at, updated_at, deleted_at, source, source_id, event_type, reconciled_date)
      values (${eventId}, now(), now(), null, 'Resources', ${resourceId}, ${type}, null)`;
    await this.sql`select pg_notify('events', ${eventId})`;
  }

  /** The resource row (`status` as stored), or undefined after the hard delete. */
  async resource(id: string): Promise<{ version: number; status: Record<string, unknown> | null; deleted: boolean } | undefined> {
    const [row] = await this.sql<Array<{ version: string; status: Record<string, unknown> | null; deleted_at: Date | null }>>`
      select version, status, deleted_at from resources where id = ${id}`;
    return row && { version: Number(row.version), status: row.status, deleted: row.deleted_at !== null };
  }

  /** `status_events` rows of a resource with the given type. */
  async statusEvents(id: string, type: "StatusUpdate" | "StatusDelete"): Promise<Array<{ id: string; resource_source: string }>> {
    return this.sql<Array<{ id: string; resource_source: string }>>`
      select id, resource_source from status_events where resource_id = ${id} and status_event_type = ${type} order by created_at`;
  }

  /** How many `events` rows of the resource are not reconciled yet (spec not delivered). */
  async unreconciledEvents(resourceId: string): Promise<number> {
    const [row] = await this.sql<Array<{ n: string }>>`
      select count(*) as n from events where source_id = ${resourceId} and reconciled_date is null`;
    return Number(row?.n ?? 0);
  }

  /** Whether `consumers` has a live row named `name`. */
  async hasConsumer(name: string): Promise<boolean> {
    return (await this.sql`select 1 from consumers where name = ${name} and deleted_at is null`).length > 0;
  }
}
