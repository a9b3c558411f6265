import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { compressionGzip, createGrpcTransport } from "@connectrpc/connect-node";
import { CloudEventService, DataTypes } from "@ocm-conductor/protocol";
import { Broker, MemoryWorkBackend } from "@ocm-conductor/router";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig } from "../src/config.js";
import { startGrpcServer, type RunningGrpcServer } from "../src/transport/grpc-server.js";
import { agentMessage } from "./support.js";

const dir = mkdtempSync(join(tmpdir(), "conductor-tls-"));
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
const pem = (name: string) => readFileSync(join(dir, name));

function issue(name: string, subject: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.csr`);
  openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
    "-out", `${name}.crt`, "-extfile", `${name}.ext`);
}

let server: RunningGrpcServer;
let works: MemoryWorkBackend;

beforeAll(async () => {
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca", "-keyout", "ca.key", "-out", "ca.crt");
  issue("server", "/CN=conductor", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  issue("agent", "/O=system:open-cluster-management:c1/CN=system:open-cluster-management:c1:agent", "extendedKeyUsage=clientAuth\n");
  const broker = new Broker({ heartbeatIntervalMs: 0 });
  works = new MemoryWorkBackend("kube");
  broker.registerBackend(DataTypes.manifestBundles, works);
  server = await startGrpcServer({
    config: { ...defaultConfig().grpc, port: 0, tlsMinVersion: "TLSv1.2" },
    broker,
    tls: { key: pem("server.key"), cert: pem("server.crt"), ca: pem("ca.crt") },
  });
}, 60_000);

afterAll(async () => {
  await server?.close(1000);
  rmSync(dir, { recursive: true, force: true });
});

function client(options: { cert?: boolean; gzip?: boolean } = {}) {
  const transport = createGrpcTransport({
    baseUrl: server.url,
    nodeOptions: {
      ca: pem("ca.crt"),
      minVersion: "TLSv1.3",
      maxVersion: "TLSv1.3", // what sdk-go agents offer (protocol.md §10.1)
      ...(options.cert === true ? { cert: pem("agent.crt"), key: pem("agent.key") } : {}),
    },
    ...(options.gzip === true ? { sendCompression: compressionGzip } : {}),
  });
  return createClient(CloudEventService, transport);
}

const status = () => agentMessage("io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request", "c1",
  { resourceid: "u1", resourceversion: 1 }, { conditions: null, padding: "x".repeat(4096) });

describe("TLS transport", () => {
  it("serves TLS 1.3 clients without a client certificate (token-only bootstrap agents)", async () => {
    await client().publish({ event: status() });
    expect(works.received).toHaveLength(1);
  });

  it("accepts an optional client certificate signed by the client CA", async () => {
    await client({ cert: true }).publish({ event: status() });
    expect(works.received.length).toBeGreaterThanOrEqual(1);
  });

  it("accepts gzip-compressed requests", async () => {
    const before = works.received.length;
    await client({ gzip: true }).publish({ event: status() });
    expect(works.received).toHaveLength(before + 1);
  });

  it("negotiates ALPN h2 and refuses TLS 1.1", async () => {
    const session = http2.connect(server.url, { ca: pem("ca.crt") });
    const protocol = await new Promise<string | false | undefined>((resolve, reject) => {
      session.once("connect", () => resolve(session.alpnProtocol));
      session.once("error", reject);
    });
    session.destroy();
    expect(protocol).toBe("h2");
    const old = http2.connect(server.url, { ca: pem("ca.crt"), maxVersion: "TLSv1.1", minVersion: "TLSv1.1" });
    const err = await new Promise<Error>((resolve) => old.once("error", resolve));
    old.destroy();
    expect(err.message).toMatch(/protocol|version|ssl|tls/i);
  });
});
