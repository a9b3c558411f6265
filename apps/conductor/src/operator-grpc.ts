/**
 * The cluster-manager operator's invocation of its gRPC server image, so that the conductor image can
 * be set as `ClusterManager.spec.serverConfiguration.imagePullSpec`: the operator's Deployment
 * (OCM `manifests/cluster-manager/management/grpc-server/deployment.yaml`) runs the image with
 * `args: ["/server", "grpc", "--server-config=/var/run/secrets/hub/grpc/config/config.yaml"]` (plus
 * `--kubeconfig=…` in hosted mode), mounts the serving certificate and client CA at the reference's
 * default paths, makes the root file system read-only (only `/tmp` is writable) and probes HTTPS
 * `:8443/healthz`. Its config ConfigMap is optional.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "@ocm-conductor/router";
import { parse as parseYaml } from "yaml";
import type { TlsMaterial } from "./transport/grpc-server.js";

/** The reference's default TLS files (hub-services.md §3.4), used when the config names none. */
export const OPERATOR_TLS_DEFAULTS = {
  tlsCertFile: "/var/run/secrets/hub/grpc/serving-cert/tls.crt",
  tlsKeyFile: "/var/run/secrets/hub/grpc/serving-cert/tls.key",
  clientCaFile: "/var/run/secrets/hub/grpc/ca/ca-bundle.crt",
} as const;

/** Where the operator's probes go: HTTPS `/healthz` on 8443. */
export const OPERATOR_HEALTHZ_PORT = 8443;

/** What the `grpc` command found in its config file before the usual parsing. */
export interface OperatorConfigFacts {
  /** False when the file does not exist (the operator's ConfigMap is optional). */
  exists: boolean;
  /** The file sets `grpc_config.server_bind_host` (else the conductor binds every interface, as Go does). */
  bindsHost: boolean;
  /** The file sets `grpc_config.tls_cert_file` (else the reference's default paths are used if present). */
  namesTls: boolean;
}

/** Reads only the facts the `grpc` command needs from the config file; parse errors are left to the full parser. */
export async function operatorConfigFacts(path: string | undefined): Promise<OperatorConfigFacts> {
  if (path === undefined || !existsSync(path)) return { exists: false, bindsHost: false, namesTls: false };
  let grpc: Record<string, unknown> = {};
  try {
    const doc = parseYaml(await readFile(path, "utf8")) as { grpc_config?: unknown } | null;
    if (doc?.grpc_config !== null && typeof doc?.grpc_config === "object") grpc = doc.grpc_config as Record<string, unknown>;
  } catch {
    // the full parser reports it with the key named
  }
  const set = (key: string) => grpc[key] !== undefined && grpc[key] !== null;
  return { exists: true, bindsHost: set("server_bind_host"), namesTls: set("tls_cert_file") };
}

/** The reference's default TLS files that exist on this machine, as `grpc_config` would name them. */
export function presentTlsDefaults(): Partial<Record<keyof typeof OPERATOR_TLS_DEFAULTS, string>> {
  const { tlsCertFile, tlsKeyFile, clientCaFile } = OPERATOR_TLS_DEFAULTS;
  if (!existsSync(tlsCertFile) || !existsSync(tlsKeyFile)) return {};
  return { tlsCertFile, tlsKeyFile, ...(existsSync(clientCaFile) && { clientCaFile }) };
}

/** A running `/healthz` listener. */
export interface HealthzServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /healthz` → 200 `ok` for the operator's liveness and readiness probes: over HTTPS with
 * the gRPC serving certificate (the kubelet does not verify it), or plain HTTP when the conductor
 * serves h2c. It reports the process alive, like `/livez` of the admin port: a probe that touched the
 * database caused Maestro's restart storm (anchors.md §2).
 */
export async function startHealthzServer(options: { tls: TlsMaterial | undefined; host: string; port: number; logger: Logger }): Promise<HealthzServer> {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && (path === "/healthz" || path === "/livez" || path === "/readyz")) {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    }
  };
  const server: Server = options.tls === undefined
    ? createHttpServer(handler)
    : createHttpsServer({ cert: options.tls.cert, key: options.tls.key, minVersion: "TLSv1.2" }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `${options.tls === undefined ? "http" : "https"}://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}/healthz`;
  options.logger.info("healthz listening", { url });
  return {
    url,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
