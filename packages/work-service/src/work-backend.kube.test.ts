import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import {
  Action,
  DataTypes,
  Extension,
  MANIFEST_WORK_CLEANUP_FINALIZER,
  eventDataJson,
  integerExtension,
  newEvent,
  stringExtension,
  type CloudEvent,
} from "@ocm-conductor/protocol";
import { BackendError } from "@ocm-conductor/router";
import { eventually, startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MANIFEST_WORKS, type ManifestWork } from "./manifest-work.js";
import { KubeWorkBackend } from "./work-backend.js";

let cp: ControlPlane;
let api: CustomObjectsApi;
let backend: KubeWorkBackend;
const pushed: CloudEvent[] = [];
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const signal = new AbortController().signal;

beforeAll(async () => {
  cp = await startControlPlane();
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of ["c1", "c2"]) await core.createNamespace({ body: { metadata: { name } } });
  backend = new KubeWorkBackend({ kubeConfig: cp.kubeConfig });
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
async function createWork(namespace = "c1", name = `w${++counter}`): Promise<ManifestWork> {
  return (await api.createNamespacedCustomObject({
    ...MANIFEST_WORKS, namespace,
    body: {
      apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork", metadata: { name, namespace },
      spec: { workload: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "default" }, data: { a: "b" } }] } },
    },
  })) as ManifestWork;
}
const getWork = async (w: ManifestWork) => (await api.getNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: w.metadata.namespace, name: w.metadata.name })) as ManifestWork;
const pushesFor = (w: ManifestWork) => pushed.filter((e) => e.extensions[Extension.resourceId] === w.metadata.uid);

function status(w: ManifestWork, generation: number, conditions: Array<{ type: string; status: string }>, overrides: Record<string, string | number | undefined> = {}): CloudEvent {
  return newEvent({
    type: `${DataTypes.manifestBundles}.status.update_request`,
    source: `${w.metadata.namespace}-work-agent`,
    clusterName: w.metadata.namespace,
    originalSource: "kube",
    extensions: { resourceid: w.metadata.uid, resourceversion: generation, sequenceid: String(Date.now()), ...overrides },
    data: {
      conditions: conditions.map((c) => ({ ...c, reason: "Test", message: "test", lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: generation })),
      resourceStatus: [{ resourceMeta: { ordinal: 0, version: "v1", kind: "ConfigMap", resource: "configmaps", name: "cm", namespace: "default" }, conditions: [] }],
    },
  });
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

describe("hub → agent pushes", () => {
  it("pushes a created work as the OCM source codec encodes it", async () => {
    const w = await createWork();
    const [event] = await eventually(() => pushesFor(w).length > 0 && pushesFor(w), 10_000, "the create push");
    expect(event!.type).toBe(`${DataTypes.manifestBundles}.spec.create_request`);
    expect(event!.source).toBe("kube");
    expect(stringExtension(event!, Extension.clusterName)).toBe("c1");
    expect(integerExtension(event!, Extension.resourceVersion)).toBe(1);
    const meta = JSON.parse(stringExtension(event!, Extension.metadata));
    expect(meta).toMatchObject({ name: w.metadata.name, namespace: "c1", uid: w.metadata.uid });
    expect(meta.managedFields).toBeUndefined();
    expect(stringExtension(event!, Extension.logTracing)).toBe("{}");
    expect((eventDataJson(event!) as { manifests: unknown[] }).manifests).toHaveLength(1);
  });

  it("does not re-send the spec on status-only changes, but does on spec, label and annotation changes (quirk b)", async () => {
    const w = await createWork();
    await eventually(() => pushesFor(w).length === 1, 10_000, "the create push");
    await api.patchNamespacedCustomObjectStatus({ ...MANIFEST_WORKS, namespace: "c1", name: w.metadata.name,
      body: { status: { conditions: [{ type: "Applied", status: "True", reason: "x", message: "x", lastTransitionTime: "2026-01-01T00:00:00Z" }] } } }, mergePatch);
    await api.patchNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: "c1", name: w.metadata.name, body: { metadata: { labels: { a: "1" } } } }, mergePatch);
    await eventually(() => pushesFor(w).length === 2, 10_000, "the label push");
    await api.patchNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: "c1", name: w.metadata.name,
      body: { spec: { workload: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm2", namespace: "default" } }] } } } }, mergePatch);
    const events = await eventually(() => pushesFor(w).length === 3 && pushesFor(w), 10_000, "the spec push");
    expect(integerExtension(events[2]!, Extension.resourceVersion)).toBe(2);
    expect(events.map((e) => e.type.split(".").pop())).toEqual(["create_request", "update_request", "update_request"]);
  });

  it("pushes a deletion for a work that never had the finalizer (quirk c)", async () => {
    const w = await createWork();
    await eventually(() => pushesFor(w).length === 1, 10_000, "the create push");
    await api.deleteNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: "c1", name: w.metadata.name });
    const events = await eventually(() => pushesFor(w).length === 2 && pushesFor(w), 10_000, "the delete push");
    expect(events[1]!.type).toBe(`${DataTypes.manifestBundles}.spec.delete_request`);
    expect(events[1]!.extensions[Extension.deletionTimestamp]).toBeDefined();
    expect(events[1]!.data).toBeUndefined();
    expect(integerExtension(events[1]!, Extension.resourceVersion)).toBe(1);
  });

  it("lists the works of one cluster, deleting ones included, for resync", async () => {
    const mine = await createWork("c2");
    await eventually(() => pushesFor(mine).length === 1, 10_000, "the create push");
    const listed = await backend.list({ clusterName: "c2", dataType: DataTypes.manifestBundles });
    expect(listed.map((e) => e.extensions[Extension.resourceId])).toEqual([mine.metadata.uid]);
  });
});

