import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConnectionReusingKubeConfig } from "./connection-reusing-kube-config.js";

// A tiny HTTPS "API server" that counts TLS handshakes: client-node 1.4 makes one per API call.
const dir = mkdtempSync(join(tmpdir(), "kc-reuse-"));
let server: Server;
let handshakes = 0;
let url = "";

beforeAll(async () => {
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "key.pem", "-out", "cert.pem"], { cwd: dir, stdio: "pipe" });
  server = createServer({ key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) }, (_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "default" } }));
  });
  server.on("secureConnection", () => handshakes++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

function load<T extends KubeConfig>(kc: T): T {
  kc.loadFromOptions({
    clusters: [{ name: "c", server: url, caData: readFileSync(join(dir, "cert.pem")).toString("base64"), skipTLSVerify: false }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return kc;
}

async function handshakesFor(kc: KubeConfig, calls: number): Promise<number> {
  const before = handshakes;
  const api = kc.makeApiClient(CoreV1Api);
  for (let i = 0; i < calls; i++) await api.readNamespace({ name: "default" });
  return handshakes - before;
}

describe("ConnectionReusingKubeConfig", () => {
  it("makes one TLS handshake for many API calls, where client-node makes one per call", async () => {
    expect(await handshakesFor(load(new KubeConfig()), 5)).toBe(5);
    const reusing = load(new ConnectionReusingKubeConfig());
    expect(await handshakesFor(reusing, 5)).toBe(1);
    reusing.destroy();
  });
});
