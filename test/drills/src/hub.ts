/** (Copied from test/e2e/src/hub.ts, now test/harness/src/hub-client.ts, plus listWorks.) The hub side of the tests: namespaces, ManifestWorks and ManagedClusters on the real API server. */
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";

export const MANIFEST_WORKS = { group: "work.open-cluster-management.io", version: "v1", plural: "manifestworks" } as const;
export const MANAGED_CLUSTERS = { group: "cluster.open-cluster-management.io", version: "v1", plural: "managedclusters" } as const;
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

export interface ManifestWork {
  metadata: { name: string; namespace: string; uid: string; finalizers?: string[]; generation?: number; resourceVersion?: string; deletionTimestamp?: string };
  status?: { conditions?: Array<{ type: string; status: string; observedGeneration?: number }>; resourceStatus?: { manifests?: unknown[] } };
}

export class Hub {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.custom = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async createNamespace(name: string): Promise<void> {
    await this.core.createNamespace({ body: { metadata: { name } } });
  }

  /** A ManifestWork of one ConfigMap in the cluster's namespace. */
  async createWork(cluster: string, name: string): Promise<ManifestWork> {
    return (await this.custom.createNamespacedCustomObject({
      ...MANIFEST_WORKS,
      namespace: cluster,
      body: {
        apiVersion: "work.open-cluster-management.io/v1",
        kind: "ManifestWork",
        metadata: { name, namespace: cluster },
        spec: { workload: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${name}`, namespace: "default" }, data: { from: "kube" } }] } },
      },
    })) as ManifestWork;
  }

  /** The work, or undefined when it is gone (404). */
  async getWork(cluster: string, name: string): Promise<ManifestWork | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: cluster, name })) as ManifestWork;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /** Every ManifestWork of the namespace. */
  async listWorks(cluster: string): Promise<ManifestWork[]> {
    const list = (await this.custom.listNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: cluster })) as { items: ManifestWork[] };
    return list.items;
  }

  async deleteWork(cluster: string, name: string): Promise<void> {
    await this.custom.deleteNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: cluster, name });
  }

  /** A ManagedCluster accepted by the hub; with `joined`, its status gets `ManagedClusterJoined=True`. */
  async createManagedCluster(name: string, joined: boolean): Promise<void> {
    await this.custom.createClusterCustomObject({
      ...MANAGED_CLUSTERS,
      body: { apiVersion: "cluster.open-cluster-management.io/v1", kind: "ManagedCluster", metadata: { name }, spec: { hubAcceptsClient: true } },
    });
    const now = new Date().toISOString();
    const condition = (type: string, status: string) => ({ type, status, reason: "E2E", message: "set by the e2e suite", lastTransitionTime: now });
    const conditions = [condition("HubAcceptedManagedCluster", "True"), condition("ManagedClusterJoined", joined ? "True" : "False")];
    await this.custom.patchClusterCustomObjectStatus({ ...MANAGED_CLUSTERS, name, body: { status: { conditions } } }, mergePatch);
  }
}

export const hasCondition = (w: ManifestWork | undefined, type: string) =>
  w?.status?.conditions?.some((c) => c.type === type && c.status === "True") ?? false;
