import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { readTlsFiles, TlsFilesError, watchTlsFiles } from "@ocm-conductor/hub-auth";
import { ConfigError, defaultConfig, loadConfigFile, readPort, validateBroker, type ConductorConfig } from "./config.js";
import { SERVE_MODES, startConductorProcess, type ConductorProcess, type ServeMode } from "./conductor-process.js";
import { runCtl } from "./ctl/ctl.js";
import { resolvePassword, selectDatabase } from "./database-config.js";
import { parseGoDuration } from "./duration.js";
import { createJsonLogger, isLogLevel } from "./logger.js";
import { OPERATOR_HEALTHZ_PORT, operatorConfigFacts, presentTlsDefaults, startHealthzServer } from "./operator-grpc.js";
import { resolveKubeAccess } from "./kube-access.js";
import type { Logger } from "@ocm-conductor/router";
import type { TlsMaterial } from "./transport/grpc-server.js";

const USAGE = `Usage: conductor <command> [flags]

Commands:
  serve      Run the conductor (default: --mode all, gRPC h2c on 127.0.0.1:8090, admin on 127.0.0.1:8080)
  ctl        Debugging client: subscribe, publish, status, maestro apply/delete (conductor ctl help)
  grpc       The cluster-manager operator's invocation (args "/server grpc --server-config=FILE
             [--kubeconfig=FILE]"): serve --mode all on every interface, the reference's default
             TLS files, HTTPS /healthz on :8443, no embedded database (see README)
  help       Show this help

Flags for serve:
  --mode MODE                        all (default) | router | work-service | db-service | consumer-controller
  --server-config FILE               conductor YAML (grpc_config: keys of sdk-go's server options,
                                     db_config: keys of Maestro's database options); --config is an alias
  --kubeconfig FILE                  the hub's Kubernetes API (else KUBECONFIG, else in-cluster, else none:
                                     the kube route, registration services and consumer controller are off)
  --admin-host HOST                  admin HTTP listener host (default 127.0.0.1)
  --admin-port PORT                  /livez /readyz /metrics /debug/subscribers (default 8080; 0 = any free port)
  --work-service-url URL             --mode router: the work-service process (http://host:port)
  --db-service-url URL               --mode router: the db-service process (http://host:port)
  --maestro-url URL                  Maestro's HTTP API (http://maestro:8000): the consumer controller
                                     creates and deletes consumers through /api/maestro/v1/consumers
                                     instead of writing Maestro's database (else MAESTRO_URL)
  --maestro-token-file FILE          bearer token for --maestro-url (Maestro with JWT authentication)
  --data-dir DIR                     embedded PostgreSQL data directory (default ./.data/pg), used
                                     (else ignored) when neither DATABASE_URL nor db_config names
                                     a database
  --grpc-port PORT                   overrides grpc_config.server_bind_port
  --grpc-host HOST                   overrides grpc_config.server_bind_host
  --broker-heartbeat-interval DUR    heartbeat period per stream, at least 10s (default 10s)
  --broker-heartbeat-disabled        send no heartbeats
  --insecure-no-auth                 serve agents without authentication and authorization (local
                                     development; refused with TLS). With TLS (tls_cert_file,
                                     tls_key_file, client_ca_file) agents are always authenticated
                                     (TokenReview, client certificates) and authorized
                                     (SubjectAccessReview) on the hub, which needs Kubernetes access
  --log-level debug|info|warn|error  (default info)

Environment:
  DATABASE_URL                       postgres://user:password@host:port/database[?sslmode=…];
                                     overrides db_config
  MAESTRO_URL                        as --maestro-url (the flag wins)
`;

/** Thrown for command-line mistakes; the process exits with status 2. */
class UsageError extends Error {}

/**
 * Runs the `conductor` command line and resolves with the process exit code: 0 after a clean
 * shutdown, 1 when the server or its database fails, 2 for usage and configuration errors.
 */
