import { createServer, type Http2Server, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { BackendService, DataTypes, Extension, newEvent, type CloudEvent } from "@ocm-conductor/protocol";
import { afterEach, describe, expect, it } from "vitest";
import type { IncompleteList } from "./backend.js";
import { BackendError } from "./backend-error.js";
import { registerBackendService, type BackendServiceHandle } from "./backend-service.js";
import { MemoryWorkBackend } from "./memory-backend.js";
import { RemoteBackend } from "./remote-backend.js";
import { SourceRouter } from "./source-router.js";
import { eventually } from "@ocm-conductor/test-harness";

// The split deployment's internal API over a real HTTP/2 socket on loopback: a "backend process"
// (connect-node server + backendServiceImpl) and the router's RemoteBackend.

const bundle = { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "default" } }] };
const context = { signal: new AbortController().signal };

interface BackendProcess {
  server: Http2Server;
  sessions: Set<ServerHttp2Session>;
  service: BackendServiceHandle;
  port: number;
}
const running: BackendProcess[] = [];
const remotes: RemoteBackend[] = [];

async function serveBackend(backends: Map<string, ConstructorParameters<typeof SourceRouter>[0]["kube"] & object>, port = 0): Promise<BackendProcess> {
  let service!: BackendServiceHandle;
  const server = createServer(connectNodeAdapter({ routes: (router) => (service = registerBackendService(router, { backends })) }));
  const sessions = new Set<ServerHttp2Session>();
  server.on("session", (s: ServerHttp2Session) => (sessions.add(s), s.once("close", () => sessions.delete(s))));
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const proc = { server, sessions, service, port: (server.address() as AddressInfo).port };
  running.push(proc);
  return proc;
}

async function stop(proc: BackendProcess): Promise<void> {
  proc.service.close();
  for (const session of proc.sessions) session.destroy();
  await new Promise<void>((resolve) => proc.server.close(() => resolve()));
}

function remote(port: number, dataType = DataTypes.manifestBundles): RemoteBackend {
  const backend = new RemoteBackend({
    transport: createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }),
    dataType, name: "db-service", retryMinMs: 50, retryMaxMs: 200, callTimeoutMs: 2000,
  });
  remotes.push(backend);
  return backend;
}

/** A sink that records what reaches the router's broker. */
function recordingSink() {
  const published: CloudEvent[] = [];
  const resyncs: string[] = [];
  return { published, resyncs, sink: { publish: (e: CloudEvent) => (published.push(e), 1), resyncAll: (dataType: string) => void resyncs.push(dataType) } };
}

afterEach(async () => {
  remotes.splice(0).forEach((r) => r.close());
  await Promise.all(running.splice(0).map(stop));
});

const status = (uid: string, originalSource = "maestro") =>
  newEvent({
    type: `${DataTypes.manifestBundles}.status.update_request`, source: "c1-work-agent", clusterName: "c1", originalSource,
    extensions: { [Extension.resourceId]: uid, [Extension.resourceVersion]: 1, [Extension.sequenceId]: "1" },
    data: { conditions: [{ type: "Applied", status: "True" }] },
  });

