import { CustomObjectsApi } from "@kubernetes/client-node";
import { DataTypes, Extension, eventDataJson, newEvent, stringExtension, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError } from "@ocm-conductor/router";
import { eventually, startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubeClusterBackend, MANAGED_CLUSTERS } from "./cluster-backend.js";
import type { KubeObject } from "./kube-object-codec.js";

let cp: ControlPlane;
let api: CustomObjectsApi;
let backend: KubeClusterBackend;
const pushed: CloudEvent[] = [];
const signal = new AbortController().signal;
const { group, version, plural } = MANAGED_CLUSTERS;

interface Cluster extends KubeObject {
  spec?: { hubAcceptsClient?: boolean; leaseDurationSeconds?: number };
  status?: { conditions?: Array<{ type: string; status: string }> };
}

beforeAll(async () => {
  cp = await startControlPlane();
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  backend = new KubeClusterBackend({ kubeConfig: cp.kubeConfig });
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
const nextName = () => `cluster${++counter}`;
const newCluster = (name: string): Cluster => ({
  apiVersion: "cluster.open-cluster-management.io/v1", kind: "ManagedCluster", metadata: { name }, spec: { hubAcceptsClient: false },
});
const getCluster = async (name: string) => (await api.getClusterCustomObject({ group, version, plural, name })) as Cluster;
const createOnHub = async (name = nextName()) => (await api.createClusterCustomObject({ group, version, plural, body: newCluster(name) })) as Cluster;
const pushesFor = (name: string) => pushed.filter((e) => e.extensions[Extension.clusterName] === name);
const condition = { type: "ManagedClusterConditionAvailable", status: "True", reason: "Test", message: "ok", lastTransitionTime: "2026-11-25T10:00:00Z" };

function agentEvent(cluster: Cluster, type: string, clusterName = cluster.metadata.name): CloudEvent {
  return newEvent({ type: `${DataTypes.managedClusters}.${type}`, source: `${clusterName}-agent`, clusterName, originalSource: "kube", data: cluster });
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

describe("agent requests (hub-services.md §2.1)", () => {
  it("creates the agent's ManagedCluster and pushes it back as create_request", async () => {
    const name = nextName();
    await backend.handle(agentEvent(newCluster(name), "spec.create_request"), { signal });
    const hub = await getCluster(name);
    const [event] = await eventually(() => pushesFor(name).length > 0 && pushesFor(name), 10_000, "the create push");
    expect(event!.type).toBe(`${DataTypes.managedClusters}.spec.create_request`);
    expect(event!.extensions[Extension.resourceId]).toBe(hub.metadata.uid);
    expect(event!.extensions[Extension.resourceVersion]).toBe(hub.metadata.resourceVersion);
    expect(eventDataJson(event!)).toMatchObject({ kind: "ManagedCluster", apiVersion: "cluster.open-cluster-management.io/v1", metadata: { name } });
  });

  it("creates on create_request whatever the subresource, and passes AlreadyExists through", async () => {
    const name = nextName();
    await backend.handle(agentEvent(newCluster(name), "status.create_request"), { signal });
    expect((await getCluster(name)).metadata.name).toBe(name);
    const err = await refusal(backend.handle(agentEvent(newCluster(name), "spec.create_request"), { signal }));
    expect(err.status).toMatchObject({ reason: "AlreadyExists", code: 409, details: { name, kind: "managedclusters" } });
  });

  it("status.update_request is a full PUT to /status: the status changes, the spec does not", async () => {
    const created = await createOnHub();
    const body: Cluster = { ...created, spec: { hubAcceptsClient: true }, status: { conditions: [condition] } };
    await backend.handle(agentEvent(body, "status.update_request"), { signal });
    const hub = await getCluster(created.metadata.name);
    expect(hub.status?.conditions?.map((c) => c.type)).toEqual([condition.type]);
    expect(hub.spec?.hubAcceptsClient).toBe(false);
    await eventually(() => pushesFor(created.metadata.name).some((e) => e.extensions[Extension.resourceVersion] === hub.metadata.resourceVersion), 10_000, "the update push");
  });

  it("spec.update_request is a full PUT of the object: the spec changes, the status does not", async () => {
    const created = await createOnHub();
    const body: Cluster = { ...created, spec: { hubAcceptsClient: true, leaseDurationSeconds: 30 }, status: { conditions: [condition] } };
    await backend.handle(agentEvent(body, "spec.update_request"), { signal });
    const hub = await getCluster(created.metadata.name);
    expect(hub.spec).toMatchObject({ hubAcceptsClient: true, leaseDurationSeconds: 30 });
    expect(hub.status?.conditions ?? []).toEqual([]);
  });

  it("passes the API server's 409 through for a stale resourceVersion", async () => {
    const created = await createOnHub();
    await backend.handle(agentEvent({ ...created, status: { conditions: [condition] } }, "status.update_request"), { signal });
    const err = await refusal(backend.handle(agentEvent({ ...created, status: { conditions: [] } }, "status.update_request"), { signal }));
    expect(err.status).toMatchObject({ reason: "Conflict", code: 409, details: { name: created.metadata.name } });
  });
});

describe("hub → agent pushes and resync", () => {
  it("lists exactly the cluster named by the request, or nothing", async () => {
    const a = await createOnHub();
    await createOnHub();
    await eventually(() => pushesFor(a.metadata.name).length > 0, 10_000, "the informer to see the cluster");
    const listed = await backend.list({ clusterName: a.metadata.name, dataType: DataTypes.managedClusters });
    expect(listed.map((e) => e.extensions[Extension.resourceId])).toEqual([a.metadata.uid]);
    expect(stringExtension(listed[0]!, Extension.clusterName)).toBe(a.metadata.name);
    expect(await backend.list({ clusterName: "no-such-cluster", dataType: DataTypes.managedClusters })).toEqual([]);
  });

  it("has no delete handler: a deleted cluster is not pushed", async () => {
    const gone = await createOnHub();
    await eventually(() => pushesFor(gone.metadata.name).length > 0, 10_000, "the create push");
    await api.deleteClusterCustomObject({ group, version, plural, name: gone.metadata.name });
    const after = await createOnHub(); // the informer delivers in order: once this arrives, the delete has been seen
    await eventually(() => pushesFor(after.metadata.name).length > 0, 10_000, "a later push");
    expect(pushesFor(gone.metadata.name).map((e) => e.type.split(".").pop())).toEqual(["create_request"]);
  });
});

describe("bad requests change nothing on the hub", () => {
  it.each([
    ["another cluster's ManagedCluster", (e: CloudEvent) => { e.extensions[Extension.clusterName] = "intruder"; }, /cluster cluster\d+ is not the cluster intruder the agent speaks for/],
    ["an unsupported action", (e: CloudEvent) => { e.type = `${DataTypes.managedClusters}.status.delete_request`; }, /^unsupported action delete_request for cluster cluster\d+$/],
    ["an unparseable type", (e: CloudEvent) => { e.type = `${DataTypes.managedClusters}.body.update_request`; }, /^failed to parse cloud event type .*unsupported subresource body/],
    ["malformed JSON", (e: CloudEvent) => { e.data = new TextEncoder().encode("[1,"); }, /^failed to unmarshal event data, /],
    ["a JSON array", (e: CloudEvent) => { e.data = new TextEncoder().encode("[]"); }, /the cluster is not a JSON object/],
    ["another apiVersion", (e: CloudEvent) => {
      e.data = new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(e.data)), apiVersion: "cluster.open-cluster-management.io/v1beta1" }));
    }, /has apiVersion cluster.open-cluster-management.io\/v1beta1, expected cluster.open-cluster-management.io\/v1/],
  ])("refuses %s with BadRequest", async (_what, mutate, message) => {
    const created = await createOnHub();
    const event = agentEvent({ ...created, status: { conditions: [condition] } }, "status.update_request");
    mutate(event);
    const err = await refusal(backend.handle(event, { signal }));
    expect(err.status).toMatchObject({ reason: "BadRequest", code: 400 });
    expect(err.message).toMatch(message);
    expect((await getCluster(created.metadata.name)).metadata.resourceVersion).toBe(created.metadata.resourceVersion);
  });
});
