import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { ensureSchema } from "@ocm-conductor/db-service";
import { createDatabase, eventually, startControlPlane, startPostgres, type ControlPlane, type PostgresServer } from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConsumerController, type SyncResult } from "./consumer-controller.js";
import { MANAGED_CLUSTERS, watchManagedClusters, type ManagedClusterWatch } from "./watch-managed-clusters.js";

// End to end on real peers: ManagedClusters on a kube-apiserver (CRD installed by the harness) →
// watchManagedClusters → ConsumerController → Maestro's consumers table on PostgreSQL.

const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
let cp: ControlPlane;
let pg: PostgresServer;
let sql: Sql;
let api: CustomObjectsApi;
let controller: ConsumerController;
let watch: ManagedClusterWatch;
const results: SyncResult[] = [];

const createCluster = (name: string) => api.createClusterCustomObject({ ...MANAGED_CLUSTERS, body: {
  apiVersion: "cluster.open-cluster-management.io/v1", kind: "ManagedCluster", metadata: { name }, spec: { hubAcceptsClient: true },
} });
const setJoined = (name: string, status: "True" | "False") => api.patchClusterCustomObjectStatus({ ...MANAGED_CLUSTERS, name, body: { status: {
  conditions: ["HubAcceptedManagedCluster", "ManagedClusterJoined"].map((type) => ({
    type, status: type === "ManagedClusterJoined" ? status : "True", reason: "Test", message: "set by the test", lastTransitionTime: new Date().toISOString(),
  })),
} } }, mergePatch);
const consumerNames = async () => (await sql`select name from consumers order by name`).map((r) => r.name as string);
const hasConsumer = async (name: string) => (await consumerNames()).includes(name);

beforeAll(async () => {
  [cp, pg] = await Promise.all([startControlPlane(), startPostgres()]);
  sql = postgres(await createDatabase(pg, "maestro"), { max: 3, onnotice: () => {} });
  await ensureSchema(sql);
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  controller = new ConsumerController({ sql, initialBackoffMs: 200, onSync: (r) => results.push(r) });
  // A joined cluster that exists before the watch starts arrives through the initial list.
  await createCluster("early");
  await setJoined("early", "True");
  // No resync here: every consumer below must come from the list + watch itself.
  watch = watchManagedClusters(cp.kubeConfig, controller, { resyncMs: 0, initialBackoffMs: 200, maxBackoffMs: 1_000 });
  await watch.ready;
}, 180_000);

afterAll(async () => {
  await watch?.stop();
  await controller?.stop();
  await sql?.end({ timeout: 5 });
  await Promise.all([cp?.stop(), pg?.stop()]);
});

describe("watchManagedClusters → ConsumerController (kube-apiserver + PostgreSQL)", () => {
  it("creates a consumer for a cluster joined before the watch started", async () => {
    await eventually(() => hasConsumer("early"), 15_000, "consumer 'early'", 100);
  });

  it("creates a consumer only once the cluster is ManagedClusterJoined=True", async () => {
    await createCluster("cluster-a");
    await setJoined("cluster-a", "False");
    await eventually(() => results.some((r) => r.name === "cluster-a" && r.outcome === "skipped"), 15_000, "cluster-a skipped", 50);
    expect(await hasConsumer("cluster-a")).toBe(false);
    await setJoined("cluster-a", "True");
    await eventually(() => hasConsumer("cluster-a"), 15_000, "consumer 'cluster-a'", 100);
  });

  it("deletes the consumer of a deleted cluster that has no resources, and refuses a cluster name that is no DNS label", async () => {
    await createCluster("cluster.with.dots"); // a valid ManagedCluster name (DNS subdomain), not a consumer name
    await setJoined("cluster.with.dots", "True");
    await eventually(() => results.some((r) => r.name === "cluster.with.dots" && r.outcome === "failed" && r.error.code === "invalid-name"),
      15_000, "the invalid-name refusal", 50);
    await api.deleteClusterCustomObject({ ...MANAGED_CLUSTERS, name: "cluster-a" });
    await eventually(() => results.some((r) => r.name === "cluster-a" && r.outcome === "deleted"), 15_000, "the consumer's deletion", 50);
    expect(await consumerNames()).toEqual(["early"]);
  });

  it("recreates a consumer deleted behind its back on the next resync", async () => {
    const resyncing = watchManagedClusters(cp.kubeConfig, controller, { resyncMs: 500 });
    try {
      await resyncing.ready; // its initial list is done: only a resync can bring the row back now
      await sql`delete from consumers where name = 'early'`;
      await eventually(() => hasConsumer("early"), 15_000, "consumer 'early' again", 100);
    } finally {
      await resyncing.stop();
    }
  });

  it("keeps watching across a kube-apiserver restart", async () => {
    const restart = await cp.restartApiServer({ downMs: 1_000 });
    const started = Date.now();
    await createCluster("after-restart");
    await setJoined("after-restart", "True");
    await eventually(() => hasConsumer("after-restart"), 30_000, "consumer 'after-restart'", 100);
    console.log(`apiserver outage ${restart.outageMs} ms; consumer ${Date.now() - started} ms after the API server was back`);
  });
});
