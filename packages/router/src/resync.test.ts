import { timestampNow } from "@bufbuild/protobuf/wkt";
import { DataTypes, Extension, newEvent, type CloudEvent } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
import { silentLogger } from "./logger.js";
import { resyncResponses } from "./resync.js";

const lease = (uid: string, rv: string | number | undefined, deleting = false): CloudEvent =>
  newEvent({
    type: `${DataTypes.leases}.spec.update_request`,
    source: "kube",
    clusterName: "c1",
    extensions: { [Extension.resourceId]: uid, [Extension.resourceVersion]: rv, [Extension.deletionTimestamp]: deleting ? timestampNow() : undefined },
  });

const run = (dataType: string, listed: CloudEvent[], requested: Array<[string, number]>) =>
  resyncResponses({
    dataType, clusterName: "c1", listed, source: "conductor", logger: silentLogger,
    requested: requested.map(([resourceID, resourceVersion]) => ({ resourceID, resourceVersion })),
  });

describe("resyncResponses for non-work types", () => {
  it("compares decimal-string resource versions and synthesises string-versioned deletions", () => {
    const out = run(DataTypes.leases, [lease("a", "10"), lease("b", "5")], [["a", 10], ["b", 4], ["gone", 3]]);
    expect(out.map((e) => e.extensions[Extension.resourceId])).toEqual(["b", "gone"]);
    expect(out.every((e) => e.type === `${DataTypes.leases}.spec.resync_response`)).toBe(true);
    expect(out[1]?.extensions[Extension.resourceVersion]).toBe("3");
    expect(out[1]?.source).toBe("conductor");
  });

  it("never sends a listed object without a usable version, as the Go broker does not", () => {
    const out = run(DataTypes.leases, [lease("a", "abc"), lease("b", 7), lease("c", undefined)], []);
    expect(out).toEqual([]);
  });

  it("sends deleting objects whatever their version", () => {
    const out = run(DataTypes.leases, [lease("a", "1", true)], [["a", 99]]);
    expect(out).toHaveLength(1);
    expect(out[0]?.extensions[Extension.deletionTimestamp]).toBeDefined();
  });

  it("omits an out-of-range work version rather than sending a wrong one", () => {
    const out = run(DataTypes.manifestBundles, [], [["w", 2 ** 40]]);
    expect(out[0]?.extensions[Extension.resourceVersion]).toBeUndefined();
  });
});

describe("resyncResponses from an incomplete list", () => {
  it("sends what is listed and synthesises no deletion", () => {
    const out = resyncResponses({
      dataType: DataTypes.leases, clusterName: "c1", listed: [lease("a", "2")], complete: false, source: "conductor", logger: silentLogger,
      requested: [{ resourceID: "a", resourceVersion: 1 }, { resourceID: "maybe-elsewhere", resourceVersion: 3 }],
    });
    expect(out.map((e) => e.extensions[Extension.resourceId])).toEqual(["a"]);
  });
});
