import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { DataTypes } from "@ocm-conductor/protocol";
import { Broker, MemoryWorkBackend } from "@ocm-conductor/router";
import { ConfigError, defaultConfig, loadConfigFile, readPort, validateBroker, type ConductorConfig } from "./config.js";
import { parseGoDuration } from "./duration.js";
import { createJsonLogger, isLogLevel } from "./logger.js";
import { startGrpcServer, type TlsMaterial } from "./transport/grpc-server.js";

const USAGE = `Usage: conductor <command> [flags]

Commands:
  serve      Run the conductor gRPC server (default: h2c on 127.0.0.1:8090)
  help       Show this help

Flags for serve:
  --config FILE                      conductor YAML (grpc_config: keys of sdk-go's server options)
  --grpc-port PORT                   overrides grpc_config.server_bind_port
  --grpc-host HOST                   overrides grpc_config.server_bind_host
  --broker-heartbeat-interval DUR    heartbeat period per stream, at least 10s (default 10s)
  --broker-heartbeat-disabled        send no heartbeats
  --log-level debug|info|warn|error  (default info)
`;

/** Thrown for command-line mistakes; the process exits with status 2. */
class UsageError extends Error {}

/**
 * Runs the `conductor` command line and resolves with the process exit code: 0 after a clean
 * shutdown, 1 when the server fails, 2 for usage and configuration errors.
 */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command = "help", ...rest] = argv;
  try {
    switch (command) {
      case "serve":
        return await serve(rest, env);
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`conductor: ${err.message}\n\n${err instanceof UsageError ? USAGE : ""}`);
      return 2;
    }
    process.stderr.write(`conductor: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

/** Parses `serve` flags over the config file and defaults. Exported for tests. */
export async function resolveServeConfig(args: string[]): Promise<{ config: ConductorConfig; logLevel: string }> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string" },
        "grpc-port": { type: "string" },
        "grpc-host": { type: "string" },
        "broker-heartbeat-interval": { type: "string" },
        "broker-heartbeat-disabled": { type: "boolean" },
        "log-level": { type: "string", default: "info" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const config = values.config === undefined ? defaultConfig() : await loadConfigFile(values.config);
  if (values["grpc-port"] !== undefined) config.grpc.port = readPort("--grpc-port", values["grpc-port"]);
  if (values["grpc-host"] !== undefined) config.grpc.host = values["grpc-host"];
  if (values["broker-heartbeat-interval"] !== undefined) {
    const ms = parseGoDuration(values["broker-heartbeat-interval"]);
    if (ms === undefined) throw new UsageError(`--broker-heartbeat-interval: invalid duration "${values["broker-heartbeat-interval"]}"`);
    config.broker.heartbeatIntervalMs = ms;
  }
  if (values["broker-heartbeat-disabled"] === true) config.broker.heartbeatDisabled = true;
  validateBroker(config.broker);
  if (!isLogLevel(values["log-level"])) throw new UsageError(`--log-level must be debug, info, warn or error`);
  return { config, logLevel: values["log-level"] };
}

async function serve(args: string[], _env: NodeJS.ProcessEnv): Promise<number> {
  const { config, logLevel } = await resolveServeConfig(args);
  const logger = createJsonLogger(isLogLevel(logLevel) ? logLevel : "info");
  const broker = new Broker({
    heartbeatIntervalMs: config.broker.heartbeatDisabled ? 0 : config.broker.heartbeatIntervalMs,
    queueCapacity: config.broker.queueCapacity,
    maxSendBytes: config.grpc.maxSendMessageSize,
    logger,
  });
  // Until the Kubernetes and Maestro routes land, manifestbundles are served from memory.
  broker.registerBackend(DataTypes.manifestBundles, new MemoryWorkBackend("conductor-demo"));
  logger.warn("serving manifestbundles from the in-memory demo backend");
  const tls = await readTls(config);
  const server = await startGrpcServer({ config: config.grpc, broker, logger, ...(tls === undefined ? {} : { tls }) });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info("shutting down", { signal });
      resolve();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  await server.close();
  logger.info("stopped");
  return 0;
}

async function readTls(config: ConductorConfig): Promise<TlsMaterial | undefined> {
  const { tlsCertFile, tlsKeyFile, clientCaFile } = config.grpc;
  if (tlsCertFile === undefined || tlsKeyFile === undefined) return undefined;
  const read = async (path: string, key: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new ConfigError(`grpc_config.${key}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const [cert, key] = await Promise.all([read(tlsCertFile, "tls_cert_file"), read(tlsKeyFile, "tls_key_file")]);
  return clientCaFile === undefined ? { cert, key } : { cert, key, ca: await read(clientCaFile, "client_ca_file") };
}
