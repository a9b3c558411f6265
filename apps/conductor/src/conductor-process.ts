import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ConsumerController, watchManagedClusters } from "@ocm-conductor/consumer-controller";
import { MaestroWorkBackend } from "@ocm-conductor/db-service";
import { HubAuth, KubeHubReviewer, createAuthInterceptor } from "@ocm-conductor/hub-auth";
import { BackendService, DataTypes } from "@ocm-conductor/protocol";
import { Broker, RemoteBackend, SourceRouter, registerBackendService, type Backend, type BackendServiceHandle, type Logger } from "@ocm-conductor/router";
import { createHubServices, type HubServices } from "@ocm-conductor/work-service";
import { startAdminServer, type ReadinessCheck, type RunningAdminServer } from "./admin/admin-server.js";
import { ConfigError } from "./config-values.js";
import type { ConductorConfig } from "./config.js";
import { describeDatabase, type DatabaseConnection } from "./database-config.js";
import { startEmbeddedDatabase } from "./embedded-database.js";
import type { KubeAccess } from "./kube-access.js";
import { openMaestroDatabase } from "./maestro-database.js";
import { GrpcMetrics } from "./metrics/grpc-metrics.js";
import { startGrpcServer, type RunningGrpcServer, type TlsMaterial } from "./transport/grpc-server.js";

/** What one `conductor serve` process runs (README "Deployment modes"). */
export const SERVE_MODES = ["all", "router", "work-service", "db-service", "consumer-controller"] as const;
/** One of {@link SERVE_MODES}. */
export type ServeMode = (typeof SERVE_MODES)[number];

/** Everything a conductor process is started with. */
export interface ConductorProcessOptions {
  mode: ServeMode;
  config: ConductorConfig;
  /** The hub's Kubernetes API; undefined = none (the kube route and registration services are off). */
  kube: KubeAccess | undefined;
  tls?: TlsMaterial;
  /** The admin HTTP port (`/livez`, `/readyz`, `/metrics`, `/debug/subscribers`); undefined = none. */
  admin: { host: string; port: number } | undefined;
  /** Router mode: where the backend processes listen (`http://host:port`). */
  remotes?: { workService?: string; dbService?: string };
  /**
   * Maestro's REST API (`--maestro-url`): the consumer controller creates and deletes consumers
   * through it instead of writing Maestro's database directly.
   */
  maestro?: { url: string; token?: string };
  /**
   * Whether `--mode all` may start the embedded PostgreSQL when no external database is configured
   * (default true). False (the cluster-manager operator's `grpc` invocation): the maestro route and
   * the consumer controller are off instead.
   */
  embeddedDatabase?: boolean;
  logger: Logger;
}

/** A running conductor process. */
export interface ConductorProcess {
  readonly grpc: RunningGrpcServer | undefined;
  readonly admin: RunningAdminServer | undefined;
  /** Authentication and authorization of agents; undefined when they are off (h2c, `--insecure-no-auth`). */
  readonly auth: HubAuth | undefined;
  /** Settles with a reason when a part dies on its own (the embedded PostgreSQL exiting). */
  readonly failure: Promise<string>;
  /** Stops everything, agents first, in reverse order of start. */
  stop(): Promise<void>;
}

const NEEDS_DATABASE: ReadonlySet<ServeMode> = new Set(["all", "db-service", "consumer-controller"]);
const NEEDS_KUBE: ReadonlySet<ServeMode> = new Set(["work-service", "consumer-controller"]);

/**
 * Composes the libraries into one process: `all` (broker + hub services + the maestro source +
 * consumer controller, the reference's single binary), or one part of the split deployment —
 * `router` (faces agents, calls remote backends), `work-service` and `db-service` (serve their
 * backends over the internal BackendService), `consumer-controller`.
 *
 * @throws ConfigError when the mode lacks what it needs (Kubernetes access, a database, a URL).
 */
