import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { Broker, type Logger } from "@ocm-conductor/router";
import { ConfigError, defaultConfig, loadConfigFile, readPort, validateBroker, type ConductorConfig } from "./config.js";
import { describeDatabase, resolvePassword, selectDatabase, type DatabaseConnection } from "./database-config.js";
import { parseGoDuration } from "./duration.js";
import { startEmbeddedDatabase, type EmbeddedDatabase } from "./embedded-database.js";
import { createJsonLogger, isLogLevel } from "./logger.js";
import { startMaestroSource, type MaestroSource } from "./maestro-source.js";
import { startGrpcServer, type RunningGrpcServer, type TlsMaterial } from "./transport/grpc-server.js";

const USAGE = `Usage: conductor <command> [flags]

Commands:
  serve      Run the conductor gRPC server (default: h2c on 127.0.0.1:8090)
  help       Show this help

Flags for serve:
  --config FILE                      conductor YAML (grpc_config: keys of sdk-go's server options,
                                     db_config: keys of Maestro's database options)
  --data-dir DIR                     embedded PostgreSQL data directory (default ./.data/pg), used
                                     (else ignored) when neither DATABASE_URL nor db_config names
                                     a database
  --grpc-port PORT                   overrides grpc_config.server_bind_port
  --grpc-host HOST                   overrides grpc_config.server_bind_host
  --broker-heartbeat-interval DUR    heartbeat period per stream, at least 10s (default 10s)
  --broker-heartbeat-disabled        send no heartbeats
  --log-level debug|info|warn|error  (default info)

Environment:
  DATABASE_URL                       postgres://user:password@host:port/database[?sslmode=…];
                                     overrides db_config
`;

/** Thrown for command-line mistakes; the process exits with status 2. */
class UsageError extends Error {}

/**
 * Runs the `conductor` command line and resolves with the process exit code: 0 after a clean
 * shutdown, 1 when the server or its database fails, 2 for usage and configuration errors.
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

/**
 * Parses `serve` flags over the config file and defaults, and picks the database (`DATABASE_URL`
 * in `env` over `db_config:` over the embedded default). Exported for tests.
 */
export async function resolveServeConfig(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ config: ConductorConfig; logLevel: string; ignored: string[] }> {
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
        "data-dir": { type: "string" },
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
  const { database, ignored } = selectDatabase(config.database, env, values["data-dir"]);
  config.database = database.kind === "external" ? await resolvePassword(database) : database;
  if (!isLogLevel(values["log-level"])) throw new UsageError(`--log-level must be debug, info, warn or error`);
  return { config, logLevel: values["log-level"], ignored: ignored === undefined ? [] : [ignored] };
}

async function serve(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { config, logLevel, ignored } = await resolveServeConfig(args, env);
  const logger = createJsonLogger(isLogLevel(logLevel) ? logLevel : "info");
  for (const setting of ignored) logger.warn("setting ignored", { setting });
  const tls = await readTls(config);
  // Signals during start-up are remembered: start-up finishes its step, then everything stops in order.
  let signalled: (signal: string) => void = () => {};
  const signal = new Promise<string>((resolve) => (signalled = resolve));
  const onSignal = (name: NodeJS.Signals) => () => signalled(name);
  const handlers = (["SIGINT", "SIGTERM"] as const).map((name) => [name, onSignal(name)] as const);
  for (const [name, handler] of handlers) process.once(name, handler);
  let embedded: EmbeddedDatabase | undefined;
  let source: MaestroSource | undefined;
  let server: RunningGrpcServer | undefined;
  let code = 0;
  try {
    let connection: DatabaseConnection;
    if (config.database.kind === "external") {
      connection = config.database;
      logger.info("using an external database", { database: describeDatabase(connection), from: config.database.origin });
    } else {
      embedded = await startEmbeddedDatabase({ dataDir: config.database.dataDir, logger });
      connection = embedded.connection;
    }
    const broker = new Broker({
      heartbeatIntervalMs: config.broker.heartbeatDisabled ? 0 : config.broker.heartbeatIntervalMs,
      queueCapacity: config.broker.queueCapacity,
      maxSendBytes: config.grpc.maxSendMessageSize,
      logger,
    });
    source = await startMaestroSource({ broker, database: connection, logger });
    server = await startGrpcServer({ config: config.grpc, broker, logger, ...(tls === undefined ? {} : { tls }) });
    const unexpected = embedded?.exited.then(() => "embedded PostgreSQL exited");
    const why = await Promise.race([signal, ...(unexpected ? [unexpected] : [])]);
    if (why.startsWith("SIG")) logger.info("shutting down", { signal: why });
    else {
      logger.error("shutting down", { reason: why });
      code = 1;
    }
  } finally {
    await shutdown(logger, server, source, embedded);
    for (const [name, handler] of handlers) process.removeListener(name, handler);
  }
  logger.info("stopped");
  return code;
}

/** Stops in order: gRPC (no more agents), spec delivery and the client, then the embedded database. */
async function shutdown(logger: Logger, server?: RunningGrpcServer, source?: MaestroSource, embedded?: EmbeddedDatabase): Promise<void> {
  const step = async (what: string, run: (() => Promise<void>) | undefined) => {
    try {
      await run?.();
    } catch (err) {
      logger.warn(`${what} failed during shutdown`, { error: String(err) });
    }
  };
  await step("gRPC server close", server && (() => server.close()));
  await step("maestro source stop", source && (() => source.stop()));
  await step("embedded PostgreSQL stop", embedded && (() => embedded.stop()));
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
