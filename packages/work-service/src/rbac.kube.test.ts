import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api, loadYaml, type V1ClusterRole } from "@kubernetes/client-node";
import {
  DataTypes,
  Extension,
  MANIFEST_WORK_CLEANUP_FINALIZER,
  eventDataJson,
  fromProto,
  newEvent,
  toProto,
  type CloudEvent,
} from "@ocm-conductor/protocol";
import { Broker, type RequestContext } from "@ocm-conductor/router";
import { eventually, startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { managedClusterAddOns } from "./addon-backend.js";
import { createHubServices, registerHubServices, type HubServices } from "./hub-services.js";
import { CLUSTER_NAME_LABEL, type KubeObject } from "./kube-object-codec.js";
import { MANIFEST_WORKS, type ManifestWork } from "./manifest-work.js";

// Every backend runs as an identity bound ONLY to rbac/cluster-role.yaml, through a real Broker:
// informers list and watch, every agent request reaches the hub, every push reaches its cluster.

const ROLE_FILE = new URL("../rbac/cluster-role.yaml", import.meta.url);
const CONDUCTOR = "ocm-conductor";
let cp: ControlPlane;
let admin: CustomObjectsApi;
let services: HubServices;
let broker: Broker;
const streams = new Map<string, CloudEvent[]>();
const context: RequestContext = { signal: new AbortController().signal, identity: { user: "system:open-cluster-management:c1:agent", groups: [] } };
const addons = managedClusterAddOns("v1alpha1");

beforeAll(async () => {
  cp = await startControlPlane();
  admin = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const role = loadYaml<V1ClusterRole>(readFileSync(ROLE_FILE, "utf8"));
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({ body: role });
  await rbac.createClusterRoleBinding({ body: {
    metadata: { name: "ocm-conductor" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role.metadata!.name! },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: CONDUCTOR }],
  } });
  for (const name of ["c1", "c2"]) await core.createNamespace({ body: { metadata: { name } } });
  await core.createNamespacedServiceAccount({ namespace: "c1", body: { metadata: { name: "addon-agent" } } });
  await admin.createNamespacedCustomObject({ group: "coordination.k8s.io", version: "v1", plural: "leases", namespace: "c1", body: {
    metadata: { name: "managed-cluster-lease", labels: { [CLUSTER_NAME_LABEL]: "c1" } }, spec: { leaseDurationSeconds: 60 } } });
  await admin.createNamespacedCustomObject({ ...addons, namespace: "c1", body: {
    apiVersion: "addon.open-cluster-management.io/v1alpha1", kind: "ManagedClusterAddOn", metadata: { name: "addon1" }, spec: {} } });

  const identity = await cp.mintClientIdentity(CONDUCTOR);
  services = createHubServices({ kubeConfig: identity.kubeConfig, resyncMs: 0 });
  broker = new Broker({ heartbeatIntervalMs: 0 });
  registerHubServices(broker, services);
  for (const cluster of ["c1", "c2"]) {
    for (const { dataType } of services.backends) collect(cluster, dataType);
  }
  await services.start();
}, 180_000);

afterAll(async () => {
  broker?.close();
  await services?.stop();
  await cp?.stop();
});

/** Records everything the broker routes to one (cluster, data type) stream. */
function collect(clusterName: string, dataType: string): void {
  const events: CloudEvent[] = [];
  streams.set(`${clusterName}/${dataType}`, events);
  const subscription = broker.subscribe({ clusterName, dataType });
  void (async () => {
    for (;;) {
      const message = await subscription.next().catch(() => undefined);
      if (message === undefined) return;
      events.push(fromProto(message));
    }
  })();
}
const stream = (clusterName: string, dataType: string) => streams.get(`${clusterName}/${dataType}`)!;
const publish = (dataType: string, type: string, data: unknown, extensions: Record<string, string | number> = {}) =>
  broker.publish(toProto(newEvent({ type: `${dataType}.${type}`, source: "c1-agent", clusterName: "c1", originalSource: "kube", extensions, data })), context);