export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  // The operator passes the reference binary's path first: `/server grpc …`.
  const [command = "help", ...rest] = argv[0] === "/server" ? argv.slice(1) : argv;
  try {
    switch (command) {
      case "serve":
        return await serve(rest, env);
      case "grpc":
        return await operatorGrpc(rest, env);
      case "ctl":
        return await runCtl(rest, { stdout: (t) => void process.stdout.write(t), stderr: (t) => void process.stderr.write(t) });
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

/** What `conductor serve` was asked to run, after flags, the config file and the environment. */
export interface ServeSettings {
  config: ConductorConfig;
  logLevel: string;
  /** Settings that do not apply (e.g. `--data-dir` with an external database), for a warning. */
  ignored: string[];
  mode: ServeMode;
  kubeconfig: string | undefined;
  admin: { host: string; port: number };
  remotes: { workService?: string; dbService?: string };
  /** `--maestro-url` / `MAESTRO_URL`, with the token read from `--maestro-token-file`. */
  maestro: { url: string; token?: string } | undefined;
}

/**
 * Parses `serve` flags over the config file and defaults, and picks the database (`DATABASE_URL`
 * in `env` over `db_config:` over the embedded default). Exported for tests.
 */
export async function resolveServeConfig(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ServeSettings> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        mode: { type: "string", default: "all" },
        config: { type: "string" },
        "server-config": { type: "string" },
        kubeconfig: { type: "string" },
        "admin-host": { type: "string", default: "127.0.0.1" },
        "admin-port": { type: "string", default: "8080" },
        "work-service-url": { type: "string" },
        "db-service-url": { type: "string" },
        "maestro-url": { type: "string" },
        "maestro-token-file": { type: "string" },
        "grpc-port": { type: "string" },
        "grpc-host": { type: "string" },
        "data-dir": { type: "string" },
        "broker-heartbeat-interval": { type: "string" },
        "broker-heartbeat-disabled": { type: "boolean" },
        "insecure-no-auth": { type: "boolean" },
        "log-level": { type: "string", default: "info" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const mode = values.mode as ServeMode;
  if (!SERVE_MODES.includes(mode)) throw new UsageError(`--mode must be one of ${SERVE_MODES.join(", ")}`);
  if (values.config !== undefined && values["server-config"] !== undefined) throw new UsageError("give --server-config or --config, not both");
  const file = values["server-config"] ?? values.config;
  const config = file === undefined ? defaultConfig() : await loadConfigFile(file);
  if (values["grpc-port"] !== undefined) config.grpc.port = readPort("--grpc-port", values["grpc-port"]);
  if (values["grpc-host"] !== undefined) config.grpc.host = values["grpc-host"];
  if (values["broker-heartbeat-interval"] !== undefined) {
    const ms = parseGoDuration(values["broker-heartbeat-interval"]);
    if (ms === undefined) throw new UsageError(`--broker-heartbeat-interval: invalid duration "${values["broker-heartbeat-interval"]}"`);
    config.broker.heartbeatIntervalMs = ms;
  }
  if (values["broker-heartbeat-disabled"] === true) config.broker.heartbeatDisabled = true;
  if (values["insecure-no-auth"] === true) {
    if (config.grpc.tlsCertFile !== undefined) throw new UsageError("--insecure-no-auth is refused when TLS is configured (grpc_config.tls_cert_file): TLS serves agents with authentication and authorization");
    config.grpc.insecureNoAuth = true;
  }
  validateBroker(config.broker);
  const { database, ignored } = selectDatabase(config.database, env, values["data-dir"]);
  config.database = database.kind === "external" ? await resolvePassword(database) : database;
  if (!isLogLevel(values["log-level"])) throw new UsageError(`--log-level must be debug, info, warn or error`);
  const remotes: ServeSettings["remotes"] = {};
  for (const [flag, key] of [["work-service-url", "workService"], ["db-service-url", "dbService"]] as const) {
    const url = values[flag];
    if (url === undefined) continue;
    if (mode !== "router") throw new UsageError(`--${flag} is for --mode router`);
    if (!/^https?:\/\/[^/]+\/?$/.test(url)) throw new UsageError(`--${flag} must be http://host:port or https://host:port, got "${url}"`);
    remotes[key] = url;
  }
  const maestroUrl = values["maestro-url"] ?? (env.MAESTRO_URL === "" ? undefined : env.MAESTRO_URL);
  if (maestroUrl !== undefined && !/^https?:\/\/[^/\s]+(\/[^\s]*)?$/.test(maestroUrl)) {
    throw new UsageError(`--maestro-url (or MAESTRO_URL) must be http://host:port or https://host:port, got "${maestroUrl}"`);
  }
  const tokenFile = values["maestro-token-file"];
  if (tokenFile !== undefined && maestroUrl === undefined) throw new UsageError("--maestro-token-file needs --maestro-url");
  let maestro: ServeSettings["maestro"];
  if (maestroUrl !== undefined) {
    maestro = { url: maestroUrl };
    if (tokenFile !== undefined) {
      let token: string;
      try {
        token = (await readFile(tokenFile, "utf8")).trim();
      } catch (err) {
        throw new ConfigError(`--maestro-token-file: cannot read ${tokenFile}: ${(err as Error).message}`);
      }
      if (token === "") throw new ConfigError(`--maestro-token-file: ${tokenFile} is empty`);
      maestro.token = token;
    }
  }
  return {
    config,
    maestro,
    logLevel: values["log-level"],
    ignored: ignored === undefined ? [] : [ignored],
    mode,
    kubeconfig: values.kubeconfig,
    admin: { host: values["admin-host"], port: readPort("--admin-port", values["admin-port"]) },
    remotes,
  };
}

async function serve(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runServe(await resolveServeConfig(args, env), env);
}

/** What the `grpc` command (the cluster-manager operator's invocation) adds to a `serve`. */
export interface ServeExtras {
  /** False: no embedded PostgreSQL; without an external database the maestro route is off. */
  embeddedDatabase?: boolean;
  /** Started once the conductor runs, stopped first. */
  sidecar?: (tls: TlsMaterial | undefined, logger: Logger) => Promise<{ close(): Promise<void> }>;
  /** Logged before anything starts. */
  notes?: Array<[string, Record<string, unknown>]>;
}

/** Runs a conductor process with resolved settings until SIGINT/SIGTERM or a failure; resolves with the exit code. */
export async function runServe(settings: ServeSettings, env: NodeJS.ProcessEnv, extras: ServeExtras = {}): Promise<number> {
  const logger = createJsonLogger(isLogLevel(settings.logLevel) ? settings.logLevel : "info");
  for (const [message, fields] of extras.notes ?? []) logger.info(message, fields);
  for (const setting of settings.ignored) logger.warn("setting ignored", { setting });
  const tls = await readTls(settings.config, logger);
  const kube = resolveKubeAccess(settings.kubeconfig, env);
  // Signals during start-up are remembered: start-up finishes its step, then everything stops in order.
  let signalled: (signal: string) => void = () => {};
  const signal = new Promise<string>((resolve) => (signalled = resolve));
  const onSignal = (name: NodeJS.Signals) => () => signalled(name);
  const handlers = (["SIGINT", "SIGTERM"] as const).map((name) => [name, onSignal(name)] as const);
  for (const [name, handler] of handlers) process.once(name, handler);
  let running: ConductorProcess | undefined;
  let code = 0;
  try {
    logger.info("starting", { mode: settings.mode });
    running = await startConductorProcess({
      mode: settings.mode,
      config: settings.config,
      kube,
      ...(tls === undefined ? {} : { tls }),
      admin: settings.admin,
      remotes: settings.remotes,
      ...(settings.maestro && { maestro: settings.maestro }),
      ...(extras.embeddedDatabase === false && { embeddedDatabase: false }),
      logger,
    });
    const sidecar = await extras.sidecar?.(tls, logger);
    const why = await Promise.race([signal, running.failure]);
    if (why.startsWith("SIG")) logger.info("shutting down", { signal: why });
    else {
      logger.error("shutting down", { reason: why });
      code = 1;
    }
    await sidecar?.close();
  } finally {
    await running?.stop();
    for (const [name, handler] of handlers) process.removeListener(name, handler);
  }
  logger.info("stopped");
  return code;
}

/**
 * `grpc`: what the cluster-manager operator runs in its gRPC server Deployment (operator-grpc.ts).
 * The reference flags, then `serve --mode all` with: every interface unless the file binds a host;
 * the reference's default TLS files when the file names none and they exist; no embedded
 * PostgreSQL (the maestro route needs db_config or DATABASE_URL); the admin port on 127.0.0.1; and
 * HTTPS `/healthz` on :8443 (`--healthz-port`, conductor only).
 */
async function operatorGrpc(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args, strict: true, allowPositionals: false, options: {
      "server-config": { type: "string" },
      kubeconfig: { type: "string" },
      "healthz-port": { type: "string", default: String(OPERATOR_HEALTHZ_PORT) },
      "admin-port": { type: "string", default: "8080" },
      "log-level": { type: "string", default: "info" },
    } }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const file = values["server-config"];
  const facts = await operatorConfigFacts(file);
  const serveArgs = ["--mode", "all", "--admin-port", values["admin-port"], "--log-level", values["log-level"]];
  if (file !== undefined && facts.exists) serveArgs.push("--server-config", file);
  if (values.kubeconfig !== undefined) serveArgs.push("--kubeconfig", values.kubeconfig);
  const settings = await resolveServeConfig(serveArgs, env);
  if (!facts.bindsHost) settings.config.grpc.host = "0.0.0.0";
  const tlsDefaults = facts.namesTls ? {} : presentTlsDefaults();
  Object.assign(settings.config.grpc, tlsDefaults);
  const healthzPort = readPort("--healthz-port", values["healthz-port"]);
  const notes: ServeExtras["notes"] = [];
  if (file !== undefined && !facts.exists) notes.push(["config file absent (the operator's ConfigMap is optional); using defaults", { file }]);
  if (Object.keys(tlsDefaults).length > 0) notes.push(["serving the reference's default TLS files", tlsDefaults]);
  return runServe(settings, env, {
    embeddedDatabase: false,
    notes,
    sidecar: (tls, logger) => startHealthzServer({ tls, host: settings.config.grpc.host, port: healthzPort, logger }),
  });
}

/** Reads the TLS files once and watches them: the server reloads them when they change. */
async function readTls(config: ConductorConfig, logger: Logger): Promise<TlsMaterial | undefined> {
  const { tlsCertFile, tlsKeyFile, clientCaFile, certWatchIntervalMs } = config.grpc;
  if (tlsCertFile === undefined || tlsKeyFile === undefined) return undefined;
  const files = { certFile: tlsCertFile, keyFile: tlsKeyFile, ...(clientCaFile !== undefined && { caFile: clientCaFile }) };
  let material;
  try {
    material = await readTlsFiles(files);
  } catch (err) {
    if (err instanceof TlsFilesError) throw new ConfigError(`grpc_config${/^(tls_|client_ca_file)/.test(err.message) ? "." : ": "}${err.message}`);
    throw err;
  }
  return { ...material, watch: (onChange) => watchTlsFiles(files, { current: material, onChange, intervalMs: certWatchIntervalMs, logger }) };
}