describe("RemoteBackend ⇄ backendServiceImpl", () => {
  it("lists, handles statuses and streams spec events across processes", async () => {
    const works = new MemoryWorkBackend("maestro");
    const proc = await serveBackend(new Map([[DataTypes.manifestBundles, works]]));
    const backend = remote(proc.port);
    const { sink, published, resyncs } = recordingSink();
    backend.attach(sink);
    await eventually(() => backend.watching, 5000, "watch");
    expect(resyncs).toEqual([DataTypes.manifestBundles]); // agents resync once the watch is open

    const work = works.create("c1", "w1", bundle);
    await eventually(() => published.length === 1, 5000, "spec event over the watch");
    expect(published[0]!.extensions[Extension.resourceId]).toBe(work.uid);

    const listed = (await backend.list({ clusterName: "c1", dataType: DataTypes.manifestBundles }, context.signal)) as CloudEvent[];
    expect(listed.map((e) => e.extensions[Extension.resourceId])).toEqual([work.uid]);
    expect(listed[0]!.data).toEqual(published[0]!.data);

    await backend.handle(status(work.uid), { identity: { user: "agent", groups: ["g"] }, signal: context.signal });
    expect(works.get(work.uid)?.status?.resourceVersion).toBe(1);
  });

  it("passes the backend's refusals through as the same Kubernetes status", async () => {
    const proc = await serveBackend(new Map([[DataTypes.manifestBundles, new MemoryWorkBackend("maestro")]]));
    const spec = newEvent({ type: `${DataTypes.manifestBundles}.spec.create_request`, source: "x", clusterName: "c1" });
    const err = await remote(proc.port).handle(spec, context).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe("BadRequest");
    expect((err as BackendError).message).toBe("unsupported action spec.create_request");
  });

  it("reports an incomplete list as incomplete", async () => {
    const router = new SourceRouter({ kube: new MemoryWorkBackend("kube"), maestro: { list: () => Promise.reject(new Error("db down")), handle: () => Promise.resolve() } });
    const proc = await serveBackend(new Map([[DataTypes.manifestBundles, router]]));
    const listed = (await remote(proc.port).list({ clusterName: "c1", dataType: DataTypes.manifestBundles }, context.signal)) as IncompleteList;
    expect(listed.incomplete).toBe("failed to list maestro resources: db down");
  });

  it("answers ServiceUnavailable while the backend is down, and resyncs agents when its watch is back", async () => {
    const works = new MemoryWorkBackend("maestro");
    let proc = await serveBackend(new Map([[DataTypes.manifestBundles, works]]));
    const port = proc.port;
    const backend = remote(port);
    const { sink, published, resyncs } = recordingSink();
    backend.attach(sink);
    await eventually(() => backend.watching, 5000, "watch");
    await stop(proc);
    running.splice(running.indexOf(proc), 1);
    await eventually(() => !backend.watching, 5000, "watch lost");
    const err = await backend.handle(status("x"), context).catch((e: unknown) => e);
    expect((err as BackendError).code).toBe("ServiceUnavailable");
    await expect(backend.list({ clusterName: "c1", dataType: DataTypes.manifestBundles }, context.signal)).rejects.toBeInstanceOf(BackendError);

    works.create("c1", "made-while-down", bundle); // nobody watches: lost, hence the resync below
    proc = await serveBackend(new Map([[DataTypes.manifestBundles, works]]), port);
    await eventually(() => resyncs.length === 2, 10_000, "a resync after the watch is re-established");
    works.create("c1", "after", bundle);
    await eventually(() => published.some((e) => e.data !== undefined && JSON.stringify(e.extensions[Extension.metadata]).includes("after")), 5000, "new events");
  });

  it("refuses hostile requests with clear codes and keeps serving", async () => {
    const proc = await serveBackend(new Map([[DataTypes.manifestBundles, new MemoryWorkBackend("maestro")]]));
    const client = createClient(BackendService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${proc.port}` }));
    const code = (p: Promise<unknown>) => p.then(() => "ok" as const, (e: unknown) => ConnectError.from(e).code);
    expect(await code(client.handle({}))).toBe(Code.InvalidArgument);
    expect(await code(client.handle({ event: { id: "1", source: "s", specVersion: "1.0", type: "garbage", attributes: {} } }))).toBe(Code.InvalidArgument);
    expect(await code(client.list({ clusterName: "c1", dataType: "io.example.v1.unknown" }))).toBe(Code.NotFound);
    const watch = client.watchSpec({ dataTypes: ["io.example.v1.unknown"] });
    expect(await code((async () => { for await (const _ of watch) break; })())).toBe(Code.NotFound);
    expect(await code(client.list({ clusterName: "c1", dataType: DataTypes.manifestBundles }))).toBe("ok");
  });
});
