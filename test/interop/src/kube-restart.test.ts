import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { defaultConfig, startGrpcServer, type RunningGrpcServer } from "@ocm-conductor/conductor";
import { DataTypes } from "@ocm-conductor/protocol";
import { Broker, type Logger } from "@ocm-conductor/router";
import {
  AGENTSIM_VERSIONS, eventually, startAgentSim, startControlPlane, type AgentSimHandle, type ControlPlane,
} from "@ocm-conductor/test-harness";
import { KubeWorkBackend, MANIFEST_WORKS, type ManifestWork } from "@ocm-conductor/work-service";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The hub's kube-apiserver restarts under a running conductor (etcd keeps the data). The conductor's
// gRPC server stays up, so agents never reconnect and never resync: every work created or changed
// after the restart can reach them only through the ManifestWork informer's push. So this proves the
// informer came back (restart after its watch broke, re-watch or relist) and lost no push, and that
// status writes refused during the outage are retried by the agents until they land.

/** One agentsim process per sdk-go generation, one cluster each. */
const CLUSTERS = AGENTSIM_VERSIONS.map((version) => ({ version, cluster: `restart-${version.replaceAll(".", "-")}` }));
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

let cp: ControlPlane;
let api: CustomObjectsApi;
let broker: Broker;
let works: KubeWorkBackend;
let server: RunningGrpcServer;
const agents = new Map<string, AgentSimHandle>();
/** Cluster of every subscription the broker registered (a reconnecting agent subscribes again). */
const subscriptions: string[] = [];
const warnings: Array<{ message: string; fields?: Record<string, unknown> }> = [];
const logger: Logger = {
  debug() {},
  info() {},
  warn: (message, fields) => void warnings.push({ message, fields }),
  error: (message, fields) => void warnings.push({ message, fields }),
};

beforeAll(async () => {
  cp = await startControlPlane();
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const { cluster } of CLUSTERS) await core.createNamespace({ body: { metadata: { name: cluster } } });
  broker = new Broker({ heartbeatIntervalMs: 1000, observer: { subscribed: (s) => subscriptions.push(s.clusterName) } });
  works = new KubeWorkBackend({ kubeConfig: cp.kubeConfig, logger });
  broker.registerBackend(DataTypes.manifestBundles, works);
  await works.start();
  server = await startGrpcServer({ config: { ...defaultConfig().grpc, port: 0 }, broker });
  for (const { version, cluster } of CLUSTERS) {
    agents.set(cluster, await startAgentSim({
      version, server: `127.0.0.1:${server.port}`, clusters: [cluster], reconnectDelay: "1s", duration: "5m",
      // A klusterlet retries a failed status publish without limit; agentsim gives up after
      // --max-retries (default 10, ≈ 11 s), which a hub outage can outlast.
      extraArgs: ["--max-retries=100"],
    }));
  }
  await eventually(() => CLUSTERS.every(({ cluster }) => broker.subscribedClusters().includes(cluster)), 30_000, "every agent to subscribe");
}, 180_000);

afterAll(async () => {
  await Promise.all([...agents.values()].map((a) => a.stop(5000)));
  await server?.close(1000);
  await works?.stop();
  await cp?.stop();
});

function workBody(cluster: string, name: string, data: Record<string, string> = { v: "1" }) {
  return {
    apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork", metadata: { name, namespace: cluster },
    spec: { workload: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "default" }, data }] } },
  };
}

async function createWork(cluster: string, name: string): Promise<void> {
  await api.createNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: cluster, body: workBody(cluster, name) });
}

/** A spec change, so the generation goes up and the agent must get the new version. */
async function updateWork(cluster: string, name: string, data: Record<string, string>): Promise<void> {
  await api.patchNamespacedCustomObject({
    ...MANIFEST_WORKS, namespace: cluster, name, body: { spec: workBody(cluster, name, data).spec },
  }, mergePatch);
}

async function hubWorks(cluster: string): Promise<ManifestWork[]> {
  return ((await api.listNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: cluster })) as { items: ManifestWork[] }).items;
}

interface AgentWork {
  name: string;
  uid: string;
  generation: number;
  deleting: boolean;
}

async function agentWorks(cluster: string): Promise<AgentWork[]> {
  const reply = await agents.get(cluster)!.command({ cmd: "list", cluster });
  if (reply.ok !== true) throw new Error(`agentsim list for ${cluster} failed: ${String(reply.error)}`);
  return (reply.works as AgentWork[] | null) ?? [];
}

const applied = (w: ManifestWork): boolean => w.status?.conditions?.some(
  (c) => c.type === "Applied" && c.status === "True" && c.observedGeneration === w.metadata.generation) ?? false;

/**
 * Differences between the hub and one agent: the agent must hold exactly the hub's works (by uid,
 * name and generation) and the hub must show Applied for the current generation of each. Returns
 * undefined when they agree.
 */
