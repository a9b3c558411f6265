import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { DataTypes, Extension, newEvent, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError, type Backend } from "@ocm-conductor/router";
import { startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENTS, KubeEventBackend } from "./event-backend.js";
import type { KubeObject } from "./kube-object-codec.js";

let cp: ControlPlane;
let api: CustomObjectsApi;
let backend: KubeEventBackend;
const signal = new AbortController().signal;
const { group, version, plural } = EVENTS;

interface KubeEvent extends KubeObject {
  note?: string;
  reportingController?: string;
  series?: { count: number; lastObservedTime: string };
}

beforeAll(async () => {
  cp = await startControlPlane();
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of ["c1", "c2"]) await core.createNamespace({ body: { metadata: { name } } });
  backend = new KubeEventBackend({ kubeConfig: cp.kubeConfig });
  await backend.start();
}, 180_000);

afterAll(async () => {
  await backend?.stop();
  await cp?.stop();
});

let counter = 0;
const agentEvent = (namespace = "c1", name = `c1.${++counter}`): KubeEvent => ({
  apiVersion: "events.k8s.io/v1", kind: "Event", metadata: { name, namespace },
  eventTime: "2026-11-25T10:00:00.123456Z", reportingController: "klusterlet-agent", reportingInstance: "c1-agent",
  action: "Available", reason: "Available", type: "Normal", note: "the cluster is available",
  regarding: { kind: "ManagedCluster", name: "c1", namespace: "c1" },
});
const series = { count: 2, lastObservedTime: "2026-11-25T10:05:00.000000Z" };
const publish = (obj: KubeEvent, action: string, clusterName = "c1") =>
  newEvent({ type: `${DataTypes.events}.spec.${action}`, source: "c1-agent", clusterName, data: obj });
const getEvent = async (e: KubeEvent) =>
  (await api.getNamespacedCustomObject({ group, version, plural, namespace: e.metadata.namespace!, name: e.metadata.name })) as KubeEvent;
const exists = (e: KubeEvent) => getEvent(e).then(() => true, (err: { code?: number }) => (err.code === 404 ? false : Promise.reject(err)));

async function refusal(call: Promise<unknown>): Promise<BackendError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof BackendError) return err;
    throw err;
  }
  throw new Error("expected a BackendError");
}

describe("agent events (hub-services.md §2.4)", () => {
  it("creates the event as sent, in the cluster namespace", async () => {
    const ev = agentEvent();
    await backend.handle(publish(ev, "create_request"), { signal });
    expect(await getEvent(ev)).toMatchObject({ note: ev.note, reportingController: "klusterlet-agent", eventTime: "2026-11-25T10:00:00.123456Z" });
  });

  it("routes by action only: a status.create_request creates too", async () => {
    const ev = agentEvent();
    await backend.handle(newEvent({ type: `${DataTypes.events}.status.create_request`, source: "c1-agent", clusterName: "c1", data: ev }), { signal });
    expect(await exists(ev)).toBe(true);
  });

  it("copies only the series of an update onto the hub's event", async () => {
    const ev = agentEvent();
    await backend.handle(publish(ev, "create_request"), { signal });
    const stub: KubeEvent = { metadata: { name: ev.metadata.name, namespace: "c1" }, series, note: "a different note", reportingController: "other" };
    await backend.handle(publish(stub, "update_request"), { signal });
    const hub = await getEvent(ev);
    expect(hub.series).toEqual(series);
    expect(hub).toMatchObject({ note: ev.note, reportingController: "klusterlet-agent" });
  });

  it("ignores an update of an event the hub does not have", async () => {
    const ghost = agentEvent();
    await backend.handle(publish({ metadata: ghost.metadata, series }, "update_request"), { signal });
    expect(await exists(ghost)).toBe(false);
  });

  it("passes the API server's validation errors through unchanged", async () => {
    const { reportingController: _dropped, ...invalid } = agentEvent();
    const err = await refusal(backend.handle(publish(invalid as KubeEvent, "create_request"), { signal }));
    expect(err.status).toMatchObject({ reason: "Invalid", code: 422, details: { name: invalid.metadata.name } });
    expect(err.message).toMatch(/reportingController/);
  });

  it("refuses List with MethodNotAllowed (405): agents never resync events", async () => {
    const err = await refusal(backend.list({ clusterName: "c1", dataType: DataTypes.events }));
    expect(err.status).toMatchObject({ reason: "MethodNotAllowed", code: 405, message: 'list is not supported on resources of kind "events.events.k8s.io"' });
  });

  it("pushes nothing: it has no sink to push to", () => {
    expect((backend as Backend).attach).toBeUndefined();
  });
});

describe("bad requests change nothing on the hub", () => {
  it.each([
    ["an event in another cluster's namespace", (e: CloudEvent) => { e.extensions[Extension.clusterName] = "c2"; }, /event c1\/c1\.\d+ is not in the namespace of cluster c2/],
    ["an unsupported action", (e: CloudEvent) => { e.type = `${DataTypes.events}.spec.delete_request`; }, /^unsupported action delete_request for event c1\/c1\.\d+$/],
    ["an unparseable type", (e: CloudEvent) => { e.type = `${DataTypes.events}.update_request`; }, /^failed to parse cloud event type /],
    ["malformed JSON", (e: CloudEvent) => { e.data = new TextEncoder().encode('{"metadata":'); }, /^failed to unmarshal event data, /],
    ["no name", (e: CloudEvent) => { e.data = new TextEncoder().encode('{"metadata":{"namespace":"c1"},"series":{"count":3}}'); }, /the event has no metadata.name/],
    ["no clustername", (e: CloudEvent) => { delete e.extensions[Extension.clusterName]; }, /^failed to get cluster name, /],
  ])("refuses %s with BadRequest", async (_what, mutate, message) => {
    const ev = agentEvent();
    await backend.handle(publish(ev, "create_request"), { signal });
    const before = await getEvent(ev);
    const event = publish({ metadata: ev.metadata, series }, "update_request");
    mutate(event);
    const err = await refusal(backend.handle(event, { signal }));
    expect(err.status).toMatchObject({ reason: "BadRequest", code: 400 });
    expect(err.message).toMatch(message);
    expect((await getEvent(ev)).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });
});
