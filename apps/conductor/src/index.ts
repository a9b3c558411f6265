/**
 * The conductor application: configuration, the HTTP/2 gRPC transport and the command line.
 * Other hub components can embed the server with {@link startGrpcServer}.
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
export { parseGoDuration } from "./duration.js";
export { createJsonLogger, type LogLevel } from "./logger.js";
export { startGrpcServer, type GrpcServerOptions, type RunningGrpcServer, type TlsMaterial } from "./transport/grpc-server.js";
export { HealthStatus } from "./transport/health-service.js";
export { keepConnection, type ConnectionKeeperOptions } from "./transport/connection-keeper.js";
