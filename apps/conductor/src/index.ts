/**
 * The conductor application: configuration, the HTTP/2 gRPC transport, the `maestro` source over
 * Maestro's PostgreSQL (external or embedded) and the command line. Other hub components can embed
 * the server with {@link startGrpcServer} and the source with {@link startMaestroSource}.
 *
 * @packageDocumentation
 */
export { main, resolveServeConfig } from "./cli.js";
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
export { createJsonLogger, type LogLevel } from "./logger.js";
export { startGrpcServer, type GrpcServerOptions, type RunningGrpcServer, type TlsMaterial } from "./transport/grpc-server.js";
export { HealthStatus } from "./transport/health-service.js";
export { keepConnection, type ConnectionKeeperOptions } from "./transport/connection-keeper.js";
