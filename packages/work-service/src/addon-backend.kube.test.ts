import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { DataTypes, Extension, eventDataJson, newEvent, stringExtension, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError } from "@ocm-conductor/router";
import { eventually, startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubeAddonBackend, managedClusterAddOns, type AddonVersion } from "./addon-backend.js";
import type { KubeObject } from "./kube-object-codec.js";

let cp: ControlPlane;
let api: CustomObjectsApi;
const backends = {} as Record<AddonVersion, KubeAddonBackend>;
const pushed: Record<AddonVersion, CloudEvent[]> = { v1alpha1: [], v1beta1: [] };
const signal = new AbortController().signal;
const { group, plural } = managedClusterAddOns("v1alpha1");

interface Addon extends KubeObject {
  status?: { conditions?: Array<{ type: string; status: string }> };
}

beforeAll(async () => {
  cp = await startControlPlane();
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of ["c1", "c2"]) await core.createNamespace({ body: { metadata: { name } } });
  for (const version of ["v1alpha1", "v1beta1"] as const) {
    backends[version] = new KubeAddonBackend({ kubeConfig: cp.kubeConfig, version });
    backends[version].attach({ publish: (e) => (pushed[version].push(e), 1) });
  }
  await Promise.all(Object.values(backends).map((b) => b.start()));
}, 180_000);

afterAll(async () => {
  await Promise.all(Object.values(backends).map((b) => b.stop()));
  await cp?.stop();
});

beforeEach(() => {
  pushed.v1alpha1.length = 0;
  pushed.v1beta1.length = 0;
});

let counter = 0;
async function createAddon(namespace = "c1"): Promise<Addon> {
  return (await api.createNamespacedCustomObject({
    group, version: "v1alpha1", plural, namespace,
    body: { apiVersion: `${group}/v1alpha1`, kind: "ManagedClusterAddOn", metadata: { name: `addon-${++counter}`, namespace }, spec: {} },
  })) as Addon;
}
const getAddon = async (a: Addon) =>
  (await api.getNamespacedCustomObject({ group, version: "v1alpha1", plural, namespace: a.metadata.namespace!, name: a.metadata.name })) as Addon;
const pushesFor = (version: AddonVersion, a: Addon) => pushed[version].filter((e) => e.extensions[Extension.resourceId] === a.metadata.uid);
const available = (status: string) => ({ type: "Available", status, reason: "Test", message: "test", lastTransitionTime: "2026-11-25T10:00:00Z" });

