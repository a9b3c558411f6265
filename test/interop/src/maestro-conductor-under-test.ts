import { randomUUID } from "node:crypto";
import { defaultConfig, startGrpcServer, type RunningGrpcServer } from "@ocm-conductor/conductor";
import { MaestroWorkBackend, SpecDelivery, ensureSchema } from "@ocm-conductor/db-service";
import { DataTypes } from "@ocm-conductor/protocol";
import { Broker, type Logger } from "@ocm-conductor/router";
import postgres, { type Sql } from "postgres";

/** A warning or error the composed conductor logged (kept for failure messages). */
export interface LoggedLine {
  level: "warn" | "error";
  message: string;
  fields?: Record<string, unknown>;
}

/** Options of {@link MaestroConductorUnderTest.start}. */
export interface MaestroConductorOptions {
  /** URL of Maestro's database (a harness `createDatabase` URL). */
  url: string;
  /** Broker heartbeat period. Default 5 s. */
  heartbeatIntervalMs?: number;
  /** Pool size of the replica's postgres.js client (its LISTEN connection comes on top). Default 10. */
  poolMax?: number;
  /**
   * `application_name` of every connection of the replica, its LISTEN connection included, so a
   * test can find them in `pg_stat_activity`. Default `conductor`.
   */
  name?: string;
}

/**
 * One conductor replica on Maestro's database, composed as the app will compose it: a
 * {@link Broker} with a {@link MaestroWorkBackend} serving manifestbundles, a {@link SpecDelivery}
 * publishing into the broker's sink, and the real gRPC transport on a loopback port. Several
 * replicas may share one database; each has its own pool, LISTEN connection, broker and port.
 */
export class MaestroConductorUnderTest {
  /** Warnings and errors logged by the broker, backend and spec delivery. */
  readonly logged: LoggedLine[] = [];
  /** The `application_name` of the replica's connections. */
  readonly name: string;
  readonly sql: Sql;
  readonly broker: Broker;
  readonly backend: MaestroWorkBackend;
  readonly delivery: SpecDelivery;
  server!: RunningGrpcServer;

  private constructor(options: MaestroConductorOptions) {
    const logger: Logger = {
      debug() {},
      info() {},
      warn: (message, fields) => void this.logged.push({ level: "warn", message, fields }),
      error: (message, fields) => void this.logged.push({ level: "error", message, fields }),
    };
    this.name = options.name ?? "conductor";
    this.sql = postgres(options.url, { max: options.poolMax ?? 10, onnotice: () => {}, connection: { application_name: this.name } });
    this.broker = new Broker({ heartbeatIntervalMs: options.heartbeatIntervalMs ?? 5000, logger });
    this.backend = new MaestroWorkBackend({ sql: this.sql, logger });
    this.broker.registerBackend(DataTypes.manifestBundles, this.backend);
    this.delivery = new SpecDelivery({ sql: this.sql, sink: this.broker.sink, logger });
  }

