/**
 * The `maestro` source wired into a broker: a postgres.js client on Maestro's database, the schema
 * ensured, `MaestroWorkBackend` serving manifestbundles (resync lists and statuses) and
 * `SpecDelivery` pushing spec changes from `LISTEN events`. Shared by `conductor serve`, the
 * interop tests and other hub components.
 */
import { MaestroWorkBackend, SchemaError, SpecDelivery, ensureSchema } from "@ocm-conductor/db-service";
import { DataTypes } from "@ocm-conductor/protocol";
import { silentLogger, type Broker, type Logger } from "@ocm-conductor/router";
import postgres, { type Sql } from "postgres";
import { describeDatabase, parseDatabaseUrl, type DatabaseConnection } from "./database-config.js";

/** Why the `maestro` source could not start: the database is unreachable or its schema is refused. */
export class MaestroSourceError extends Error {
  override readonly name = "MaestroSourceError";
  constructor(
    readonly code: "connect-failed" | "schema-refused",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options of {@link startMaestroSource}. */
export interface MaestroSourceOptions {
  /** The broker to serve manifestbundles on (the source registers its backend there). */
  broker: Broker;
  /** Maestro's database: connection fields, or a `postgres://` URL. */
  database: DatabaseConnection | string;
  logger?: Logger;
  /** Seconds a connection attempt may take before failing. Default 10. */
  connectTimeoutSeconds?: number;
  /** Pool size of the client (SpecDelivery adds one LISTEN connection). Default 20. */
  maxConnections?: number;
}

/** A started `maestro` source. */
export interface MaestroSource {
  /** The client the source uses (for diagnostics and tests; ended by {@link MaestroSource.stop}). */
  readonly sql: Sql;
  /** `created` when the schema was made on an empty database, `current` when it was already Maestro's. */
  readonly schema: "created" | "current";
  /** Stops spec delivery, then ends the client. Call after the gRPC server has stopped; idempotent. */
  stop(): Promise<void>;
}

/** The postgres.js client options for `c`: application name `ocm-conductor`, notices silenced, bounded connects. */
export function postgresOptions(c: DatabaseConnection, connectTimeoutSeconds = 10, max = 20): postgres.Options<Record<string, never>> {
  const ssl = c.sslmode === "disable" ? false
    : c.sslmode === "verify-full" ? ("verify-full" as const)
    : c.sslmode === "verify-ca" ? { checkServerIdentity: () => undefined } // CA checked, host name not (libpq verify-ca)
    : c.sslmode === "allow" ? ("prefer" as const) // postgres.js has no plain-first mode; both accept either
    : c.sslmode;
  return {
    // Arrays: postgres.js splits a host string on "," and ":", which would break IPv6 addresses.
    host: [c.host] as unknown as string,
    port: [c.port] as unknown as number,
    database: c.name,
    username: c.username,
    password: c.password,
    ssl,
    max,
    connect_timeout: connectTimeoutSeconds,
    onnotice: () => {},
    connection: { application_name: "ocm-conductor" },
  };
}

/**
 * Connects to Maestro's database, ensures its schema (created on an empty database, accepted when
 * Maestro migrated it, refused otherwise), registers the `maestro` backend for manifestbundles on
 * `broker` and starts spec delivery. On failure everything started is undone and a
 * {@link MaestroSourceError} says what to fix.
 */
export async function startMaestroSource(options: MaestroSourceOptions): Promise<MaestroSource> {
  const logger = options.logger ?? silentLogger;
  const connection = typeof options.database === "string" ? parseDatabaseUrl(options.database, "database URL") : options.database;
  const where = describeDatabase(connection);
  const sql = postgres(postgresOptions(connection, options.connectTimeoutSeconds ?? 10, options.maxConnections ?? 20));
  let delivery: SpecDelivery | undefined;
  try {
    await probe(sql, where, (options.connectTimeoutSeconds ?? 10) * 1000);
    let schema: "created" | "current";
    try {
      schema = await ensureSchema(sql);
    } catch (err) {
      if (err instanceof SchemaError) throw new MaestroSourceError("schema-refused", `database ${where} (${err.code}): ${err.message}`, { cause: err });
      throw err;
    }
    logger.info("maestro database ready", { database: where, schema });
    options.broker.registerBackend(DataTypes.manifestBundles, new MaestroWorkBackend({ sql, logger }));
    delivery = new SpecDelivery({ sql, sink: options.broker.sink, logger });
    await delivery.start();
    const started = delivery;
    let stopping: Promise<void> | undefined;
    return {
      sql,
      schema,
      stop: () =>
        (stopping ??= (async () => {
          await started.stop();
          await sql.end({ timeout: 5 });
        })()),
    };
  } catch (err) {
    await delivery?.stop().catch(() => undefined);
    await sql.end({ timeout: 0 }).catch(() => undefined);
    throw err;
  }
}

/**
 * `select 1`, bounded: postgres.js re-queues a query whose connection attempt timed out and tries
 * again forever, so an unreachable host would hang start-up without this deadline.
 */
async function probe(sql: Sql, where: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    await Promise.race([sql`select 1`, deadline]);
  } catch (err) {
    throw new MaestroSourceError("connect-failed", `cannot connect to ${where}: ${errorText(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}
