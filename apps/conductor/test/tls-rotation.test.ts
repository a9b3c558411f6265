/**
 * Serving certificate rotation without restart (issue #7): the TLS files are watched
 * (`watchTlsFiles`), and the server serves new files to new connections while existing streams go on.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type PeerCertificate } from "node:tls";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { readTlsFiles, watchTlsFiles } from "@ocm-conductor/hub-auth";
import { CloudEventService, DataTypes, type PbCloudEvent } from "@ocm-conductor/protocol";
import { Broker, MemoryWorkBackend, type Logger } from "@ocm-conductor/router";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig } from "../src/config.js";
import { startGrpcServer, type RunningGrpcServer } from "../src/transport/grpc-server.js";
import { issue, makeCa, pemOf, type TestCa } from "./auth-pki.js";
import { eventually, isHeartbeat } from "./support.js";

const STREAMS = 100;
let dir: string;
let live: string;
let ca1: TestCa;
let ca2: TestCa;
let server: RunningGrpcServer;
let works: MemoryWorkBackend;
const logged: Array<{ level: string; message: string }> = [];
const logger: Logger = {
  debug: () => {},
  info: (message) => void logged.push({ level: "info", message }),
  warn: (message) => void logged.push({ level: "warn", message }),
  error: (message) => void logged.push({ level: "error", message }),
};

/** The certificate a new TLS connection is served (ALPN h2, as agents connect). */
function servedCertificate(ca: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: server.port, ca: pemOf(ca), ALPNProtocols: ["h2"], servername: "localhost" }, () => {
      const cert = socket.getPeerCertificate();
      socket.end();
      resolve(cert);
    });
    socket.on("error", reject);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "conductor-rotation-"));
  live = join(dir, "live");
  mkdirSync(live);
  ca1 = makeCa(dir, "ca1");
  ca2 = makeCa(dir, "ca2");
  const first = issue(dir, ca1, "serving1", { subject: "/CN=conductor-1", usage: "server" });
  issue(dir, ca2, "serving2", { subject: "/CN=conductor-2", usage: "server" });
  copyFileSync(first.cert, join(live, "tls.crt"));
  copyFileSync(first.key, join(live, "tls.key"));
  const files = { certFile: join(live, "tls.crt"), keyFile: join(live, "tls.key") };
  const material = await readTlsFiles(files);
  const broker = new Broker({ heartbeatIntervalMs: 0 });
  works = new MemoryWorkBackend("kube");
  broker.registerBackend(DataTypes.manifestBundles, works);
  server = await startGrpcServer({
    config: { ...defaultConfig().grpc, port: 0 },
    broker,
    tls: { ...material, watch: (onChange) => watchTlsFiles(files, { current: material, onChange, intervalMs: 60_000, settleMs: 100, logger }) },
    logger,
  });
}, 60_000);

afterAll(async () => {
  await server?.close(1000);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe("serving certificate rotation", () => {
  it(`replacing the files while ${STREAMS} streams are open: new connections get the new certificate, existing streams go on`, async () => {
    expect((await servedCertificate(ca1.cert)).subject.CN).toBe("conductor-1");
    // 100 agents, each on its own connection, subscribed.
    const clients: Array<{ client: Client<typeof CloudEventService>; received: PbCloudEvent[]; ended: unknown; abort: AbortController }> = [];
    for (let i = 0; i < STREAMS; i++) {
      const transport = createGrpcTransport({ baseUrl: `https://localhost:${server.port}`, nodeOptions: { ca: pemOf(ca1.cert) } });
      clients.push({ client: createClient(CloudEventService, transport), received: [], ended: undefined, abort: new AbortController() });
    }
    const streams = clients.map((c, i) => (async () => {
      try {
        for await (const m of c.client.subscribe({ clusterName: `c${i}`, dataType: DataTypes.manifestBundles }, { signal: c.abort.signal })) c.received.push(m);
        c.ended = "ended";
      } catch (err) {
        c.ended = err;
      }
    })());
    await eventually(() => clients.filter((c) => c.received.some(isHeartbeat)).length === STREAMS, 30_000, "every stream's first heartbeat");
    expect(server.connectionCount()).toBeGreaterThanOrEqual(STREAMS);

    // A broken file is refused: the old certificate stays, an error is logged.
    writeFileSync(join(live, "tls.crt"), "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
    await eventually(() => logged.some((l) => l.level === "error" && /cannot be used/.test(l.message)), 10_000, "the error about the broken file");
    expect((await servedCertificate(ca1.cert)).subject.CN).toBe("conductor-1");

    // The rotation: new certificate and key (from another CA) replace the files.
    copyFileSync(join(dir, "serving2.key"), join(live, "tls.key"));
    copyFileSync(join(dir, "serving2.crt"), join(live, "tls.crt"));
    await eventually(async () => (await servedCertificate(ca2.cert).catch(() => undefined))?.subject.CN === "conductor-2", 10_000, "the new certificate on new connections", 100);
    expect(logged.some((l) => l.level === "info" && /TLS files reloaded/.test(l.message))).toBe(true);

    // New connections: a client that trusts only the new CA is served.
    const fresh = createClient(CloudEventService, createGrpcTransport({ baseUrl: `https://localhost:${server.port}`, nodeOptions: { ca: pemOf(ca2.cert) } }));
    const freshStream = (async () => {
      for await (const m of fresh.subscribe({ clusterName: "fresh", dataType: DataTypes.manifestBundles }, { signal: AbortSignal.timeout(10_000) })) return m;
      return undefined;
    })();
    expect(isHeartbeat((await freshStream)!)).toBe(true);

    // Existing streams continue: every one of them still receives its cluster's work.
    for (let i = 0; i < STREAMS; i++) works.create(`c${i}`, `work-${i}`, { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${i}`, namespace: "default" } }] });
    await eventually(() => clients.filter((c) => c.received.some((m) => !isHeartbeat(m))).length === STREAMS, 30_000, "the work on every existing stream");
    expect(clients.filter((c) => c.ended !== undefined)).toEqual([]);
    for (const c of clients) c.abort.abort();
    await Promise.all(streams);
  }, 120_000);
});
