import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { defaultConfig, startGrpcServer, type RunningGrpcServer } from "@ocm-conductor/conductor";
import { DataTypes, MANIFEST_WORK_CLEANUP_FINALIZER } from "@ocm-conductor/protocol";
import { Broker } from "@ocm-conductor/router";
import { AGENTSIM_VERSIONS, eventually, startAgentSim, startControlPlane, type AgentSimEvent, type ControlPlane } from "@ocm-conductor/test-harness";
import { KubeWorkBackend, MANIFEST_WORKS, type ManifestWork } from "@ocm-conductor/work-service";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The kube route end to end: a ManifestWork created on a real hub API server reaches real sdk-go
// work agents of each generation, their statuses land on the hub object, and a deletion completes
// through the agent's confirmation and the finalizer.

let cp: ControlPlane;
let works: KubeWorkBackend;
let server: RunningGrpcServer;
let api: CustomObjectsApi;
let broker: Broker;

beforeAll(async () => {
  cp = await startControlPlane();
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  broker = new Broker({ heartbeatIntervalMs: 1000 });
  works = new KubeWorkBackend({ kubeConfig: cp.kubeConfig });
  broker.registerBackend(DataTypes.manifestBundles, works);
  await works.start();
  server = await startGrpcServer({ config: { ...defaultConfig().grpc, port: 0 }, broker });
}, 180_000);

afterAll(async () => {
  await server?.close(1000);
  await works?.stop();
  await cp?.stop();
});

describe.each(AGENTSIM_VERSIONS)("sdk-go %s work agent, kube source", (version) => {
  it("applies a hub ManifestWork, reports status to it, and completes its deletion", async () => {
    const cluster = `kube-${version.replaceAll(".", "-")}`;
    await cp.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: cluster } } });
    const agents = await startAgentSim({ version, server: `127.0.0.1:${server.port}`, clusters: [cluster], reconnectDelay: "1s", duration: "5m" });
    try {
      const target = { ...MANIFEST_WORKS, namespace: cluster, name: "work1" };
      const get = async () => (await api.getNamespacedCustomObject(target)) as ManifestWork;
      await eventually(() => broker.subscribedClusters().includes(cluster), 30_000, "the agent to subscribe");
      const created = (await api.createNamespacedCustomObject({
        ...MANIFEST_WORKS, namespace: cluster,
        body: {
          apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork", metadata: { name: "work1", namespace: cluster },
          spec: { workload: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm1", namespace: "default" }, data: { a: "b" } }] } },
        },
      })) as ManifestWork;
      await agents.waitFor((e: AgentSimEvent) => e.event === "work-added" && e.uid === created.metadata.uid, 30_000);

      const applied = (w: ManifestWork) => w.status?.conditions?.some((c) => c.type === "Applied" && c.status === "True");
      const hub = await eventually(async () => {
        const w = await get();
        return applied(w) ? w : undefined;
      }, 30_000, "Applied on the hub work", 250);
      expect(hub.status?.resourceStatus?.manifests).toHaveLength(1);
      expect(hub.metadata.finalizers).toContain(MANIFEST_WORK_CLEANUP_FINALIZER);

      await api.deleteNamespacedCustomObject(target);
      await agents.waitFor((e: AgentSimEvent) => e.event === "work-deleted" && e.uid === created.metadata.uid, 30_000);
      await eventually(() => get().then(() => false, (e: { code?: number }) => e.code === 404), 30_000, "the work to be gone", 250);
    } finally {
      await agents.stop(5000);
    }
  });
});
