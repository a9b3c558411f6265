import { describe, expect, it } from "vitest";
import { DataTypes, eventTypeOf, formatDataType, formatEventType, parseDataType, parseEventType } from "./event-type.js";
import { ProtocolError } from "./protocol-error.js";

describe("type strings (protocol.md §3)", () => {
  it("parses every data type of §3.3 and formats it back", () => {
    for (const dt of Object.values(DataTypes)) {
      expect(formatDataType(parseDataType(dt))).toBe(dt);
    }
    expect(parseDataType(DataTypes.manifestBundles)).toEqual({
      group: "io.open-cluster-management.works",
      version: "v1alpha1",
      resource: "manifestbundles",
    });
  });

  it("parses event types for every action and round-trips", () => {
    for (const action of ["create_request", "update_request", "delete_request", "resync_request", "resync_response", "watch_request"]) {
      for (const sub of ["spec", "status"] as const) {
        const text = eventTypeOf(DataTypes.leases, sub, action);
        const parsed = parseEventType(text);
        expect(parsed).toMatchObject({ group: "coordination.k8s.io", version: "v1", resource: "leases", subResource: sub, action });
        expect(formatEventType(parsed)).toBe(text);
      }
    }
  });

  it("rejects what the Go parser rejects", () => {
    expect(() => parseDataType("a.b")).toThrow(ProtocolError);
    expect(() => parseDataType("")).toThrow(/unsupported cloudevents data type format/);
    expect(() => parseEventType("io.open-cluster-management.cloudevents.heartbeat")).toThrow(/unsupported cloudevents type format/);
    expect(() => parseEventType("a.b.c.d")).toThrow(/unsupported cloudevents type format/);
    expect(() => parseEventType("a.b.c.meta.create_request")).toThrow(/unsupported subresource meta/);
  });

  it("does not validate the action, as the Go parser does not", () => {
    expect(parseEventType("a.b.c.spec.whatever").action).toBe("whatever");
  });
});
