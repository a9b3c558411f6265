import { CustomObjectsApi, makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from "@kubernetes/client-node";
import { silentLogger, type Logger } from "@ocm-conductor/router";
import type { ManagedClusterSink } from "./consumer-controller.js";
import type { ManagedClusterLike } from "./managed-cluster.js";

/** The ManagedCluster collection: `cluster.open-cluster-management.io/v1`, cluster-scoped. */
export const MANAGED_CLUSTERS = { group: "cluster.open-cluster-management.io", version: "v1", plural: "managedclusters" } as const;

/** Watch path of {@link MANAGED_CLUSTERS}. */
export const MANAGED_CLUSTERS_PATH = "/apis/cluster.open-cluster-management.io/v1/managedclusters";

/** Options of {@link watchManagedClusters}; every field is optional. */
export interface WatchManagedClustersOptions {
  logger?: Logger;
  /**
   * Every this often, a fresh list of all ManagedClusters is sent to the sink as upserts, so a
   * consumer removed behind the controller's back, or a change missed by a stalled watch, is
   * repaired. Default 10 min; 0 disables.
   */
  resyncMs?: number;
  /** First restart delay after a failed list or watch; doubles up to {@link maxBackoffMs}. Default 1 s. */
  initialBackoffMs?: number;
  /** Upper bound of the restart delay. Default 30 s. */
  maxBackoffMs?: number;
}

/** A running ManagedCluster watch. */
export interface ManagedClusterWatch {
  /** Resolves once the first complete list has been delivered to the sink (or on {@link stop}). */
  readonly ready: Promise<void>;
  /** Stops watching and resyncing. Idempotent. */
  stop(): Promise<void>;
}

type KubeManagedCluster = KubernetesObject & ManagedClusterLike;

/**
 * Feeds the hub's ManagedClusters into `sink` (usually a `ConsumerController`): list + watch of
 * `/apis/cluster.open-cluster-management.io/v1/managedclusters` with client-node's informer
 * (additions and changes → `upsert`, deletions → `remove`). client-node's informer stops for good
 * on an error, so this restarts it with back-off (it re-watches from the last resourceVersion, or
 * relists after a 410). Needs `list` and `watch` on `managedclusters`.
 *
 * @param kubeConfig - the hub's kubeconfig.
 * @param sink - where clusters go.
 */
export function watchManagedClusters(kubeConfig: KubeConfig, sink: ManagedClusterSink, options: WatchManagedClustersOptions = {}): ManagedClusterWatch {
  const logger = options.logger ?? silentLogger;
  const initialBackoffMs = options.initialBackoffMs ?? 1_000;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const list = async () => (await api.listClusterCustomObject({ ...MANAGED_CLUSTERS })) as KubernetesListObject<KubeManagedCluster>;

  let stopped = false;
  let backoffMs = initialBackoffMs;
  let restartTimer: NodeJS.Timeout | undefined;
  let resolveReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));

  const informer = makeInformer<KubeManagedCluster>(kubeConfig, MANAGED_CLUSTERS_PATH, async () => {
    const listed = await list();
    backoffMs = initialBackoffMs;
    // The informer hands the items to the callbacks synchronously after this resolves.
    setImmediate(resolveReady);
    return listed;
  });
  const upsert = (obj: KubeManagedCluster): void => {
    backoffMs = initialBackoffMs;
    if (typeof obj?.metadata?.name === "string") sink.upsert(obj);
  };
  informer.on("add", upsert);
  informer.on("update", upsert);
  informer.on("delete", (obj) => {
    if (typeof obj?.metadata?.name === "string") sink.remove(obj.metadata.name);
  });

  const start = (): void => {
    restartTimer = undefined;
    if (stopped) return;
    informer.start().catch(restart);
  };
  /** Called on every informer error; one restart is pending at a time. */
  function restart(err: unknown): void {
    if (stopped || restartTimer !== undefined) return;
    const delayMs = backoffMs;
    backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
    logger.warn("ManagedCluster watch failed; restarting", { error: String(err), delayMs });
    restartTimer = setTimeout(start, delayMs);
  }
  informer.on("error", restart);

  const resyncMs = options.resyncMs ?? 10 * 60_000;
  const resyncTimer = resyncMs > 0 ? setInterval(() => {
    list().then(
      (listed) => { if (!stopped) for (const obj of listed.items ?? []) upsert(obj); },
      (err: unknown) => logger.warn("ManagedCluster resync list failed", { error: String(err) }),
    );
  }, resyncMs) : undefined;
  resyncTimer?.unref();

  start();
  return {
    ready,
    async stop() {
      stopped = true;
      clearTimeout(restartTimer);
      clearInterval(resyncTimer);
      resolveReady();
      await informer.stop();
    },
  };
}
