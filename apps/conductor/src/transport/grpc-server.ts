import { setMaxListeners } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { kTlsPeer, tlsPeerOf } from "@ocm-conductor/hub-auth";
import { CloudEventService, Health, ServingStatus } from "@ocm-conductor/protocol";
import { kStreamReset, registerCloudEventService, silentLogger, type Broker, type Logger } from "@ocm-conductor/router";
import type { GrpcServerConfig } from "../config.js";
import { keepConnection } from "./connection-keeper.js";
import { HealthStatus, healthServiceImpl } from "./health-service.js";

/** PEM material for serving TLS. */
export interface TlsMaterial {
  key: string | Buffer;
  cert: string | Buffer;
  /** CA bundle for client certificates; when set, certificates are requested but not required. */
  ca?: string | Buffer;
  /**
   * Starts watching for new material (e.g. `watchTlsFiles` of @ocm-conductor/hub-auth): each call of
   * `onChange` replaces the served certificate and client CA for new connections (existing ones keep
   * theirs). Returns a function that stops watching; the server calls it when it closes.
   */
  watch?: (onChange: (material: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer }) => void) => () => void;
}

/** What {@link startGrpcServer} serves and how. */
export interface GrpcServerOptions {
  config: GrpcServerConfig;
  /** The broker agents talk to: serves `io.cloudevents.v1.CloudEventService` when given. */
  broker?: Broker;
  /** Further services, e.g. the internal BackendService of a split deployment's backend process. */
  services?: { names: string[]; register(router: ConnectRouter): void };
  /** TLS material; h2c (plaintext HTTP/2) when absent. */
  tls?: TlsMaterial;
  /** Connect interceptors, e.g. authentication and authorization (applied last-first). */
  interceptors?: Interceptor[];
  /** Called for every new HTTP/2 connection (e.g. to count it in metrics). */
  onConnection?: (session: http2.ServerHttp2Session) => void;
  /** Called when the server starts closing, before streams end (e.g. to end backend watches). */
  onClose?: () => void;
  logger?: Logger;
}

/** A listening conductor gRPC server. */
export interface RunningGrpcServer {
  readonly host: string;
  readonly port: number;
  /** `http://host:port` or `https://host:port`. */
  readonly url: string;
  readonly health: HealthStatus;
  /** Number of open HTTP/2 connections. */
  connectionCount(): number;
  /**
   * Stops gracefully: health turns NOT_SERVING, every Subscribe ends with `Unavailable`, each
   * connection gets GOAWAY, and connections still open after `graceMs` are destroyed.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves the CloudEvent service and `grpc.health.v1.Health` over HTTP/2 with connect-node, adding
 * what connect-node leaves out for a gRPC server (ecosystem.md §1): message size caps towards
 * agents, keepalive pings, max connection age, and a stream reset hook for stuck Subscribe streams.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { config, broker } = options;
  const logger = options.logger ?? silentLogger;
  const health = new HealthStatus([...(broker === undefined ? [] : [CloudEventService.typeName]), ...(options.services?.names ?? [])]);
  const shutdown = new AbortController();
  // connect links every call's signal to this one: one listener per open stream, by design.
  setMaxListeners(0, shutdown.signal);
  const handler = connectNodeAdapter({
    routes(router) {
      if (broker !== undefined) registerCloudEventService(router, broker);
      options.services?.register(router);
      router.service(Health, healthServiceImpl(health));
    },
    grpcWeb: false,
    connect: false,
    acceptCompression: [compressionGzip],
    readMaxBytes: config.maxReceiveMessageSize,
    writeMaxBytes: config.maxSendMessageSize,
    interceptors: options.interceptors ?? [],
    shutdownSignal: shutdown.signal,
    contextValues(req) {
      const values = createContextValues();
      if ("stream" in req) {
        const stream = req.stream;
        // ENHANCE_YOUR_CALM reads as ResourceExhausted in grpc-go: never CANCEL, which v2 agents
        // take as a local cancel and do not reconnect after (protocol.md §11 item 7).
        values.set(kStreamReset, () => {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
        });
      }
      // The connection's TLS socket, for the mTLS authenticator (undefined on h2c).
      values.set(kTlsPeer, tlsPeerOf(req));
      return values;
    },
  });
  const http2Options: http2.ServerOptions = {
    settings: { maxConcurrentStreams: config.maxConcurrentStreams },
    maxSessionMemory: 64,
  };
  // The client CA is always passed explicitly, so client certificates are verified against that
  // bundle only, never the system roots. A certificate is requested, not required (token clients),
  // and the handshake never fails on it: the authenticator reads `socket.authorized` itself.
  const secureContext = (material: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer }) => ({
    key: material.key,
    cert: material.cert,
    ...(material.ca === undefined ? {} : { ca: material.ca }),
    minVersion: config.tlsMinVersion,
  });
  const server = options.tls === undefined
    ? http2.createServer(http2Options, handler)
    : http2.createSecureServer({
        ...http2Options,
        ...secureContext(options.tls),
        ...(options.tls.ca === undefined ? {} : { requestCert: true, rejectUnauthorized: false }),
        ALPNProtocols: ["h2"],
        allowHTTP1: false,
        handshakeTimeout: config.connectionTimeoutMs,
      }, handler);
  let stopWatchingTls: (() => void) | undefined;
  if (options.tls?.watch !== undefined) {
    const secure = server as http2.Http2SecureServer;
    const hadCa = options.tls.ca !== undefined;
    stopWatchingTls = options.tls.watch((material) => {
      if (hadCa && material.ca === undefined) {
        logger.error("new TLS material has no client CA bundle; keeping the previous certificate");
        return;
      }
      try {
        secure.setSecureContext(secureContext(material));
        logger.info("serving a new TLS certificate to new connections");
      } catch (err) {
        logger.error("new TLS material refused; keeping the previous certificate", { error: (err as Error).message });
      }
    });
  }
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    options.onConnection?.(session);
    session.on("error", (err) => logger.debug("connection error", { error: err.message }));
    keepConnection(session, {
      pingIntervalMs: config.serverPingIntervalMs,
      pingTimeoutMs: config.serverPingTimeoutMs,
      maxConnectionAgeMs: config.maxConnectionAgeMs,
      maxConnectionAgeGraceMs: config.maxConnectionAgeGraceMs,
      onDeadPeer: () => logger.warn("closing connection: keepalive ping not answered", { timeoutMs: config.serverPingTimeoutMs }),
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `${options.tls === undefined ? "http" : "https"}://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  logger.info("gRPC server listening", { url, tls: options.tls !== undefined });
  let closing: Promise<void> | undefined;
  return {
    host: address.address,
    port: address.port,
    url,
    health,
    connectionCount: () => sessions.size,
    close(graceMs = 5_000) {
      closing ??= (async () => {
        stopWatchingTls?.();
        health.setAll(ServingStatus.NOT_SERVING);
        // Let health watchers write NOT_SERVING before their streams are ended.
        await new Promise((resolve) => setTimeout(resolve, 20));
        broker?.close();
        options.onClose?.();
        shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const session of sessions) session.close();
        const timer = setTimeout(() => sessions.forEach((s) => s.destroy()), graceMs);
        await closed;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
