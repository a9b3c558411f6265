/**
 * Maestro's database for the `maestro` source and the consumer controller: a postgres.js client
 * with bounded connects and the schema ensured. Shared by `conductor serve`, the tests and other
 * hub components.
 */
import { SchemaError, ensureSchema } from "@ocm-conductor/db-service";
import { silentLogger, type Logger } from "@ocm-conductor/router";
import postgres, { type Sql } from "postgres";
import { describeDatabase, parseDatabaseUrl, type DatabaseConnection } from "./database-config.js";

/** Why Maestro's database cannot be used: it is unreachable or its schema is refused. */
export class MaestroDatabaseError extends Error {
  override readonly name = "MaestroDatabaseError";
  constructor(
    readonly code: "connect-failed" | "schema-refused",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options of {@link openMaestroDatabase}. */
export interface MaestroDatabaseOptions {
  /** Maestro's database: connection fields, or a `postgres://` URL. */
  database: DatabaseConnection | string;
  logger?: Logger;
  /** Seconds a connection attempt may take before failing. Default 10. */
  connectTimeoutSeconds?: number;
  /** Pool size of the client (spec delivery adds one LISTEN connection). Default 20. */
  maxConnections?: number;
}

/** Maestro's database, connected and with its schema in place. */
export interface MaestroDatabase {
  readonly sql: Sql;
  /** `created` when the schema was made on an empty database, `current` when it was already Maestro's. */
  readonly schema: "created" | "current";
  /** Where it is, without secrets, for logs. */
  readonly where: string;
  /** `select 1` within `timeoutMs`: for the readiness probe. */
  ping(timeoutMs?: number): Promise<void>;
  /** Ends the client; idempotent. Stop what uses it first. */
  close(): Promise<void>;
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
 * Connects to Maestro's database and ensures its schema (created on an empty database, accepted
 * when Maestro migrated it, refused otherwise). On failure the client is ended and a
 * {@link MaestroDatabaseError} says what to fix.
 */
export async function openMaestroDatabase(options: MaestroDatabaseOptions): Promise<MaestroDatabase> {
  const logger = options.logger ?? silentLogger;
  const connection = typeof options.database === "string" ? parseDatabaseUrl(options.database, "database URL") : options.database;
  const where = describeDatabase(connection);
  const timeoutMs = (options.connectTimeoutSeconds ?? 10) * 1000;
  const sql = postgres(postgresOptions(connection, options.connectTimeoutSeconds ?? 10, options.maxConnections ?? 20));
  try {
    await probe(sql, where, timeoutMs);
    let schema: "created" | "current";
    try {
      schema = await ensureSchema(sql);
    } catch (err) {
      if (err instanceof SchemaError) throw new MaestroDatabaseError("schema-refused", `database ${where} (${err.code}): ${err.message}`, { cause: err });
      throw err;
    }
    logger.info("maestro database ready", { database: where, schema });
    let closing: Promise<void> | undefined;
    return {
      sql,
      schema,
      where,
      ping: (ms = 2000) => probe(sql, where, ms),
      close: () => (closing ??= sql.end({ timeout: 5 })),
    };
  } catch (err) {
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
    throw new MaestroDatabaseError("connect-failed", `cannot connect to ${where}: ${errorText(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}
