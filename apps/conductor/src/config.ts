import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { ConfigError, readBool, readDuration, readInt, readPort, readString, section } from "./config-values.js";
import { DEFAULT_DATA_DIR, readDbConfig, type DatabaseConfig } from "./database-config.js";

export { ConfigError, readPort } from "./config-values.js";

/**
 * The gRPC server settings, named after the `grpc_config` YAML keys of sdk-go's
 * `GRPCServerOptions` (protocol.md §9.1), so an existing conductor config file keeps working.
 */
export interface GrpcServerConfig {
  /** `server_bind_port`. */
  port: number;
  /** `server_bind_host` (conductor only; Go listens on every interface). Default `127.0.0.1`. */
  host: string;
  /** `tls_cert_file` / `tls_key_file`: TLS is served when both are set, h2c otherwise. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** `client_ca_file`: client certificates are requested (not required) and verified against it. */
  clientCaFile?: string;
  /** `tls_min_version`: `VersionTLS12`/`VersionTLS13` (v1.3 form) or 771/772 (v1.1, v1.2 form). */
  tlsMinVersion: "TLSv1.2" | "TLSv1.3";
  /** `max_concurrent_streams`. */
  maxConcurrentStreams: number;
  /** `max_receive_message_size`, bytes. Default 4 MiB. */
  maxReceiveMessageSize: number;
  /** `max_send_message_size`, bytes. Default 4 MiB: what agents accept (Go defaults to 2 GiB). */
  maxSendMessageSize: number;
  /** `connection_timeout`, ms: how long a TLS handshake may take. */
  connectionTimeoutMs: number;
  /** `max_connection_age`, ms; 0 means unlimited (the Go default). */
  maxConnectionAgeMs: number;
  /** `max_connection_age_grace` (conductor only), ms: time streams get after GOAWAY. */
  maxConnectionAgeGraceMs: number;
  /** `server_ping_interval`, ms: keepalive ping period on every connection. */
  serverPingIntervalMs: number;
  /** `server_ping_timeout`, ms: a connection whose ping is not answered in time is closed. */
  serverPingTimeoutMs: number;
  /**
   * `cert_watch_interval`, ms: how often the TLS files are re-read as a fallback to file events
   * (they are reloaded when they change). Default 1 m.
   */
  certWatchIntervalMs: number;
  /**
   * `auth_cache_ttl` (conductor only), ms: how long TokenReview and SubjectAccessReview results are
   * reused; 0 calls the hub for every request. Default 10 s.
   */
  authCacheTtlMs: number;
  /**
   * `insecure_no_auth` (conductor only; also `--insecure-no-auth`): serve agents without
   * authentication and authorization, for local development. Refused together with TLS.
   */
  insecureNoAuth: boolean;
}

/** Broker settings, after sdk-go's `--broker-heartbeat-*` flags (protocol.md §9.2). */
export interface BrokerConfig {
  heartbeatDisabled: boolean;
  heartbeatIntervalMs: number;
  /** Events a stream may have pending before it is ended as too slow. */
  queueCapacity: number;
}

/** The whole conductor configuration. */
export interface ConductorConfig {
  grpc: GrpcServerConfig;
  broker: BrokerConfig;
  /** Maestro's database for the `maestro` source: `db_config:` (external) or the embedded default. */
  database: DatabaseConfig;
}

const MiB = 1024 * 1024;

/** The defaults: the sdk-go server defaults, except loopback h2c and a 4 MiB send limit. */
export function defaultConfig(): ConductorConfig {
  return {
    grpc: {
      port: 8090,
      host: "127.0.0.1",
      tlsMinVersion: "TLSv1.2",
      maxConcurrentStreams: 0xffffffff,
      maxReceiveMessageSize: 4 * MiB,
      maxSendMessageSize: 4 * MiB,
      connectionTimeoutMs: 120_000,
      maxConnectionAgeMs: 0,
      maxConnectionAgeGraceMs: 30_000,
      serverPingIntervalMs: 30_000,
      serverPingTimeoutMs: 10_000,
      certWatchIntervalMs: 60_000,
      authCacheTtlMs: 10_000,
      insecureNoAuth: false,
    },
    broker: { heartbeatDisabled: false, heartbeatIntervalMs: 10_000, queueCapacity: 1024 },
    database: { kind: "embedded", dataDir: DEFAULT_DATA_DIR },
  };
}

/**
 * Reads a conductor YAML file (`grpc_config:` block, optional `broker_config:` and `db_config:`
 * blocks) over the defaults. Unknown keys are ignored as yaml.v2 ignores them; known keys with bad values fail.
 */
