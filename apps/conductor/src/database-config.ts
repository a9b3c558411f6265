/**
 * Which PostgreSQL database the `maestro` source uses: an external one (Maestro's, from the
 * `db_config:` block or `DATABASE_URL`) or the embedded one the conductor starts itself.
 */
import { readFile } from "node:fs/promises";
import { ConfigError, readPort, section } from "./config-values.js";

/** libpq `sslmode` values Maestro accepts; Maestro's default is `disable`. */
export const SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
/** One of {@link SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number];

/** How to reach a PostgreSQL database: the fields of Maestro's `DatabaseConfig` the conductor uses. */
export interface DatabaseConnection {
  host: string;
  port: number;
  /** Database name (`name`). */
  name: string;
  username: string;
  /** Password; empty when unset (libpq then falls back to `PGPASSWORD`). */
  password: string;
  sslmode: SslMode;
}

/**
 * An external PostgreSQL database, named after the keys of Maestro's `DatabaseConfig` (`db_config:`),
 * so one file configures both Maestro and the conductor.
 */
export interface ExternalDatabaseConfig extends DatabaseConnection {
  kind: "external";
  /** Where it came from, for messages: `db_config` or `DATABASE_URL`. */
  origin: "db_config" | "DATABASE_URL";
  /** `password_file` (Maestro's `PasswordFile`): read at start-up, surrounding whitespace trimmed. */
  passwordFile?: string;
}

/** The embedded PostgreSQL cluster the conductor runs when no external database is configured. */
export interface EmbeddedDatabaseConfig {
  kind: "embedded";
  /** PostgreSQL data directory; relative paths are taken from the directory `conductor serve` starts in. */
  dataDir: string;
}

/** The database selection: external, or embedded (the default). */
export type DatabaseConfig = ExternalDatabaseConfig | EmbeddedDatabaseConfig;

/** Default data directory of the embedded database, relative to the working directory. */
export const DEFAULT_DATA_DIR = ".data/pg";

const HOST = /^[A-Za-z0-9._:%-]{1,253}$/; // DNS names, IPv4, bare IPv6 (with zone); no commas, slashes or spaces
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function readText(key: string, value: unknown, allowEmpty = false, allowNumber = false): string {
  const text = allowNumber && typeof value === "number" && Number.isFinite(value) ? String(value) : value;
  if (typeof text !== "string" || (!allowEmpty && text === "")) throw new ConfigError(`${key} must be a${allowEmpty ? "" : " non-empty"} string`);
  if (CONTROL.test(text)) throw new ConfigError(`${key} must not contain control characters`);
  if (Buffer.byteLength(text) > 1024) throw new ConfigError(`${key} is longer than 1024 bytes`);
  return text;
}

function readHost(key: string, value: unknown): string {
  const host = readText(key, value);
  if (!HOST.test(host)) throw new ConfigError(`${key} must be a host name or IP address, got ${JSON.stringify(host)}`);
  return host;
}

function readSslMode(key: string, value: unknown): SslMode {
  if (typeof value === "string" && (SSL_MODES as readonly string[]).includes(value)) return value as SslMode;
  throw new ConfigError(`${key} must be one of ${SSL_MODES.join(", ")}, got ${JSON.stringify(value)}`);
}

/**
 * Reads the `db_config:` block (Maestro's `DatabaseConfig` keys: `host`, `port`, `name`,
 * `username`, `password`, `sslmode`, plus `password_file`, also spelt `passwordfile` as yaml.v2
 * reads Maestro's field). Returns `undefined` when the block is absent or empty.
 */
export function readDbConfig(doc: Record<string, unknown>): ExternalDatabaseConfig | undefined {
  const db = section(doc, "db_config");
  const given = (k: string) => db[k] !== undefined && db[k] !== null;
  if (!Object.keys(db).some(given)) return undefined;
  for (const key of ["host", "name", "username"]) {
    if (!given(key)) throw new ConfigError(`db_config.${key} is required when db_config is given`);
  }
  const fileKeys = ["password_file", "passwordfile"].filter(given);
  if (fileKeys.length > 1) throw new ConfigError("db_config.password_file and db_config.passwordfile are the same setting; give one");
  if (fileKeys.length === 1 && given("password")) throw new ConfigError("db_config.password and db_config.password_file exclude each other");
  const config: ExternalDatabaseConfig = {
    kind: "external",
    origin: "db_config",
    host: readHost("db_config.host", db["host"]),
    port: given("port") ? readPort("db_config.port", db["port"], 1) : 5432,
    name: readText("db_config.name", db["name"]),
    username: readText("db_config.username", db["username"]),
    password: given("password") ? readText("db_config.password", db["password"], true, true) : "",
    sslmode: given("sslmode") ? readSslMode("db_config.sslmode", db["sslmode"]) : "disable",
  };
  const fileKey = fileKeys[0];
  if (fileKey !== undefined) config.passwordFile = readText(`db_config.${fileKey}`, db[fileKey]);
  return config;
}

