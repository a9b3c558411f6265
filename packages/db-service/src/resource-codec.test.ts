import { DataTypes, Extension, eventDataJson, fromProto, integerExtension, newEvent, stringExtension, toProto } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
import { MAESTRO_SOURCE, ResourceRowError, resourceToSpecEvent, statusEventToJson, type ResourceRow } from "./resource-codec.js";

// A payload as Maestro stores it (maestro-db.md §3.6): a CloudEvent in JSON, metadata as an object,
// resourceversion as the source sent it (0), not the row's version.
const payload = {
  specversion: "1.0",
  id: "3f1c7a52-5d1e-4c41-9d0c-2e9a1c5f7b10",
  source: "mw-client-example",
  type: "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request",
  time: "2025-12-13T13:32:30.123456789Z",
  datacontenttype: "application/json",
  resourceid: "from-the-source",
  resourceversion: 0,
  clustername: "cluster1",
  originalsource: "",
  logtracing: "{}",
  metadata: { uid: "55c61e54-a3f6-563d-9fec-b1fe297bdfdb", name: "work-1", namespace: "cluster1", labels: { a: "b" }, resourceVersion: "0" },
  data: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm1", namespace: "default" } }], deleteOption: { propagationPolicy: "Foreground" } },
};

const row = (over: Partial<ResourceRow> = {}): ResourceRow => ({
  id: "55c61e54-a3f6-563d-9fec-b1fe297bdfdb",
  version: "3", // bigint arrives as a string from postgres.js
  consumer_name: "cluster1",
  source: "mw-client-example",
  payload,
  status: null,
  deleted_at: null,
  ...over,
});

describe("resource row → spec event (maestro-db.md §3.6)", () => {
  it("sends the stored CloudEvent as source maestro, with the row's id, version and consumer", () => {
    const event = resourceToSpecEvent(row());
    expect(event.source).toBe(MAESTRO_SOURCE);
    expect(event.type).toBe(`${DataTypes.manifestBundles}.spec.create_request`);
    expect(stringExtension(event, Extension.resourceId)).toBe("55c61e54-a3f6-563d-9fec-b1fe297bdfdb");
    expect(integerExtension(event, Extension.resourceVersion)).toBe(3);
    expect(stringExtension(event, Extension.clusterName)).toBe("cluster1");
    expect(JSON.parse(stringExtension(event, Extension.metadata))).toEqual(payload.metadata);
    expect(stringExtension(event, Extension.logTracing)).toBe("{}");
    expect(eventDataJson(event)).toEqual(payload.data);
    expect(event.time?.nanos).toBe(123_000_000);
    // It survives the wire with the attribute types agents require.
    const wire = toProto(event);
    expect(wire.attributes["ce-resourceversion"]?.attr.case).toBe("ceInteger");
    expect(wire.attributes["ce-metadata"]?.attr.case).toBe("ceString");
    expect(fromProto(wire).extensions[Extension.resourceId]).toBe(event.extensions[Extension.resourceId]);
  });

  it("marks a soft-deleted row deleting and sends no data, keeping metadata and the version", () => {
    const event = resourceToSpecEvent(row({ deleted_at: new Date("2026-01-02T03:04:05Z") }), "delete_request");
    expect(event.extensions[Extension.deletionTimestamp]).toBeDefined();
    expect(event.data).toBeUndefined();
    expect(integerExtension(event, Extension.resourceVersion)).toBe(3);
    expect(JSON.parse(stringExtension(event, Extension.metadata)).name).toBe("work-1");
  });

  it.each([
    ["no payload", { payload: null }],
    ["no consumer", { consumer_name: null }],
    ["a version beyond int32", { version: "4294967296" }],
    ["a non-numeric version", { version: "abc" }],
  ])("refuses a row with %s", (_what, over) => {
    expect(() => resourceToSpecEvent(row(over as Partial<ResourceRow>))).toThrow(ResourceRowError);
  });
});

describe("agent status → stored status JSON (maestro-db.md §3.6)", () => {
  it("stores the CloudEvent as JSON with the spec's metadata object and the extensions Maestro reads", () => {
    const status = newEvent({
      type: `${DataTypes.manifestBundles}.status.update_request`,
      source: "cluster1-work-agent",
      clusterName: "cluster1",
      originalSource: "maestro",
      extensions: { resourceid: "55c61e54-a3f6-563d-9fec-b1fe297bdfdb", resourceversion: 3, sequenceid: "1999832099518943232", metadata: '{"name":"agent-view"}' },
      data: { conditions: [{ type: "Applied", status: "True" }] },
    });
    const doc = statusEventToJson(status, payload.metadata);
    expect(doc).toMatchObject({
      specversion: "1.0", source: "cluster1-work-agent", type: `${DataTypes.manifestBundles}.status.update_request`,
      resourceversion: 3, sequenceid: "1999832099518943232", originalsource: "maestro", clustername: "cluster1",
      metadata: payload.metadata, data: { conditions: [{ type: "Applied", status: "True" }] },
    });
    expect(typeof doc.time).toBe("string");
    expect(Date.parse(doc.time as string)).not.toBeNaN();
  });
});