export async function loadConfigFile(path: string): Promise<ConductorConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return defaultConfig();
  if (typeof doc !== "object" || Array.isArray(doc)) throw new ConfigError(`config file ${path} must be a YAML mapping`);
  return applyConfig(defaultConfig(), doc as Record<string, unknown>);
}

/**
 * Returns `base` with a parsed config document applied, validating each key it knows. `base` is
 * not modified, so a failed load leaves the running configuration as it was.
 */
export function applyConfig(base: ConductorConfig, doc: Record<string, unknown>): ConductorConfig {
  const config = structuredClone(base);
  const grpc = section(doc, "grpc_config");
  const g = config.grpc;
  const set = <K extends keyof GrpcServerConfig>(key: string, field: K, read: (k: string, v: unknown) => GrpcServerConfig[K]) => {
    if (grpc[key] !== undefined && grpc[key] !== null) g[field] = read(`grpc_config.${key}`, grpc[key]);
  };
  set("server_bind_port", "port", readPort);
  set("server_bind_host", "host", readString);
  set("tls_cert_file", "tlsCertFile", readString);
  set("tls_key_file", "tlsKeyFile", readString);
  set("client_ca_file", "clientCaFile", readString);
  set("tls_min_version", "tlsMinVersion", readTlsVersion);
  set("max_concurrent_streams", "maxConcurrentStreams", (k, v) => readInt(k, v, 1, 0xffffffff));
  set("max_receive_message_size", "maxReceiveMessageSize", (k, v) => readInt(k, v, 1, 2 ** 31 - 1));
  set("max_send_message_size", "maxSendMessageSize", (k, v) => readInt(k, v, 1, 2 ** 31 - 1));
  set("connection_timeout", "connectionTimeoutMs", (k, v) => readDuration(k, v, 1));
  set("max_connection_age", "maxConnectionAgeMs", (k, v) => readDuration(k, v, 0));
  set("max_connection_age_grace", "maxConnectionAgeGraceMs", (k, v) => readDuration(k, v, 0));
  set("server_ping_interval", "serverPingIntervalMs", (k, v) => readDuration(k, v, 1));
  set("server_ping_timeout", "serverPingTimeoutMs", (k, v) => readDuration(k, v, 1));
  set("cert_watch_interval", "certWatchIntervalMs", (k, v) => readDuration(k, v, 1_000));
  set("auth_cache_ttl", "authCacheTtlMs", (k, v) => readDuration(k, v, 0));
  set("insecure_no_auth", "insecureNoAuth", readBool);
  if ((g.tlsCertFile === undefined) !== (g.tlsKeyFile === undefined)) {
    throw new ConfigError("grpc_config.tls_cert_file and grpc_config.tls_key_file must be set together");
  }
  if (g.insecureNoAuth && g.tlsCertFile !== undefined) {
    throw new ConfigError("grpc_config.insecure_no_auth is refused when TLS is configured: TLS serves agents with authentication and authorization");
  }
  const broker = section(doc, "broker_config");
  if (broker["heartbeat_disabled"] !== undefined) config.broker.heartbeatDisabled = readBool("broker_config.heartbeat_disabled", broker["heartbeat_disabled"]);
  if (broker["heartbeat_interval"] !== undefined) config.broker.heartbeatIntervalMs = readDuration("broker_config.heartbeat_interval", broker["heartbeat_interval"], 0);
  if (broker["queue_capacity"] !== undefined) config.broker.queueCapacity = readInt("broker_config.queue_capacity", broker["queue_capacity"], 1, 1_000_000);
  validateBroker(config.broker);
  const database = readDbConfig(doc);
  if (database !== undefined) config.database = database;
  return config;
}

/** sdk-go requires at least 10 s between heartbeats when they are enabled (protocol.md §9.2). */
export function validateBroker(broker: BrokerConfig): void {
  if (!broker.heartbeatDisabled && broker.heartbeatIntervalMs < 10_000) {
    throw new ConfigError("broker heartbeat interval must be at least 10s when heartbeats are enabled");
  }
}

function readTlsVersion(key: string, value: unknown): "TLSv1.2" | "TLSv1.3" {
  const v = typeof value === "number" ? value : String(value);
  if (v === 771 || v === "VersionTLS12" || v === "TLSv1.2" || v === "") return "TLSv1.2";
  if (v === 772 || v === "VersionTLS13" || v === "TLSv1.3") return "TLSv1.3";
  throw new ConfigError(`${key} must be VersionTLS12 or VersionTLS13 (TLS below 1.2 is refused), got ${JSON.stringify(value)}`);
}