/**
 * Parses a `postgres://user:password@host:port/database?sslmode=…` URL (`postgresql://` too).
 * User and database are required; `sslmode` is the only query parameter accepted, so a typo is
 * not silently ignored. `key` names the source in errors (`DATABASE_URL`).
 */
export function parseDatabaseUrl(text: string, key = "DATABASE_URL"): ExternalDatabaseConfig {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${key} is not a URL (expected postgres://user:password@host:5432/database)`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(`${key} must start with postgres:// or postgresql://, got ${JSON.stringify(url.protocol)}`);
  }
  const decode = (part: string, what: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new ConfigError(`${key}: the ${what} is not valid percent-encoding`);
    }
  };
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const name = decode(url.pathname.replace(/^\//, ""), "database name");
  const username = decode(url.username, "user name");
  if (username === "") throw new ConfigError(`${key} must name the user (postgres://user:password@host/database)`);
  if (name === "" || name.includes("/")) throw new ConfigError(`${key} must name one database (postgres://user@host/database)`);
  let sslmode: SslMode = "disable";
  for (const [param, value] of url.searchParams) {
    if (param !== "sslmode") throw new ConfigError(`${key}: unsupported parameter ${JSON.stringify(param)} (only sslmode is accepted)`);
    sslmode = readSslMode(`${key} sslmode`, value);
  }
  return {
    kind: "external",
    origin: "DATABASE_URL",
    host: readHost(`${key} host`, host),
    port: url.port === "" ? 5432 : readPort(`${key} port`, url.port, 1),
    name: readText(`${key} database name`, name),
    username: readText(`${key} user name`, username),
    password: readText(`${key} password`, decode(url.password, "password"), true),
    sslmode,
  };
}

/**
 * The database to use: `DATABASE_URL` (when set and not empty) overrides `db_config:`; with
 * neither, the embedded database in `dataDirFlag` (default {@link DEFAULT_DATA_DIR}). A
 * `--data-dir` given with an external database is ignored, and `ignored` says so for the log:
 * `pnpm start` passes one, and `DATABASE_URL` must still win.
 */
export function selectDatabase(
  fromFile: DatabaseConfig,
  env: NodeJS.ProcessEnv,
  dataDirFlag: string | undefined,
): { database: DatabaseConfig; ignored?: string } {
  const url = env["DATABASE_URL"];
  const database = url !== undefined && url !== "" ? parseDatabaseUrl(url) : fromFile;
  if (dataDirFlag === undefined) return { database };
  const dataDir = readText("--data-dir", dataDirFlag);
  if (database.kind === "external") return { database, ignored: `--data-dir ${dataDir} (${database.origin} selects an external database)` };
  return { database: { kind: "embedded", dataDir } };
}

/** Reads `password_file` into `password` (Maestro trims the file's surrounding whitespace). */
export async function resolvePassword(config: ExternalDatabaseConfig): Promise<ExternalDatabaseConfig> {
  if (config.passwordFile === undefined) return config;
  let text: string;
  try {
    text = await readFile(config.passwordFile, "utf8");
  } catch (err) {
    throw new ConfigError(`db_config.password_file: cannot read ${config.passwordFile}: ${(err as Error).message}`);
  }
  return { ...config, password: readText("db_config.password_file contents", text.trim(), true) };
}

/** `postgres://user@host:port/name?sslmode=…`, without the password, for logs and errors. */
export function describeDatabase(config: DatabaseConnection): string {
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  return `postgres://${encodeURIComponent(config.username)}@${host}:${config.port}/${encodeURIComponent(config.name)}?sslmode=${config.sslmode}`;
}