describe("agent → hub statuses (hub-services.md §2.6)", () => {
  it("adds the finalizer and writes the first status without a self-inflicted conflict (quirk d)", async () => {
    const w = await createWork();
    await eventually(() => pushesFor(w).length === 1, 10_000, "the informer to see the work");
    await backend.handle(status(w, 1, [{ type: "Applied", status: "True" }]), { signal });
    const hub = await getWork(w);
    expect(hub.metadata.finalizers).toContain(MANIFEST_WORK_CLEANUP_FINALIZER);
    expect(hub.status?.conditions?.map((c) => c.type)).toEqual(["Applied"]);
    expect(hub.status?.resourceStatus?.manifests).toHaveLength(1);
  });

  it("writes quick successive statuses even when its cache trails its own writes", async () => {
    const w = await createWork();
    await eventually(() => pushesFor(w).length === 1, 10_000, "the informer to see the work");
    await backend.handle(status(w, 1, [{ type: "Applied", status: "True" }]), { signal });
    await backend.handle(status(w, 1, [{ type: "Applied", status: "True" }, { type: "Available", status: "True" }]), { signal });
    expect((await getWork(w)).status?.conditions?.map((c) => c.type)).toEqual(["Applied", "Available"]);
  });

  it("drops a status older than the work's generation", async () => {
    const w = await createWork();
    await api.patchNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: "c1", name: w.metadata.name,
      body: { spec: { workload: { manifests: [{ apiVersion: "v1", kind: "Secret", metadata: { name: "s", namespace: "default" } }] } } } }, mergePatch);
    await eventually(() => pushesFor(w).some((e) => integerExtension(e, Extension.resourceVersion) === 2), 10_000, "generation 2 in the cache");
    const before = await getWork(w);
    await backend.handle(status(w, 1, [{ type: "Applied", status: "True" }]), { signal });
    const after = await getWork(w);
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.status?.conditions ?? []).toEqual([]);
  });

  it("removes the finalizer when the agent reports Deleted, so a deleting work goes away", async () => {
    const w = await createWork();
    await eventually(() => pushesFor(w).length === 1, 10_000, "the informer to see the work");
    await backend.handle(status(w, 1, [{ type: "Applied", status: "True" }]), { signal });
    await api.deleteNamespacedCustomObject({ ...MANIFEST_WORKS, namespace: "c1", name: w.metadata.name });
    const deleting = await eventually(() => pushesFor(w).find((e) => e.extensions[Extension.deletionTimestamp] !== undefined), 10_000, "the deletion push");
    expect(deleting.type.endsWith(Action.updateRequest)).toBe(true);
    expect((await backend.list({ clusterName: "c1", dataType: DataTypes.manifestBundles })).some((e) => e.extensions[Extension.resourceId] === w.metadata.uid)).toBe(true);
    await backend.handle(status(w, 1, [{ type: "Deleted", status: "True" }]), { signal });
    const gone = await getWork(w).then(() => false, (e: { code?: number }) => e.code === 404);
    expect(gone).toBe(true);
  });
});

describe("bad statuses change nothing on the hub", () => {
  it("acknowledges unknown UIDs and works of another cluster without touching them", async () => {
    const w = await createWork("c1");
    await eventually(() => pushesFor(w).length === 1, 10_000, "the informer to see the work");
    const before = await getWork(w);
    await backend.handle(status(w, 1, [{ type: "Applied", status: "True" }], { resourceid: "no-such-uid" }), { signal });
    const foreign = status(w, 1, [{ type: "Applied", status: "True" }]);
    foreign.extensions[Extension.clusterName] = "c2";
    await backend.handle(foreign, { signal });
    expect((await getWork(w)).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });

  it.each([
    ["a spec action", (e: CloudEvent) => { e.type = `${DataTypes.manifestBundles}.spec.create_request`; }, /unsupported action create_request for work c1\//],
    ["malformed JSON", (e: CloudEvent) => { e.data = new TextEncoder().encode("{oops"); }, /failed to unmarshal event data/],
    ["conditions that are not a list", (e: CloudEvent) => { e.data = new TextEncoder().encode('{"conditions":{"type":"x"}}'); }, /conditions is not a list/],
    ["no sequence id", (e: CloudEvent) => { delete e.extensions[Extension.sequenceId]; }, /failed to get status update sequence id/],
    ["a non-integer version", (e: CloudEvent) => { e.extensions[Extension.resourceVersion] = "one"; }, /failed to get resource version/],
  ])("refuses %s with BadRequest", async (_what, mutate, message) => {
    const w = await createWork();
    await eventually(() => pushesFor(w).length === 1, 10_000, "the informer to see the work");
    const before = await getWork(w);
    const event = status(w, 1, [{ type: "Applied", status: "True" }]);
    mutate(event);
    const err = await refusal(backend.handle(event, { signal }));
    expect(err.status).toMatchObject({ reason: "BadRequest", code: 400 });
    expect(err.message).toMatch(message);
    expect((await getWork(w)).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });
});
