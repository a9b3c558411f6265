import { Action, DataTypes, SubResources, type SubResource } from "@ocm-conductor/protocol";

/** The `resourceAttributes` of a SubjectAccessReview (authorization.k8s.io/v1). */
export interface ResourceAttributes {
  namespace: string;
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
}

/** What an agent asks to do: one event type on one cluster (protocol.md §8.4). */
export interface AgentRequest {
  /** Data type string, e.g. `io.open-cluster-management.works.v1alpha1.manifestbundles`. */
  dataType: string;
  subResource: SubResource;
  /** An action of protocol.md §3.2; `watch_request` stands for Subscribe. */
  action: string;
  /** The cluster: `ce-clustername` of a Publish, `cluster_name` of a Subscribe. */
  clusterName: string;
  /** `metadata.name` from the event data (token requests only). */
  name?: string;
}

/** Thrown when a request cannot be mapped to a SubjectAccessReview; the caller denies it. */
export class UnsupportedRequest extends Error {}

const VERBS: Readonly<Record<string, string>> = {
  [Action.createRequest]: "create",
  [Action.updateRequest]: "update",
  [Action.deleteRequest]: "delete",
  [Action.resyncRequest]: "list",
  [Action.watchRequest]: "watch",
};

/** Hub resource each data type is authorized as (protocol.md §8.4, hub-services.md §5.2). */
const RESOURCES: Readonly<Record<string, { group: string; resource: string; nameIsCluster?: true }>> = {
  [DataTypes.manifestBundles]: { group: "work.open-cluster-management.io", resource: "manifestworks" },
  [DataTypes.managedClusters]: { group: "cluster.open-cluster-management.io", resource: "managedclusters", nameIsCluster: true },
  [DataTypes.certificateSigningRequests]: { group: "certificates.k8s.io", resource: "certificatesigningrequests" },
  [DataTypes.leases]: { group: "coordination.k8s.io", resource: "leases" },
  [DataTypes.events]: { group: "events.k8s.io", resource: "events" },
  [DataTypes.managedClusterAddOnsV1alpha1]: { group: "addon.open-cluster-management.io", resource: "managedclusteraddons" },
  [DataTypes.managedClusterAddOnsV1beta1]: { group: "addon.open-cluster-management.io", resource: "managedclusteraddons" },
};

/**
 * The SubjectAccessReview resource attributes that authorize `request` (protocol.md §8.4):
 * namespace = the cluster name (for cluster-scoped ManagedClusters too), the hub resource of the
 * data type, the verb of the action, `status` as subresource for status events, `name` = the cluster for ManagedClusters; token requests are `serviceaccounts/token`
 * with verb `create` (Publish, name from the event data) or `subscribe` (Subscribe).
 *
 * @throws UnsupportedRequest for an unknown data type or an action without a verb (e.g.
 *   `resync_response`), and for token requests other than create and Subscribe.
 */
export function resourceAttributesFor(request: AgentRequest): ResourceAttributes {
  const verb = VERBS[request.action];
  if (verb === undefined) throw new UnsupportedRequest(`unsupported action ${request.action}`);
  if (request.dataType === DataTypes.tokenRequests) {
    if (verb === "create") return { namespace: request.clusterName, verb, group: "", resource: "serviceaccounts", subresource: "token", name: request.name ?? "" };
    if (verb === "watch") return { namespace: request.clusterName, verb: "subscribe", group: "", resource: "serviceaccounts", subresource: "token" };
    throw new UnsupportedRequest(`unsupported verb ${verb} for token requests`);
  }
  const target = RESOURCES[request.dataType];
  if (target === undefined) throw new UnsupportedRequest(`unsupported event type ${request.dataType}`);
  return {
    namespace: request.clusterName,
    verb,
    group: target.group,
    resource: target.resource,
    ...(request.subResource === SubResources.status && { subresource: "status" }),
    ...(target.nameIsCluster === true && { name: request.clusterName }),
  };
}
