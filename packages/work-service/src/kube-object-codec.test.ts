import { Extension, eventDataJson } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
import { encodeKubeObject, tombstone, type KubeObject } from "./kube-object-codec.js";
import { LEASES } from "./lease-backend.js";

const lease: KubeObject = {
  metadata: { name: "l1", namespace: "c1", uid: "u1", resourceVersion: "42", finalizers: ["example.com/keep"] },
};

describe("encoding hub objects for every agent generation", () => {
  it("turns an object the hub no longer has into a deletion with data and no finalizers", () => {
    const gone = tombstone(lease);
    expect(gone.metadata.deletionTimestamp).toEqual(expect.any(String));
    expect(gone.metadata.finalizers).toBeUndefined();
    expect(lease.metadata.finalizers).toEqual(["example.com/keep"]); // the cached object is not mutated
    const event = encodeKubeObject(LEASES, gone, { action: "delete_request", clusterName: "c1" });
    expect(event.extensions[Extension.deletionTimestamp]).toBeDefined();
    const data = eventDataJson(event) as KubeObject & { kind: string; apiVersion: string };
    expect(data).toMatchObject({ kind: "Lease", apiVersion: "coordination.k8s.io/v1", metadata: { name: "l1", uid: "u1" } });
  });

  it("keeps an existing deletion timestamp and encodes resourceid = UID, resourceversion as a string", () => {
    const deleting = { metadata: { ...lease.metadata, deletionTimestamp: "2026-01-01T00:00:00Z" } };
    expect(tombstone(deleting).metadata.deletionTimestamp).toBe("2026-01-01T00:00:00Z");
    const event = encodeKubeObject(LEASES, lease, { action: "update_request", clusterName: "c1" });
    expect(event.extensions[Extension.resourceId]).toBe("u1");
    expect(event.extensions[Extension.resourceVersion]).toBe("42");
    expect(event.extensions[Extension.deletionTimestamp]).toBeUndefined();
  });
});
