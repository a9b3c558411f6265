import { describe, expect, it } from "vitest";
import { isJoined, joinDecision, type ManagedClusterLike } from "./managed-cluster.js";

const cluster = (over: Partial<ManagedClusterLike["metadata"]> = {}, conditions?: Array<{ type: string; status: string }> | null): ManagedClusterLike => ({
  metadata: { name: "cluster1", ...over },
  ...(conditions === undefined ? {} : { status: { conditions } }),
});
const joined = [{ type: "HubAcceptedManagedCluster", status: "True" }, { type: "ManagedClusterJoined", status: "True" }];

describe("join rules (hub-services.md §3.3)", () => {
  it("skips a missing cluster", () => {
    expect(joinDecision(undefined)).toEqual({ action: "skip", reason: "missing" });
    expect(joinDecision(null)).toEqual({ action: "skip", reason: "missing" });
  });

  it("skips a deleting cluster even when joined", () => {
    expect(joinDecision(cluster({ deletionTimestamp: "2026-11-25T10:00:00Z" }, joined))).toEqual({ action: "skip", reason: "deleting" });
    expect(joinDecision(cluster({ deletionTimestamp: new Date() }, joined))).toEqual({ action: "skip", reason: "deleting" });
  });

  it("skips a cluster that is not ManagedClusterJoined=True", () => {
    for (const conditions of [undefined, null, [], [{ type: "HubAcceptedManagedCluster", status: "True" }],
      [{ type: "ManagedClusterJoined", status: "False" }], [{ type: "ManagedClusterJoined", status: "Unknown" }],
      [{ type: "managedclusterjoined", status: "True" }], [{ type: "ManagedClusterJoined", status: "true" }]]) {
      expect(joinDecision(cluster({}, conditions)), JSON.stringify(conditions)).toEqual({ action: "skip", reason: "not-joined" });
    }
    expect(joinDecision({ metadata: { name: "c" }, status: null })).toEqual({ action: "skip", reason: "not-joined" });
  });

  it("ensures a consumer for a joined cluster, whatever its other conditions", () => {
    expect(joinDecision(cluster({ deletionTimestamp: null }, joined))).toEqual({ action: "ensure", name: "cluster1" });
    expect(isJoined(cluster({}, [{ type: "ManagedClusterConditionAvailable", status: "False" }, { type: "ManagedClusterJoined", status: "True" }]))).toBe(true);
  });

  it("ignores malformed conditions instead of throwing", () => {
    const odd = { metadata: { name: "c" }, status: { conditions: [null, { type: 1 }, "x"] } } as unknown as ManagedClusterLike;
    expect(joinDecision(odd)).toEqual({ action: "skip", reason: "not-joined" });
  });
});