export async function startConductorProcess(options: ConductorProcessOptions): Promise<ConductorProcess> {
  const { mode, config, kube, logger } = options;
  const stops: Array<[string, () => Promise<void>]> = [];
  const readiness: ReadinessCheck[] = [];
  const metrics = new GrpcMetrics();
  let failure: Promise<string> = new Promise(() => {});
  let grpc: RunningGrpcServer | undefined;
  let admin: RunningAdminServer | undefined;
  let auth: HubAuth | undefined;
  const stop = async () => {
    for (const [what, run] of stops.reverse().splice(0)) {
      await run().catch((err: unknown) => logger.warn(`${what} failed during shutdown`, { error: String(err) }));
    }
  };
  try {
    if (NEEDS_KUBE.has(mode) && kube === undefined) throw new ConfigError(`--mode ${mode} needs Kubernetes access: --kubeconfig, KUBECONFIG or in-cluster`);
    if (mode === "all" && kube === undefined) logger.warn("no Kubernetes access: the kube route, the registration services and the consumer controller are off");
    if (kube !== undefined) logger.info("Kubernetes access", { server: kube.server, from: kube.origin });
    // Agents are authenticated and authorized whenever they are served over TLS (README "Security").
    const servesAgents = mode === "all" || mode === "router";
    if (servesAgents && options.tls !== undefined) {
      if (config.grpc.insecureNoAuth) throw new ConfigError("--insecure-no-auth (insecure_no_auth) is refused when TLS is configured");
      if (kube === undefined) {
        throw new ConfigError("TLS is configured, so agents are authenticated (TokenReview) and authorized (SubjectAccessReview) on the hub: "
          + "this needs the hub's Kubernetes API (--kubeconfig, KUBECONFIG or in-cluster)");
      }
    }

    // Maestro's database.
    let sql: Awaited<ReturnType<typeof openMaestroDatabase>> | undefined;
    const consumersOverRest = options.maestro !== undefined;
    const noDatabase = mode === "all" && config.database.kind === "embedded" && options.embeddedDatabase === false;
    if (noDatabase) logger.warn("no database configured (db_config or DATABASE_URL): the maestro route is off, and the consumer controller unless --maestro-url");
    if (NEEDS_DATABASE.has(mode) && !noDatabase && !(mode === "consumer-controller" && consumersOverRest)) {
      let connection: DatabaseConnection;
      if (config.database.kind === "external") {
        connection = config.database;
        logger.info("using an external database", { database: describeDatabase(connection), from: config.database.origin });
      } else {
        if (mode === "consumer-controller") throw new ConfigError("--mode consumer-controller needs Maestro's database (db_config or DATABASE_URL) or --maestro-url");
        const embedded = await startEmbeddedDatabase({ dataDir: config.database.dataDir, logger });
        stops.push(["embedded PostgreSQL stop", () => embedded.stop()]);
        failure = embedded.exited.then(() => "embedded PostgreSQL exited");
        connection = embedded.connection;
      }
      const db = await openMaestroDatabase({ database: connection, logger });
      stops.push(["database client close", () => db.close()]);
      readiness.push({ name: "database", check: () => db.ping().then(() => ({ ok: true }), (err: unknown) => ({ ok: false, detail: String(err) })) });
      sql = db;
    }

    // Backends by data type.
    const backends = new Map<string, Backend>();
    let hub: HubServices | undefined;
    let maestro: MaestroWorkBackend | undefined;
    if (kube !== undefined && (mode === "all" || mode === "work-service")) {
      hub = createHubServices({ kubeConfig: kube.kubeConfig, logger });
      for (const { dataType, backend } of hub.backends) backends.set(dataType, backend);
      const services = hub;
      readiness.push({ name: "informers", check: () => ({ ok: services.ready, detail: "initial lists not complete" }) });
    }
    if (sql !== undefined && (mode === "all" || mode === "db-service")) {
      maestro = new MaestroWorkBackend({ sql: sql.sql, logger });
      const source = maestro;
      readiness.push({ name: "spec-delivery", check: () => ({ ok: source.ready, detail: "LISTEN events not started" }) });
    }
    if (mode === "all") {
      backends.set(DataTypes.manifestBundles, new SourceRouter({ ...(hub && { kube: backends.get(DataTypes.manifestBundles)! }), ...(maestro && { maestro }) }));
    } else if (mode === "db-service" && maestro !== undefined) {
      backends.set(DataTypes.manifestBundles, maestro);
    } else if (mode === "router") {
      for (const [dataType, backend] of remoteBackends(options, readiness, stops)) backends.set(dataType, backend);
    }

    // The gRPC server: agents (CloudEventService) or the router (BackendService).
    let broker: Broker | undefined;
    let service: BackendServiceHandle | undefined;
    if (mode === "all" || mode === "router") {
      broker = new Broker({
        heartbeatIntervalMs: config.broker.heartbeatDisabled ? 0 : config.broker.heartbeatIntervalMs,
        queueCapacity: config.broker.queueCapacity,
        maxSendBytes: config.grpc.maxSendMessageSize,
        logger,
      });
      for (const [dataType, backend] of backends) broker.registerBackend(dataType, backend);
    }
    const interceptors: Interceptor[] = [metrics.interceptor()];
    if (broker !== undefined) {
      if (options.tls !== undefined && kube !== undefined) {
        auth = new HubAuth({ reviewer: new KubeHubReviewer(kube.kubeConfig), cacheTtlMs: config.grpc.authCacheTtlMs, logger });
        interceptors.push(createAuthInterceptor(auth));
        logger.info("agents are authenticated (bearer token by TokenReview, else client certificate) and authorized (SubjectAccessReview)", { reviewCacheTtlMs: config.grpc.authCacheTtlMs });
      } else if (config.grpc.insecureNoAuth) {
        logger.warn("AUTHENTICATION AND AUTHORIZATION ARE OFF (--insecure-no-auth): any client that reaches the gRPC port can read and write every cluster's objects; for local development only", { host: config.grpc.host });
      } else {
        logger.warn("AUTHENTICATION AND AUTHORIZATION ARE OFF: gRPC is served without TLS (h2c), so agents cannot present credentials and any client that reaches the port can read and write every cluster's objects; "
          + "configure tls_cert_file, tls_key_file and client_ca_file (with Kubernetes access) to turn them on, or pass --insecure-no-auth to acknowledge a development set-up", { host: config.grpc.host });
      }
    }
    if (mode !== "consumer-controller") {
      grpc = await startGrpcServer({
        config: config.grpc,
        ...(broker === undefined
          ? { services: { names: [BackendService.typeName], register: (router) => void (service = registerBackendService(router, { backends, logger })) } }
          : { broker }),
        ...(options.tls === undefined ? {} : { tls: options.tls }),
        interceptors,
        onConnection: (session) => metrics.trackConnection(session),
        onClose: () => service?.close(),
        logger,
      });
      const server = grpc;
      stops.push(["gRPC server close", () => server.close()]);
    }

    // Start producers once their sinks are attached.
    if (maestro !== undefined) {
      await maestro.start();
      const source = maestro;
      stops.push(["spec delivery stop", () => source.stop()]);
    }
    if (hub !== undefined) {
      const services = hub;
      void services.start().catch((err: unknown) => logger.error("hub informers failed to start", { error: String(err) }));
      stops.push(["informers stop", () => services.stop()]);
    }
    if ((sql !== undefined || consumersOverRest) && kube !== undefined && (mode === "all" || mode === "consumer-controller")) {
      const store = options.maestro === undefined
        ? { sql: sql!.sql }
        : { maestro: { baseUrl: options.maestro.url, ...(options.maestro.token !== undefined && { token: options.maestro.token }) } };
      logger.info("consumer controller", { consumers: options.maestro === undefined ? "Maestro's database" : `Maestro's REST API at ${options.maestro.url}` });
      const controller = new ConsumerController({ ...store, logger });
      const watch = watchManagedClusters(kube.kubeConfig, controller, { logger });
      let listed = false;
      void watch.ready.then(() => (listed = true));
      readiness.push({ name: "managedclusters", check: () => ({ ok: listed, detail: "initial list not complete" }) });
      stops.push(["consumer controller stop", async () => {
        await watch.stop();
        await controller.stop();
      }]);
    }
    // The admin port goes last so that /readyz never reports a process half set up; it stops first.
    if (options.admin !== undefined) {
      const streams = broker === undefined ? undefined : () => broker.streams();
      admin = await startAdminServer({ ...options.admin, registry: metrics.registry, readiness, ...(streams && { streams }) });
      const running = admin;
      stops.push(["admin server close", () => running.close()]);
      logger.info("admin server listening", { url: admin.url });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  // The gRPC server must stop first (no new agent requests), then the rest in reverse order.
  const ordered = async () => {
    const first = stops.findIndex(([what]) => what === "gRPC server close");
    if (first >= 0) {
      const [[what, run]] = stops.splice(first, 1) as [[string, () => Promise<void>]];
      await run().catch((err: unknown) => logger.warn(`${what} failed during shutdown`, { error: String(err) }));
    }
    await stop();
  };
  let stopping: Promise<void> | undefined;
  return { grpc, admin, auth, failure, stop: () => (stopping ??= ordered()) };
}

/** Router mode: every hub data type from the work service, manifestbundles from both sources. */
function remoteBackends(options: ConductorProcessOptions, readiness: ReadinessCheck[], stops: Array<[string, () => Promise<void>]>): Map<string, Backend> {
  const { workService, dbService } = options.remotes ?? {};
  if (workService === undefined && dbService === undefined) {
    throw new ConfigError("--mode router needs --work-service-url and/or --db-service-url");
  }
  const remote = (url: string, name: string, dataType: string) => {
    const backend = new RemoteBackend({ transport: createGrpcTransport({ baseUrl: url }), dataType, name, logger: options.logger });
    readiness.push({ name: `${name} ${dataType}`, check: () => ({ ok: backend.watching, detail: `no spec watch on ${url}` }) });
    stops.push([`${name} watch close`, () => Promise.resolve(backend.close())]);
    return backend;
  };
  const out = new Map<string, Backend>();
  if (workService !== undefined) {
    for (const dataType of Object.values(DataTypes)) {
      if (dataType !== DataTypes.manifestBundles) out.set(dataType, remote(workService, "work-service", dataType));
    }
  }
  out.set(DataTypes.manifestBundles, new SourceRouter({
    ...(workService && { kube: remote(workService, "work-service", DataTypes.manifestBundles) }),
    ...(dbService && { maestro: remote(dbService, "db-service", DataTypes.manifestBundles) }),
  }));
  return out;
}
