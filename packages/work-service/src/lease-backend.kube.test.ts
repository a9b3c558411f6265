import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { DataTypes, Extension, eventDataJson, newEvent, stringExtension, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError } from "@ocm-conductor/router";
import { eventually, startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CLUSTER_NAME_LABEL, type KubeObject } from "./kube-object-codec.js";
import { KubeLeaseBackend, LEASES } from "./lease-backend.js";

let cp: ControlPlane;
let api: CustomObjectsApi;
let backend: KubeLeaseBackend;
const pushed: CloudEvent[] = [];
const signal = new AbortController().signal;
const { group, version, plural } = LEASES;
const RENEW_TIME = "2026-11-25T10:00:00.123456Z";

beforeAll(async () => {
  cp = await startControlPlane();
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of ["c1", "c2"]) await core.createNamespace({ body: { metadata: { name } } });
  backend = new KubeLeaseBackend({ kubeConfig: cp.kubeConfig });
  backend.attach({ publish: (e) => (pushed.push(e), 1) });
  await backend.start();
}, 180_000);

afterAll(async () => {
  await backend?.stop();
  await cp?.stop();
});

beforeEach(() => {
  pushed.length = 0;
});

let counter = 0;
async function createLease(namespace = "c1", label: string | null = namespace): Promise<KubeObject> {
  const labels = label === null ? {} : { [CLUSTER_NAME_LABEL]: label };
  return (await api.createNamespacedCustomObject({
    group, version, plural, namespace,
    body: {
      apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: `lease-${++counter}`, namespace, labels },
      spec: { holderIdentity: "managed-cluster-lease", leaseDurationSeconds: 60, renewTime: RENEW_TIME },
    },
  })) as KubeObject;
}
const getLease = async (l: KubeObject) =>
  (await api.getNamespacedCustomObject({ group, version, plural, namespace: l.metadata.namespace!, name: l.metadata.name })) as KubeObject;
const pushesFor = (l: KubeObject) => pushed.filter((e) => e.extensions[Extension.resourceId] === l.metadata.uid);

function agentUpdate(lease: KubeObject, clusterName = lease.metadata.namespace!, action = "spec.update_request"): CloudEvent {
  return newEvent({ type: `${DataTypes.leases}.${action}`, source: `${clusterName}-agent`, clusterName, originalSource: "kube", data: lease });
}

async function refusal(call: Promise<unknown>): Promise<BackendError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof BackendError) return err;
    throw err;
  }
  throw new Error("expected a BackendError");
}

describe("hub → agent pushes (hub-services.md §2.3, §1.6)", () => {
  it("pushes a labelled lease to its cluster with the v1.3 envelope, raw JSON intact", async () => {
    const lease = await createLease();
    const [event] = await eventually(() => pushesFor(lease).length > 0 && pushesFor(lease), 10_000, "the create push");
    expect(event!.type).toBe(`${DataTypes.leases}.spec.create_request`);
    expect(event!.source).toBe("kube");
    expect(stringExtension(event!, Extension.clusterName)).toBe("c1");
    expect(event!.extensions[Extension.resourceVersion]).toBe(lease.metadata.resourceVersion);
    expect(event!.extensions[Extension.deletionTimestamp]).toBeUndefined();
    const data = eventDataJson(event!) as KubeObject & { spec: { renewTime: string } };
    expect(data).toMatchObject({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { uid: lease.metadata.uid, name: lease.metadata.name } });
    expect(data.spec.renewTime).toBe(RENEW_TIME); // MicroTime keeps its microseconds: no Date round trip
    expect(data.metadata.managedFields).toBeDefined(); // nothing is stripped (§1.6)
  });

  it("never sees leases without the cluster-name label", async () => {
    const hidden = await createLease("c1", null);
    const shown = await createLease("c1");
    await eventually(() => pushesFor(shown).length > 0, 10_000, "the labelled lease's push");
    expect(pushesFor(hidden)).toEqual([]);
    const listed = await backend.list({ clusterName: "c1", dataType: DataTypes.leases });
    expect(listed.map((e) => e.extensions[Extension.resourceId])).not.toContain(hidden.metadata.uid);
  });

  it("pushes a delete_request with a deletion timestamp when the lease is deleted", async () => {
    const lease = await createLease();
    await eventually(() => pushesFor(lease).length === 1, 10_000, "the create push");
    await api.deleteNamespacedCustomObject({ group, version, plural, namespace: "c1", name: lease.metadata.name });
    const deleted = await eventually(() => pushesFor(lease).find((e) => e.type.endsWith(".delete_request")), 10_000, "the delete push");
    const gone = eventDataJson(deleted) as { metadata: { deletionTimestamp?: string } };
    expect(gone.metadata.deletionTimestamp).toBeDefined(); // data kept for v1.1.0/v1.2.0 agents
    expect(deleted.extensions[Extension.deletionTimestamp]).toBeDefined();
    expect(stringExtension(deleted, Extension.clusterName)).toBe("c1");
  });

  it("lists the labelled leases of the cluster's namespace whose label names the cluster", async () => {
    const mine = await createLease("c2");
    const otherNamespace = await createLease("c1", "c2");
    const otherCluster = await createLease("c2", "c1");
    await eventually(() => [mine, otherNamespace, otherCluster].every((l) => pushesFor(l).length > 0), 10_000, "the pushes");
    const listed = await backend.list({ clusterName: "c2", dataType: DataTypes.leases });
    expect(listed.map((e) => e.extensions[Extension.resourceId])).toEqual([mine.metadata.uid]);
    expect(listed[0]!.extensions[Extension.resourceVersion]).toBe(mine.metadata.resourceVersion);
  });
});