function statusUpdate(version: AddonVersion, addon: Addon, clusterName = addon.metadata.namespace!, action = "status.update_request"): CloudEvent {
  return newEvent({ type: `${managedClusterAddOns(version).dataType}.${action}`, source: `${clusterName}-agent`, clusterName, originalSource: "kube", data: addon });
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

describe("hub → agent pushes (hub-services.md §2.5)", () => {
  it("pushes one hub write to both data types, each in its own API version", async () => {
    const addon = await createAddon();
    for (const version of ["v1alpha1", "v1beta1"] as const) {
      const [event] = await eventually(() => pushesFor(version, addon).length > 0 && pushesFor(version, addon), 10_000, `the ${version} push`);
      expect(event!.type).toBe(`${managedClusterAddOns(version).dataType}.spec.create_request`);
      expect(stringExtension(event!, Extension.clusterName)).toBe("c1");
      expect(event!.extensions[Extension.resourceVersion]).toBe(addon.metadata.resourceVersion);
      expect(eventDataJson(event!)).toMatchObject({ apiVersion: `${group}/${version}`, kind: "ManagedClusterAddOn", metadata: { name: addon.metadata.name } });
    }
    expect(backends.v1alpha1.dataType).toBe(DataTypes.managedClusterAddOnsV1alpha1);
    expect(backends.v1beta1.dataType).toBe(DataTypes.managedClusterAddOnsV1beta1);
  });

  it("lists every addon of the cluster's namespace and nothing else", async () => {
    const mine = await createAddon("c2");
    const other = await createAddon("c1");
    await eventually(() => pushesFor("v1beta1", mine).length > 0 && pushesFor("v1beta1", other).length > 0, 10_000, "the pushes");
    const listed = await backends.v1beta1.list({ clusterName: "c2", dataType: DataTypes.managedClusterAddOnsV1beta1 });
    expect(listed.map((e) => e.extensions[Extension.resourceId])).toEqual([mine.metadata.uid]);
  });

  it("pushes a delete_request on both data types when an addon is deleted", async () => {
    const addon = await createAddon();
    await eventually(() => pushesFor("v1alpha1", addon).length > 0 && pushesFor("v1beta1", addon).length > 0, 10_000, "the create pushes");
    await api.deleteNamespacedCustomObject({ group, version: "v1alpha1", plural, namespace: "c1", name: addon.metadata.name });
    for (const version of ["v1alpha1", "v1beta1"] as const) {
      const deleted = await eventually(() => pushesFor(version, addon).find((e) => e.type.endsWith(".delete_request")), 10_000, `the ${version} delete push`);
      const gone = eventDataJson(deleted) as { metadata: { deletionTimestamp?: string } };
    expect(gone.metadata.deletionTimestamp).toBeDefined(); // data kept for v1.1.0/v1.2.0 agents
      expect(deleted.extensions[Extension.deletionTimestamp]).toBeDefined();
    }
  });
});

describe("agent status updates (update_request → UpdateStatus)", () => {
  it.each(["v1alpha1", "v1beta1"] as const)("writes a %s status with a full PUT to /status (spec changes are ignored)", async (version) => {
    const addon = await createAddon();
    const [event] = await eventually(() => pushesFor(version, addon).length > 0 && pushesFor(version, addon), 10_000, "the push");
    const held = eventDataJson(event!) as Addon;
    await backends[version].handle(statusUpdate(version, { ...held, spec: { installNamespace: "elsewhere" }, status: { conditions: [available("True")] } }), { signal });
    const hub = (await getAddon(addon)) as Addon & { spec: Record<string, unknown> };
    expect(hub.status?.conditions).toMatchObject([{ type: "Available", status: "True" }]);
    expect(hub.spec.installNamespace).toBeUndefined();
    for (const v of ["v1alpha1", "v1beta1"] as const) {
      const echo = await eventually(() => pushesFor(v, addon).find((e) => e.extensions[Extension.resourceVersion] === hub.metadata.resourceVersion), 10_000, `the ${v} update push`);
      expect(echo.type).toBe(`${managedClusterAddOns(v).dataType}.spec.update_request`);
    }
  });

  it("routes by action only: a spec.update_request also updates the status", async () => {
    const addon = await createAddon();
    await backends.v1alpha1.handle(statusUpdate("v1alpha1", { ...addon, status: { conditions: [available("False")] } }, "c1", "spec.update_request"), { signal });
    expect((await getAddon(addon)).status?.conditions).toMatchObject([{ type: "Available", status: "False" }]);
  });

  it("passes the API server's 409 through for a stale resourceVersion", async () => {
    const addon = await createAddon();
    await backends.v1alpha1.handle(statusUpdate("v1alpha1", { ...addon, status: { conditions: [available("True")] } }), { signal });
    const err = await refusal(backends.v1alpha1.handle(statusUpdate("v1alpha1", { ...addon, status: { conditions: [available("False")] } }), { signal }));
    expect(err.status).toMatchObject({ reason: "Conflict", code: 409, details: { name: addon.metadata.name, kind: "managedclusteraddons" } });
  });
});

describe("bad requests change nothing on the hub", () => {
  it.each([
    ["another cluster's addon", (e: CloudEvent) => { e.extensions[Extension.clusterName] = "c2"; }, /addon c1\/addon-\d+ is not in the namespace of cluster c2/],
    ["an unsupported action", (e: CloudEvent) => { e.type = `${DataTypes.managedClusterAddOnsV1alpha1}.status.create_request`; }, /^unsupported action create_request for addon c1\/addon-\d+$/],
    ["a v1beta1 object on the v1alpha1 type", (e: CloudEvent) => {
      e.data = new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(e.data)), apiVersion: `${group}/v1beta1` }));
    }, /has apiVersion addon.open-cluster-management.io\/v1beta1, expected addon.open-cluster-management.io\/v1alpha1/],
    ["another data type", (e: CloudEvent) => { e.type = `${DataTypes.managedClusterAddOnsV1beta1}.status.update_request`; }, /is not of data type addon.open-cluster-management.io.v1alpha1.managedclusteraddons/],
    ["malformed JSON", (e: CloudEvent) => { e.data = new TextEncoder().encode("nope"); }, /^failed to unmarshal event data, /],
    ["no metadata", (e: CloudEvent) => { e.data = new TextEncoder().encode('{"status":{}}'); }, /the addon has no metadata/],
  ])("refuses %s with BadRequest", async (_what, mutate, message) => {
    const addon = await createAddon();
    const event = statusUpdate("v1alpha1", { ...addon, status: { conditions: [available("True")] } });
    mutate(event);
    const err = await refusal(backends.v1alpha1.handle(event, { signal }));
    expect(err.status).toMatchObject({ reason: "BadRequest", code: 400 });
    expect(err.message).toMatch(message);
    expect((await getAddon(addon)).metadata.resourceVersion).toBe(addon.metadata.resourceVersion);
  });
});
