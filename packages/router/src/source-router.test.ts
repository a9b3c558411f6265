import { DataTypes, Extension, newEvent, type CloudEvent } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
import type { Backend, IncompleteList } from "./backend.js";
import { BackendError } from "./backend-error.js";
import { Broker } from "./broker.js";
import { SourceRouter, workSourceOf } from "./source-router.js";

/** A backend double that records what it handled and lists fixed events (or fails). */
function fakeBackend(name: string, listed: CloudEvent[] | Error = []) {
  const handled: CloudEvent[] = [];
  const backend: Backend = {
    list: () => (listed instanceof Error ? Promise.reject(listed) : Promise.resolve(listed)),
    handle: (e) => (handled.push(e), Promise.resolve()),
  };
  return { name, backend, handled };
}

const work = (uid: string, source: string, version = 1) =>
  newEvent({
    type: `${DataTypes.manifestBundles}.spec.create_request`, source, clusterName: "c1",
    extensions: { [Extension.resourceId]: uid, [Extension.resourceVersion]: version },
  });

const status = (originalSource: string | number | undefined) => {
  const event = newEvent({ type: `${DataTypes.manifestBundles}.status.update_request`, source: "c1-work-agent", clusterName: "c1" });
  if (originalSource === undefined) delete event.extensions[Extension.originalSource];
  else event.extensions[Extension.originalSource] = originalSource;
  return event;
};

const context = { signal: new AbortController().signal };
const list = { clusterName: "c1", dataType: DataTypes.manifestBundles };

describe("workSourceOf (hub-services.md §3 prefix predicates, without Go's panics)", () => {
  it.each([
    ["kube", "kube"], ["kube::ns/name", "kube"], ["maestro", "maestro"], ["maestro::uuid", "maestro"],
    ["", undefined], ["abc", undefined], ["k", undefined], ["source", undefined], ["kube:", undefined],
    ["kubernetes::ns/name", undefined], ["prefixkube::ns/name", undefined], ["prefixmaestro::ns/name", undefined],
    ["maestro::", "maestro"], ["KUBE", undefined], [" kube", undefined],
  ])("%j → %j", (value, expected) => {
    expect(workSourceOf(value)).toBe(expected);
  });
});

describe("SourceRouter", () => {
  it("routes status updates by originalsource", async () => {
    const kube = fakeBackend("kube");
    const maestro = fakeBackend("maestro");
    const router = new SourceRouter({ kube: kube.backend, maestro: maestro.backend });
    await router.handle(status("kube"), context);
    await router.handle(status("kube::ns/w"), context);
    await router.handle(status("maestro"), context);
    await router.handle(status("maestro::55c6"), context);
    expect(kube.handled).toHaveLength(2);
    expect(maestro.handled).toHaveLength(2);
  });

  it.each([
    ["", "unknown resource original source: "],
    ["abc", "unknown resource original source: abc"],
    ["prefixkube::x", "unknown resource original source: prefixkube::x"],
  ])("refuses originalsource %j with a BadRequest, routing nothing", async (value, message) => {
    const kube = fakeBackend("kube");
    const maestro = fakeBackend("maestro");
    const router = new SourceRouter({ kube: kube.backend, maestro: maestro.backend });
    const err = await router.handle(status(value), context).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as BackendError).code).toBe("BadRequest");
    expect((err as BackendError).message).toBe(message);
    expect(kube.handled.length + maestro.handled.length).toBe(0);
  });

  it("refuses a missing or non-string originalsource", async () => {
    const router = new SourceRouter({ kube: fakeBackend("kube").backend });
    for (const value of [undefined, 7]) {
      const err = await router.handle(status(value), context).catch((e: unknown) => e);
      expect((err as BackendError).code).toBe("BadRequest");
      expect((err as BackendError).message).toMatch(/^failed to get original source from event, /);
    }
  });

  it("answers ServiceUnavailable for a source whose route is off", async () => {
    const router = new SourceRouter({ kube: fakeBackend("kube").backend });
    const err = await router.handle(status("maestro"), context).catch((e: unknown) => e);
    expect((err as BackendError).code).toBe("ServiceUnavailable");
    expect(router.sources).toEqual(["kube"]);
  });

  it("lists kube works, then maestro resources", async () => {
    const router = new SourceRouter({ maestro: fakeBackend("maestro", [work("m1", "maestro")]).backend, kube: fakeBackend("kube", [work("k1", "kube")]).backend });
    const listed = (await router.list(list, context.signal)) as CloudEvent[];
    expect(listed.map((e) => e.extensions[Extension.resourceId])).toEqual(["k1", "m1"]);
  });

  it("lists what it can when one source fails, marked incomplete; fails when every source fails", async () => {
    const router = new SourceRouter({ kube: fakeBackend("kube", [work("k1", "kube")]).backend, maestro: fakeBackend("maestro", new Error("db down")).backend });
    const listed = (await router.list(list, context.signal)) as IncompleteList;
    expect(listed.events.map((e) => e.extensions[Extension.resourceId])).toEqual(["k1"]);
    expect(listed.incomplete).toBe("failed to list maestro resources: db down");
    const dead = new SourceRouter({ kube: fakeBackend("kube", new Error("api down")).backend, maestro: fakeBackend("maestro", new Error("db down")).backend });
    await expect(dead.list(list, context.signal)).rejects.toThrow("api down");
  });

  it("attaches both backends to the broker's sink", () => {
    const attached: string[] = [];
    const withAttach = (name: string): Backend => ({ ...fakeBackend(name).backend, attach: () => attached.push(name) });
    const broker = new Broker({ heartbeatIntervalMs: 0 });
    broker.registerBackend(DataTypes.manifestBundles, new SourceRouter({ kube: withAttach("kube"), maestro: withAttach("maestro") }));
    expect(attached).toEqual(["kube", "maestro"]);
  });
});