describe("agent renewals (update_request → Update)", () => {
  it("writes the agent's lease with its resourceVersion and echoes the change back", async () => {
    const lease = await createLease();
    const [created] = await eventually(() => pushesFor(lease).length > 0 && pushesFor(lease), 10_000, "the create push");
    const held = eventDataJson(created!) as KubeObject & { spec: { renewTime: string } };
    held.spec.renewTime = "2026-11-25T10:01:00.654321Z";
    await backend.handle(agentUpdate(held), { signal });
    const hub = (await getLease(lease)) as KubeObject & { spec: { renewTime: string } };
    expect(hub.spec.renewTime).toBe("2026-11-25T10:01:00.654321Z");
    const echo = await eventually(() => pushesFor(lease).find((e) => e.extensions[Extension.resourceVersion] === hub.metadata.resourceVersion), 10_000, "the echo");
    expect(echo.type).toBe(`${DataTypes.leases}.spec.update_request`);
  });

  it("routes by action only: a status.update_request is an Update too", async () => {
    const lease = await createLease();
    const held = { ...(await getLease(lease)), spec: { holderIdentity: "agent" } };
    await backend.handle(agentUpdate(held, "c1", "status.update_request"), { signal });
    expect(((await getLease(lease)) as KubeObject & { spec: { holderIdentity: string } }).spec.holderIdentity).toBe("agent");
  });

  it("passes the API server's 409 through unchanged for a stale resourceVersion", async () => {
    const lease = await createLease();
    await backend.handle(agentUpdate({ ...lease, spec: { renewTime: "2026-11-25T10:02:00.000000Z" } }), { signal });
    const err = await refusal(backend.handle(agentUpdate({ ...lease, spec: { renewTime: "2026-11-25T10:03:00.000000Z" } }), { signal }));
    expect(err.status).toMatchObject({ reason: "Conflict", code: 409, details: { name: lease.metadata.name, group: "coordination.k8s.io", kind: "leases" } });
    expect(err.message).toMatch(/the object has been modified/);
  });
});

describe("bad requests change nothing on the hub", () => {
  it.each([
    ["another cluster's lease", (e: CloudEvent) => { e.extensions[Extension.clusterName] = "c2"; }, /lease c1\/lease-\d+ is not in the namespace of cluster c2/],
    ["an unsupported action", (e: CloudEvent) => { e.type = `${DataTypes.leases}.status.delete_request`; }, /^unsupported action delete_request for lease c1\/lease-\d+$/],
    ["a create (agents never create leases)", (e: CloudEvent) => { e.type = `${DataTypes.leases}.spec.create_request`; }, /^unsupported action create_request for lease c1\//],
    ["an unparseable type", (e: CloudEvent) => { e.type = "leases.update_request"; }, /^failed to parse cloud event type leases.update_request, /],
    ["malformed JSON", (e: CloudEvent) => { e.data = new TextEncoder().encode("{oops"); }, /^failed to unmarshal event data, /],
    ["no data", (e: CloudEvent) => { delete e.data; }, /the lease event has no data/],
    ["another kind", (e: CloudEvent) => { e.data = new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(e.data)), kind: "ConfigMap" })); }, /has kind ConfigMap, expected Lease/],
    ["no clustername", (e: CloudEvent) => { delete e.extensions[Extension.clusterName]; }, /^failed to get cluster name, /],
  ])("refuses %s with BadRequest", async (_what, mutate, message) => {
    const lease = await createLease();
    const event = agentUpdate({ ...lease, spec: { holderIdentity: "intruder" } });
    mutate(event);
    const err = await refusal(backend.handle(event, { signal }));
    expect(err.status).toMatchObject({ reason: "BadRequest", code: 400 });
    expect(err.message).toMatch(message);
    expect((await getLease(lease)).metadata.resourceVersion).toBe(lease.metadata.resourceVersion);
  });
});