/** The latest object pushed on a stream whose data has `name`. */
const latest = async (dataType: string, name: string) => eventually(() => {
  const found = stream("c1", dataType).map((e) => eventDataJson(e) as KubeObject | undefined).filter((o) => o?.metadata.name === name);
  return found.at(-1);
}, 10_000, `a ${dataType} push of ${name}`);

describe("the hub services as an identity bound only to rbac/cluster-role.yaml", () => {
  it("lists and watches every resource (all informers sync)", () => {
    expect(services.ready).toBe(true);
    expect(services.backends.map((b) => b.dataType)).toEqual(Object.values(DataTypes));
  });

  it("creates a ManagedCluster, updates its spec and its status", async () => {
    await publish(DataTypes.managedClusters, "spec.create_request", { metadata: { name: "c1" }, spec: { hubAcceptsClient: false } });
    const created = await latest(DataTypes.managedClusters, "c1");
    await publish(DataTypes.managedClusters, "spec.update_request", { ...created, spec: { hubAcceptsClient: true } });
    const updated = await eventually(async () => {
      const c = await latest(DataTypes.managedClusters, "c1");
      return c.metadata.resourceVersion !== created.metadata.resourceVersion && c;
    }, 10_000, "the spec update push");
    await publish(DataTypes.managedClusters, "status.update_request", { ...updated, status: { conditions: [
      { type: "ManagedClusterJoined", status: "True", reason: "Joined", message: "joined", lastTransitionTime: "2026-11-25T10:00:00Z" }] } });
    const hub = (await admin.getClusterCustomObject({ group: "cluster.open-cluster-management.io", version: "v1", plural: "managedclusters", name: "c1" })) as {
      spec: { hubAcceptsClient: boolean }; status: { conditions: unknown[] } };
    expect(hub.spec.hubAcceptsClient).toBe(true);
    expect(hub.status.conditions).toHaveLength(1);
  });

  it("creates a CSR and pushes it to the cluster", async () => {
    const request = execFileSync("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", "/dev/null", "-subj", "/CN=system:open-cluster-management:c1:agent"], { stdio: ["ignore", "pipe", "ignore"] }).toString("base64");
    await publish(DataTypes.certificateSigningRequests, "spec.create_request", {
      metadata: { name: "c1-abcde", labels: { [CLUSTER_NAME_LABEL]: "c1" } },
      spec: { request, signerName: "open-cluster-management.io/grpc", usages: ["client auth"] },
    });
    const pushedCsr = await latest(DataTypes.certificateSigningRequests, "c1-abcde");
    expect(pushedCsr.metadata.annotations).toEqual({ "open-cluster-management.io/csr-user": context.identity!.user });
  });

  it("renews the lease with the resourceVersion the agent received", async () => {
    const lease = await latest(DataTypes.leases, "managed-cluster-lease");
    await publish(DataTypes.leases, "spec.update_request", { ...lease, spec: { leaseDurationSeconds: 60, renewTime: "2026-11-25T10:00:00.000000Z" } });
    const renewed = await eventually(async () => {
      const l = (await latest(DataTypes.leases, "managed-cluster-lease")) as KubeObject & { spec: { renewTime?: string } };
      return l.spec.renewTime === "2026-11-25T10:00:00.000000Z";
    }, 10_000, "the renewal echo");
    expect(renewed).toBe(true);
  });

  it("creates an event and updates its series", async () => {
    const event = {
      metadata: { name: "c1.available", namespace: "c1" }, eventTime: "2026-11-25T10:00:00.000000Z", reportingController: "klusterlet-agent",
      reportingInstance: "c1", action: "Available", reason: "Available", type: "Normal", regarding: { kind: "ManagedCluster", name: "c1", namespace: "c1" },
    };
    await publish(DataTypes.events, "spec.create_request", event);
    await publish(DataTypes.events, "spec.update_request", { metadata: event.metadata, series: { count: 2, lastObservedTime: "2026-11-25T10:01:00.000000Z" } });
    const hub = (await admin.getNamespacedCustomObject({ group: "events.k8s.io", version: "v1", plural: "events", namespace: "c1", name: "c1.available" })) as {
      series?: { count: number } };
    expect(hub.series?.count).toBe(2);
  });

  it.each(["v1alpha1", "v1beta1"] as const)("updates an addon's status through %s", async (version) => {
    const dataType = managedClusterAddOns(version).dataType;
    const addon = await latest(dataType, "addon1");
    await publish(dataType, "status.update_request", { ...addon, status: { conditions: [
      { type: `Available-${version}`, status: "True", reason: "Test", message: "ok", lastTransitionTime: "2026-11-25T10:00:00Z" }] } });
    const hub = (await admin.getNamespacedCustomObject({ ...addons, namespace: "c1", name: "addon1" })) as { status: { conditions: Array<{ type: string }> } };
    expect(hub.status.conditions.map((c) => c.type)).toEqual([`Available-${version}`]);
  });

  it("creates a token for a ServiceAccount in the cluster namespace", async () => {
    await publish(DataTypes.tokenRequests, "spec.create_request", { metadata: { name: "addon-agent", namespace: "c1", uid: "request-1" }, spec: {} });
    const response = await eventually(() => stream("c1", DataTypes.tokenRequests)[0], 10_000, "the token response");
    expect((eventDataJson(response) as { status: { token: string } }).status.token).not.toBe("");
  });

  it("adds the work finalizer, patches the work status and removes the finalizer", async () => {
    const work = (await admin.createNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: "c1", body: {
      apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork", metadata: { name: "work1" },
      spec: { workload: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "default" } }] } } } })) as ManifestWork;
    await eventually(() => stream("c1", DataTypes.manifestBundles).length > 0, 10_000, "the work push");
    const status = (type: string) => publish(DataTypes.manifestBundles, "status.update_request", { conditions: [
      { type, status: "True", reason: "Test", message: "test", lastTransitionTime: "2026-11-25T10:00:00Z", observedGeneration: 1 }] },
    { [Extension.resourceId]: work.metadata.uid, [Extension.resourceVersion]: 1, [Extension.sequenceId]: "1" });
    await status("Applied");
    const get = async () => (await admin.getNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: "c1", name: "work1" })) as ManifestWork;
    expect((await get()).metadata.finalizers).toContain(MANIFEST_WORK_CLEANUP_FINALIZER);
    expect((await get()).status?.conditions?.map((c) => c.type)).toEqual(["Applied"]);
    await admin.deleteNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: "c1", name: "work1" });
    await status("Deleted");
    expect(await get().then(() => "present", (e: { code?: number }) => e.code)).toBe(404);
  });

  it("reaches the agent as FailedPrecondition carrying the BadRequest status for an unsupported action", async () => {
    const lease = await latest(DataTypes.leases, "managed-cluster-lease");
    const failure = await publish(DataTypes.leases, "status.delete_request", lease).then(() => undefined, (e: unknown) => e);
    expect(failure).toMatchObject({ code: 9 }); // FailedPrecondition
    expect(JSON.parse((failure as { rawMessage: string }).rawMessage)).toEqual({ ErrStatus: expect.objectContaining({
      reason: "BadRequest", code: 400, message: "unsupported action delete_request for lease c1/managed-cluster-lease" }) });
  });

  it("pushed nothing to the other cluster's streams", () => {
    for (const { dataType } of services.backends) expect(stream("c2", dataType)).toEqual([]);
  });

  it("is not more than the role: the identity may not delete a ManagedCluster", async () => {
    const identity = await cp.mintClientIdentity(CONDUCTOR);
    const api = identity.kubeConfig.makeApiClient(CustomObjectsApi);
    const denied = await api.deleteClusterCustomObject({ group: "cluster.open-cluster-management.io", version: "v1", plural: "managedclusters", name: "c1" })
      .then(() => 200, (e: { code?: number }) => e.code);
    expect(denied).toBe(403);
  });
});
