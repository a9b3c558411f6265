/**
 * The conductor application: configuration, the HTTP/2 gRPC transport, Maestro's database
 * (external or embedded), the process composition of every `--mode` and the command line. Other hub
 * components can embed a whole conductor with {@link startConductorProcess}, or just the transport
 * with {@link startGrpcServer} around their own broker.
 *
 * @packageDocumentation
 */
export { main, resolveServeConfig, type ServeSettings } from "./cli.js";
export {
  SERVE_MODES,
  startConductorProcess,
  type ConductorProcess,
  type ConductorProcessOptions,
  type ServeMode,
} from "./conductor-process.js";
export { resolveKubeAccess, type KubeAccess, type KubeAccessOrigin } from "./kube-access.js";
export {
  ConfigError,
  applyConfig,
  defaultConfig,
  loadConfigFile,
  type BrokerConfig,
  type ConductorConfig,
  type GrpcServerConfig,
} from "./config.js";
export {
  DEFAULT_DATA_DIR,
  SSL_MODES,
  describeDatabase,
  parseDatabaseUrl,
  type DatabaseConfig,
  type DatabaseConnection,
  type EmbeddedDatabaseConfig,
  type ExternalDatabaseConfig,
  type SslMode,
} from "./database-config.js";
export { parseGoDuration } from "./duration.js";
export {
  EmbeddedDatabaseError,
  PASSWORD_FILE,
  startEmbeddedDatabase,
  type EmbeddedDatabase,
  type EmbeddedDatabaseOptions,
} from "./embedded-database.js";
export {
  MaestroDatabaseError,
  openMaestroDatabase,
  postgresOptions,
  type MaestroDatabase,
  type MaestroDatabaseOptions,
} from "./maestro-database.js";
export { REDACTED, createJsonLogger, isLogLevel, type LogLevel } from "./logger.js";
export { startGrpcServer, type GrpcServerOptions, type RunningGrpcServer, type TlsMaterial } from "./transport/grpc-server.js";
export { HealthStatus } from "./transport/health-service.js";
export { keepConnection, type ConnectionKeeperOptions } from "./transport/connection-keeper.js";
