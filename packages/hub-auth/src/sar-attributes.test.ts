import { Action, DataTypes } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
import { resourceAttributesFor, UnsupportedRequest } from "./sar-attributes.js";

describe("resourceAttributesFor (protocol.md §8.4)", () => {
  it("maps manifestbundles to manifestworks, status events to the status subresource, actions to verbs", () => {
    expect(resourceAttributesFor({ dataType: DataTypes.manifestBundles, subResource: "status", action: Action.updateRequest, clusterName: "c1" }))
      .toEqual({ namespace: "c1", verb: "update", group: "work.open-cluster-management.io", resource: "manifestworks", subresource: "status" });
    expect(resourceAttributesFor({ dataType: DataTypes.manifestBundles, subResource: "spec", action: Action.resyncRequest, clusterName: "c1" }))
      .toEqual({ namespace: "c1", verb: "list", group: "work.open-cluster-management.io", resource: "manifestworks" });
    expect(resourceAttributesFor({ dataType: DataTypes.manifestBundles, subResource: "spec", action: Action.watchRequest, clusterName: "c1" }).verb).toBe("watch");
    expect(resourceAttributesFor({ dataType: DataTypes.leases, subResource: "spec", action: Action.deleteRequest, clusterName: "c1" }).verb).toBe("delete");
  });

  it("names the cluster for managedclusters, in the cluster's namespace", () => {
    expect(resourceAttributesFor({ dataType: DataTypes.managedClusters, subResource: "spec", action: Action.createRequest, clusterName: "c1" }))
      .toEqual({ namespace: "c1", verb: "create", group: "cluster.open-cluster-management.io", resource: "managedclusters", name: "c1" });
  });

  it("authorizes both addon versions as managedclusteraddons", () => {
    for (const dataType of [DataTypes.managedClusterAddOnsV1alpha1, DataTypes.managedClusterAddOnsV1beta1]) {
      expect(resourceAttributesFor({ dataType, subResource: "status", action: Action.updateRequest, clusterName: "c1" }))
        .toEqual({ namespace: "c1", verb: "update", group: "addon.open-cluster-management.io", resource: "managedclusteraddons", subresource: "status" });
    }
  });

  it("maps token requests to serviceaccounts/token: create with the name, subscribe for Subscribe, nothing else", () => {
    expect(resourceAttributesFor({ dataType: DataTypes.tokenRequests, subResource: "spec", action: Action.createRequest, clusterName: "c1", name: "sa1" }))
      .toEqual({ namespace: "c1", verb: "create", group: "", resource: "serviceaccounts", subresource: "token", name: "sa1" });
    expect(resourceAttributesFor({ dataType: DataTypes.tokenRequests, subResource: "spec", action: Action.watchRequest, clusterName: "c1" }))
      .toEqual({ namespace: "c1", verb: "subscribe", group: "", resource: "serviceaccounts", subresource: "token" });
    expect(() => resourceAttributesFor({ dataType: DataTypes.tokenRequests, subResource: "spec", action: Action.updateRequest, clusterName: "c1" })).toThrow(UnsupportedRequest);
  });

  it("refuses unknown data types and actions without a verb (resync_response)", () => {
    expect(() => resourceAttributesFor({ dataType: "example.com.v1.things", subResource: "spec", action: Action.createRequest, clusterName: "c1" })).toThrow("unsupported event type");
    expect(() => resourceAttributesFor({ dataType: DataTypes.manifestBundles, subResource: "status", action: Action.resyncResponse, clusterName: "c1" })).toThrow("unsupported action");
  });
});
