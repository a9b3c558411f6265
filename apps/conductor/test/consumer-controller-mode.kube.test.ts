/**
 * `--mode consumer-controller` with `--maestro-url`: the process watches a real kube-apiserver's
 * ManagedClusters and creates (and, once the cluster is gone, deletes) consumers through Maestro's
 * REST API. Maestro itself is a small local HTTP server answering as Maestro's consumer handlers do
 * (maestro-db.md §7: 201 on create, a name search, 204 on delete); building the real Maestro server
 * needs its migration tooling and is out of scope here — the database path of the controller is
 * covered against real PostgreSQL in packages/consumer-controller and test/e2e.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig } from "../src/config.js";
import { startConductorProcess, type ConductorProcess } from "../src/conductor-process.js";
import { resolveKubeAccess } from "../src/kube-access.js";
import { createJsonLogger } from "../src/logger.js";
import { eventually } from "./support.js";

const MANAGED_CLUSTERS = { group: "cluster.open-cluster-management.io", version: "v1", plural: "managedclusters" } as const;

/** What the fake Maestro saw and holds. */
const requests: Array<{ method: string; url: string; authorization: string | undefined; body: string }> = [];
const consumers = new Map<string, { id: string; name: string }>();
let maestro: Server;
let maestroUrl: string;
let cp: ControlPlane;
let conductor: ConductorProcess | undefined;

const read = (req: IncomingMessage) => new Promise<string>((resolve) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => resolve(body));
});

beforeAll(async () => {
  maestro = createServer(async (req, res) => {
    const body = await read(req);
    requests.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, body });
    const url = new URL(req.url!, "http://maestro");
    const send = (status: number, json?: unknown) => {
      res.writeHead(status, { "content-type": "application/json" }).end(json === undefined ? undefined : JSON.stringify(json));
    };
    if (url.pathname === "/api/maestro/v1/consumers" && req.method === "GET") {
      const name = /^name='(.*)'$/.exec(url.searchParams.get("search") ?? "")?.[1];
      const items = [...consumers.values()].filter((c) => c.name === name);
      return send(200, { kind: "ConsumerList", page: 1, size: items.length, total: items.length, items });
    }
    if (url.pathname === "/api/maestro/v1/consumers" && req.method === "POST") {
      const { name } = JSON.parse(body) as { name: string };
      const consumer = { id: randomUUID(), kind: "Consumer", name, created_at: new Date().toISOString(), updated_at: new Date().toISOString() };
      consumers.set(consumer.id, consumer);
      return send(201, consumer);
    }
    const id = /^\/api\/maestro\/v1\/consumers\/([^/]+)$/.exec(url.pathname)?.[1];
    if (id !== undefined && req.method === "DELETE") return send(consumers.delete(id) ? 204 : 404);
    return send(404, { kind: "Error", code: "maestro-7", reason: "not found" });
  });
  await new Promise<void>((resolve) => maestro.listen(0, "127.0.0.1", resolve));
  maestroUrl = `http://127.0.0.1:${(maestro.address() as AddressInfo).port}`;
  cp = await startControlPlane();
}, 180_000);

afterAll(async () => {
  await conductor?.stop();
  await cp?.stop();
  await new Promise((resolve) => maestro?.close(resolve));
});

describe("conductor serve --mode consumer-controller --maestro-url", () => {
  it("needs no database, and creates and deletes consumers through Maestro's REST API with the token", async () => {
    const config = defaultConfig();
    // Even an unusable database setting is not touched in this mode with a Maestro URL.
    config.database = { kind: "embedded", dataDir: "/nonexistent/never-created" };
    conductor = await startConductorProcess({
      mode: "consumer-controller",
      config,
      kube: resolveKubeAccess(cp.kubeconfigPath, {}),
      admin: { host: "127.0.0.1", port: 0 },
      maestro: { url: maestroUrl, token: "t0ken" },
      logger: createJsonLogger("error"),
    });
    expect(conductor.grpc).toBeUndefined();
    const admin = conductor.admin!.url;
    await eventually(async () => (await fetch(`${admin}/readyz`)).status === 200, 30_000, "/readyz 200");

    const api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    await api.createClusterCustomObject({ ...MANAGED_CLUSTERS, body: {
      apiVersion: "cluster.open-cluster-management.io/v1", kind: "ManagedCluster", metadata: { name: "rest-1" }, spec: { hubAcceptsClient: true },
    } });
    await api.patchClusterCustomObjectStatus({ ...MANAGED_CLUSTERS, name: "rest-1", body: { status: { conditions: [{
      type: "ManagedClusterJoined", status: "True", reason: "Test", message: "joined", lastTransitionTime: new Date().toISOString(),
    }] } } }, setHeaderOptions("Content-Type", PatchStrategy.MergePatch));
    await eventually(() => [...consumers.values()].some((c) => c.name === "rest-1"), 30_000, "consumer rest-1 created over REST");
    const post = requests.find((r) => r.method === "POST");
    expect(JSON.parse(post!.body)).toEqual({ name: "rest-1" });
    expect(requests.every((r) => r.authorization === "Bearer t0ken")).toBe(true);

    await api.deleteClusterCustomObject({ ...MANAGED_CLUSTERS, name: "rest-1" });
    await eventually(() => consumers.size === 0, 30_000, "consumer rest-1 deleted over REST");
    expect(requests.some((r) => r.method === "DELETE" && r.url.startsWith("/api/maestro/v1/consumers/"))).toBe(true);
  }, 120_000);
});