async function divergence(cluster: string): Promise<string | undefined> {
  const hub = await hubWorks(cluster);
  const agent = await agentWorks(cluster);
  const key = (w: { name: string; uid: string; generation: number }) => `${w.name}@${w.generation}#${w.uid.slice(0, 8)}`;
  const hubKeys = hub.map((w) => key({ name: w.metadata.name, uid: w.metadata.uid, generation: w.metadata.generation ?? 0 })).sort();
  const agentKeys = agent.map(key).sort();
  const problems: string[] = [];
  if (JSON.stringify(hubKeys) !== JSON.stringify(agentKeys)) problems.push(`hub has [${hubKeys.join(", ")}], agent has [${agentKeys.join(", ")}]`);
  const notApplied = hub.filter((w) => !applied(w)).map((w) => `${w.metadata.name}@${w.metadata.generation}`);
  if (notApplied.length > 0) problems.push(`not Applied on the hub: [${notApplied.join(", ")}]`);
  return problems.length === 0 ? undefined : `${cluster}: ${problems.join("; ")}`;
}

/** Waits (bounded) until every agent agrees with the hub; the error lists what still differs. */
async function allConverged(what: string, timeoutMs = 60_000): Promise<void> {
  let last: string[] = [];
  try {
    await eventually(async () => {
      last = (await Promise.all(CLUSTERS.map(({ cluster }) => divergence(cluster)))).filter((d): d is string => d !== undefined);
      return last.length === 0;
    }, timeoutMs, what, 250);
  } catch (err) {
    const agentTrouble = [...agents.values()].flatMap((a) => a.events.filter((e) => e.event === "retry" || e.event === "error").slice(-5));
    throw new Error(`${(err as Error).message}; still different:\n  ${last.join("\n  ")}\n` +
      `informer warnings: ${JSON.stringify(warnings.slice(-10))}\nagent retries and errors: ${JSON.stringify(agentTrouble)}`);
  }
}

describe("kube-apiserver restart under a running conductor", () => {
  it("the informer recovers: works created and updated around the restart reach every agent, statuses land, deletions complete", async () => {
    // Before: three works per cluster, applied and reported.
    for (const { cluster } of CLUSTERS) for (const name of ["w0", "w1", "w2"]) await createWork(cluster, name);
    await allConverged("the initial works to be applied");

    // Just before the restart: a new work and a deletion, whose status publish and finalizer
    // removal may hit the outage and must be retried until they land.
    for (const { cluster } of CLUSTERS) {
      await createWork(cluster, "w3");
      await api.deleteNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: cluster, name: "w2" });
    }
    // SIGTERM, SIGKILL after 2 s at most (a graceful kube-apiserver holds open watches for up to
    // a minute), 2 s down, then the same port and flags again.
    const restart = await cp.restartApiServer({ downMs: 2_000, graceMs: 2_000 });
    console.info(`kube-apiserver restarted: ${JSON.stringify(restart)}`);

    // Right after it comes back (the informer is most likely still backing off): new works and spec updates.
    for (const { cluster } of CLUSTERS) {
      await createWork(cluster, "w4");
      await createWork(cluster, "w5");
      await updateWork(cluster, "w0", { v: "2" });
      await updateWork(cluster, "w1", { v: "2" });
    }
    // And once more after a moment, when the informer may be in the middle of re-watching or relisting.
    await new Promise((r) => setTimeout(r, 500));
    for (const { cluster } of CLUSTERS) {
      await createWork(cluster, "w6");
      await updateWork(cluster, "w0", { v: "3" });
    }

    await allConverged("every agent to hold exactly the hub's works after the restart, all Applied");
    const hub = await hubWorks(CLUSTERS[0]!.cluster);
    expect(hub.map((w) => w.metadata.name).sort()).toEqual(["w0", "w1", "w3", "w4", "w5", "w6"]);
    expect(hub.find((w) => w.metadata.name === "w0")?.metadata.generation).toBe(3);
    // The restart really broke the informer's watch (it had to recover, not merely stay connected)...
    expect(warnings.some((w) => /informer/.test(w.message))).toBe(true);
    // ...while the agents never reconnected (so no resync could have papered over a missed push).
    expect(subscriptions.sort()).toEqual(CLUSTERS.map((c) => c.cluster).sort());
    for (const [cluster, agent] of agents) {
      expect(agent.events.filter((e) => e.event === "error"), `${cluster} agent errors`).toEqual([]);
    }

    // Then delete everything: the agents confirm, the finalizers go, nothing is left anywhere.
    for (const { cluster } of CLUSTERS) {
      for (const w of await hubWorks(cluster)) {
        await api.deleteNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: cluster, name: w.metadata.name });
      }
    }
    let left: string[] = [];
    await eventually(async () => {
      left = [];
      for (const { cluster } of CLUSTERS) {
        const hubLeft = (await hubWorks(cluster)).map((w) => w.metadata.name);
        const agentLeft = (await agentWorks(cluster)).map((w) => w.name);
        if (hubLeft.length + agentLeft.length > 0) left.push(`${cluster}: hub [${hubLeft.join(", ")}], agent [${agentLeft.join(", ")}]`);
      }
      return left.length === 0;
    }, 60_000, "every work to be gone from the hub and the agents", 250).catch((err: Error) => {
      // What the agents last said, to tell a lost push from a stuck confirmation.
      const trail = [...agents].map(([cluster, agent]) =>
        `${cluster}: ${agent.events.slice(-8).map((e) => `${e.event}${e.name === undefined ? "" : `(${String(e.name)})`}`).join(" ")}`);
      throw new Error(`${err.message}; left:\n  ${left.join("\n  ")}\nlast agent events:\n  ${trail.join("\n  ")}\nconductor warnings: ${JSON.stringify(warnings.slice(-5))}`);
    });
  });
});
