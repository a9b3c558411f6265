/**
 * The conductor image run the way the cluster-manager operator runs its gRPC server: args
 * `/server grpc --server-config=FILE --kubeconfig=FILE` (hosted mode adds the kubeconfig), TLS from
 * the config file, HTTPS `/healthz` for the probes, no database. Real binary, real kube-apiserver.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CloudEventService, Health, ServingStatus } from "@ocm-conductor/protocol";
import { getFreePort, startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issue, makeCa, pemOf } from "./auth-pki.js";
import { agentMessage, eventually } from "./support.js";

const bin = fileURLToPath(new URL("../bin/conductor.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "conductor-operator-grpc-"));
let cp: ControlPlane;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  cp = await startControlPlane();
}, 180_000);

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[]) {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DATABASE_URL: "", KUBECONFIG: "" } });
  children.add(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => (children.delete(child), resolve(code))));
  const line = (msg: string) => eventually(() => stderr.split("\n").find((l) => l.includes(`"msg":"${msg}"`)), 60_000, `log line "${msg}"\n${stderr}`)
    .then((l) => JSON.parse(l) as Record<string, unknown>);
  return { child, exited, line, err: () => stderr };
}

const getHealthz = (port: number) => new Promise<{ status: number; body: string }>((resolve, reject) => {
  request({ host: "127.0.0.1", port, path: "/healthz", rejectUnauthorized: false }, (res) => {
    let body = "";
    res.on("data", (d) => (body += d));
    res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
  }).on("error", reject).end();
});

describe("conductor as the operator's gRPC server image (/server grpc …)", () => {
  it("serves TLS gRPC on every interface with authentication, HTTPS /healthz, no database, and stops on SIGTERM", async () => {
    const ca = makeCa(dir, "ca");
    const serving = issue(dir, ca, "serving", { subject: "/CN=grpc-server", usage: "server" });
    const [grpcPort, healthzPort] = [await getFreePort(), await getFreePort()];
    const config = join(dir, "config.yaml");
    writeFileSync(config, [
      "grpc_config:",
      `  server_bind_port: "${grpcPort}"`,
      `  tls_cert_file: ${serving.cert}`,
      `  tls_key_file: ${serving.key}`,
      `  client_ca_file: ${ca.cert}`,
      "",
    ].join("\n"));
    const p = run(["/server", "grpc", `--server-config=${config}`, `--kubeconfig=${cp.kubeconfigPath}`, "--healthz-port", String(healthzPort), "--admin-port", "0"]);
    const listening = await p.line("gRPC server listening");
    expect(String(listening.url)).toMatch(/^https:\/\/0\.0\.0\.0:\d+$/);
    expect(p.err()).toContain("no database configured");
    expect(p.err()).not.toContain("embedded PostgreSQL");

    expect((await p.line("healthz listening")).url).toBe(`https://0.0.0.0:${healthzPort}/healthz`);
    expect(await getHealthz(healthzPort)).toEqual({ status: 200, body: "ok" });
    const health = createClient(Health, createGrpcTransport({ baseUrl: `https://127.0.0.1:${grpcPort}`, nodeOptions: { ca: pemOf(ca.cert) } }));
    await eventually(async () => (await health.check({})).status === ServingStatus.SERVING, 30_000, "gRPC health SERVING");
    // Authentication is on (TLS + Kubernetes access): an agent without credentials gets nothing.
    const agent = createClient(CloudEventService, createGrpcTransport({ baseUrl: `https://127.0.0.1:${grpcPort}`, nodeOptions: { ca: pemOf(ca.cert) } }));
    const refused = await agent.publish({ event: agentMessage("io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request", "cluster1") }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unauthenticated);

    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  }, 120_000);

  it("refuses unknown flags with exit 2, and TLS without Kubernetes access with exit 2", async () => {
    const bad = run(["/server", "grpc", "--bogus"]);
    expect(await bad.exited).toBe(2);
    expect(bad.err()).toMatch(/Unknown option '--bogus'/);

    // A missing config file (the operator's ConfigMap is optional) means defaults; TLS then needs kube access.
    const ca = makeCa(dir, "ca2");
    const serving = issue(dir, ca, "serving2", { subject: "/CN=grpc-server", usage: "server" });
    const config = join(dir, "tls-only.yaml");
    writeFileSync(config, `grpc_config:\n  server_bind_port: "0"\n  tls_cert_file: ${serving.cert}\n  tls_key_file: ${serving.key}\n`);
    const noKube = run(["grpc", `--server-config=${config}`, "--healthz-port", "0", "--admin-port", "0"]);
    expect(await noKube.exited).toBe(2);
    expect(noKube.err()).toMatch(/Kubernetes/);
  }, 60_000);
});
