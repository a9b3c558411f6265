import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { StreamSnapshot } from "@ocm-conductor/router";
import type { Registry } from "prom-client";
import { subscribersPage } from "./subscribers-page.js";

/** One readiness condition: `ok` false (with a reason) keeps `/readyz` at 503. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<{ ok: boolean; detail?: string }> | { ok: boolean; detail?: string };
}

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  registry: Registry;
  readiness: ReadinessCheck[];
  /** The live streams, when this process faces agents. */
  streams?: () => StreamSnapshot[];
}

/** A listening admin server. */
export interface RunningAdminServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

const READINESS_TIMEOUT_MS = 2_000;

/**
 * The operator's HTTP port: `/livez` answers from the process alone (a liveness probe that touches
 * PostgreSQL turned a database blip into Maestro's restart storm, anchors.md §1 item 8), `/readyz`
 * runs every readiness check (database, LISTEN, informers, remote backends) with a bound on each,
 * `/metrics` serves Prometheus, and `/debug/subscribers` lists the live agent streams as JSON or
 * as a small HTML page.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<RunningAdminServer> {
  const server: Server = createServer((req, res) => {
    handle(options, req, res).catch((err: unknown) => send(res, 500, "text/plain; charset=utf-8", `internal error: ${String(err)}\n`));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    url: `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function handle(options: AdminServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://admin");
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    return send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
  }
  switch (url.pathname) {
    case "/livez":
      return send(res, 200, "text/plain; charset=utf-8", "ok\n");
    case "/readyz": {
      const results = await Promise.all(options.readiness.map(async (c) => ({ name: c.name, ...(await bounded(c)) })));
      const ready = results.every((r) => r.ok);
      const lines = results.map((r) => `[${r.ok ? "+" : "-"}]${r.name} ${r.ok ? "ok" : `failed: ${r.detail ?? "not ready"}`}`);
      return send(res, ready ? 200 : 503, "text/plain; charset=utf-8", `${lines.join("\n")}${lines.length > 0 ? "\n" : ""}readyz check ${ready ? "passed" : "failed"}\n`);
    }
    case "/metrics":
      return send(res, 200, options.registry.contentType, await options.registry.metrics());
    case "/debug/subscribers": {
      const streams = options.streams?.() ?? [];
      const wantsJson = url.searchParams.get("format") === "json" || (req.headers.accept ?? "").includes("application/json");
      if (wantsJson) return send(res, 200, "application/json", `${JSON.stringify({ streams }, null, 2)}\n`);
      return send(res, 200, "text/html; charset=utf-8", subscribersPage(streams));
    }
    default:
      return send(res, 404, "text/plain; charset=utf-8", "not found\n");
  }
}

async function bounded(check: ReadinessCheck): Promise<{ ok: boolean; detail?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve(check.check()),
      new Promise<{ ok: boolean; detail: string }>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${READINESS_TIMEOUT_MS} ms` }), READINESS_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  } finally {
    clearTimeout(timer);
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : body);
}