  /**
   * Ensures Maestro's schema (db-service `ensureSchema`: created in an empty database, accepted in a
   * migrated one), starts spec delivery (LISTEN `events` + catch-up) and serves gRPC on a free port.
   */
  static async start(options: MaestroConductorOptions): Promise<MaestroConductorUnderTest> {
    const c = new MaestroConductorUnderTest(options);
    try {
      await ensureSchema(c.sql);
      await c.delivery.start();
      c.server = await startGrpcServer({ config: { ...defaultConfig().grpc, port: 0 }, broker: c.broker });
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /** `host:port` for agents. */
  get address(): string {
    return `127.0.0.1:${this.server.port}`;
  }

  /** Whether an agent of `cluster` has a live Subscribe stream on this replica. */
  isSubscribed(cluster: string): boolean {
    return this.broker.subscribedClusters().includes(cluster);
  }

  /** Stops serving, stops spec delivery and ends the replica's database clients. Idempotent. */
  async stop(): Promise<void> {
    await this.server?.close(1000);
    await this.delivery.stop().catch(() => undefined);
    await this.sql.end({ timeout: 1 });
  }
}

/** The source client name Maestro stores in `resources.source` (maestro-db.md §9 step 1). */
export const SOURCE_CLIENT = "mw-client-example";

/** The ManifestWork metadata a source sends, stored as an object in `payload.metadata` (maestro-db.md §3.6). */
export function workMetadata(id: string, cluster: string, labels: Record<string, string> = {}): Record<string, unknown> {
  return { uid: id, name: id, namespace: cluster, labels, resourceVersion: "0" };
}

/**
 * The `payload` Maestro stores for a source's create or update: the source's CloudEvent in JSON
 * format, `metadata` as an object, `data` a ManifestBundle of one ConfigMap (maestro-db.md §3.6, §9).
 */
export function maestroPayload(
  id: string,
  cluster: string,
  options: { action?: "create_request" | "update_request"; data?: Record<string, string>; labels?: Record<string, string> } = {},
): Record<string, unknown> {
  return {
    specversion: "1.0",
    id: randomUUID(),
    source: SOURCE_CLIENT,
    type: `${DataTypes.manifestBundles}.spec.${options.action ?? "create_request"}`,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    resourceid: id,
    resourceversion: 0, // as sent by the source, not the DB version (§3.6)
    clustername: cluster,
    metadata: workMetadata(id, cluster, options.labels),
    logtracing: "{}",
    originalsource: "",
    data: {
      manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${id}`, namespace: "default" }, data: options.data ?? { a: "b" } }],
      deleteOption: { propagationPolicy: "Foreground" },
    },
  };
}

/**
 * Writes the database exactly as Maestro's `ResourceService` does (maestro-db.md §3.1, §3.2, §3.4,
 * §4.1): each step is three independent autocommits — the `resources` write, the `events` row,
 * then `select pg_notify('events', <event id>)`. No advisory lock is taken here: Maestro's
 * `resources` lock only serialises Maestro's own writers.
 */
export class MaestroWriter {
  /** Server clock (`clock_timestamp()`) of each NOTIFY, by event id; used to find NOTIFYs sent while nobody listened. */
  readonly notifiedAt = new Map<string, Date>();

  constructor(readonly sql: Sql) {}

  /** A consumer row, as `POST /consumers` or the conductor's cluster controller writes it (§7, §9 step 0). */
  async createConsumer(name: string): Promise<void> {
    await this.sql`insert into consumers (id, created_at, updated_at, deleted_at, name, labels)
      values (${randomUUID()}, now(), now(), null, ${name}, null)`;
  }

  /** `ResourceService.Create`: version 1, status jsonb `null` (§3.1, gotcha 1). Returns the event id. */
  async create(id: string, cluster: string, payload = maestroPayload(id, cluster)): Promise<string> {
    await this.sql`insert into resources (id, created_at, updated_at, deleted_at, version, source, consumer_name, type, payload, status, name)
      values (${id}, now(), now(), null, 1, ${SOURCE_CLIENT}, ${cluster}, '', ${this.sql.json(payload as never)}, 'null'::jsonb, ${id})`;
    return this.event(id, "Create");
  }

  /** `ResourceService.Update`: version + 1 and the new payload, nothing else (§3.2 step 7). Returns the event id. */
  async update(id: string, payload: Record<string, unknown>): Promise<string> {
    await this.sql`update resources set updated_at = now(), version = version + 1, payload = ${this.sql.json(payload as never)} where id = ${id}`;
    return this.event(id, "Update");
  }

  /** `ResourceService.MarkAsDeleting`: soft delete, then a `Delete` event (§3.4). Returns the event id. */
  async markDeleting(id: string): Promise<string> {
    await this.sql`update resources set deleted_at = now() where id = ${id} and deleted_at is null`;
    return this.event(id, "Delete");
  }

  private async event(resourceId: string, type: "Create" | "Update" | "Delete"): Promise<string> {
    const eventId = randomUUID();
    await this.sql`insert into events (id, created_at, updated_at, deleted_at, source, source_id, event_type, reconciled_date)
      values (${eventId}, now(), now(), null, 'Resources', ${resourceId}, ${type}, null)`;
    // Maestro's statement is `select pg_notify('events', '<id>')` (§4.1); the extra column only
    // reads the server clock and does not change what is sent.
    const [row] = await this.sql<Array<{ at: Date }>>`select pg_notify('events', ${eventId}), clock_timestamp() as at`;
    this.notifiedAt.set(eventId, row!.at);
    return eventId;
  }
}

/** Collects the payloads of NOTIFYs on `status_events` on its own connection, as a Maestro replica would see them (§5.2). */
export async function listenStatusEvents(url: string): Promise<{ ids: string[]; end(): Promise<void> }> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const ids: string[] = [];
  await sql.listen("status_events", (id) => ids.push(id));
  return { ids, end: () => sql.end({ timeout: 1 }) };
}

const SNOWFLAKE_EPOCH_MS = 1288834974657n;
let snowflakeStep = 0;

/**
 * A bwmarrin/snowflake id of `node` (agents use node 1), as a decimal string: `time << 22 |
 * node << 12 | step` (maestro-db.md §3.3 step 6). Later calls give larger ids.
 */
export function snowflakeId(node = 1): string {
  snowflakeStep = (snowflakeStep + 1) & 0xfff;
  const ms = BigInt(Date.now()) - SNOWFLAKE_EPOCH_MS;
  return String((ms << 22n) | (BigInt(node) << 12n) | BigInt(snowflakeStep));
}
