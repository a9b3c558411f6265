/** The condition type the hub's registration controller sets once a cluster's agent has joined. */
export const JOINED_CONDITION = "ManagedClusterJoined";

/** One entry of `status.conditions` (only the fields the controller reads). */
export interface ClusterConditionLike {
  /** Condition type, e.g. `ManagedClusterJoined`. */
  type: string;
  /** `"True"`, `"False"` or `"Unknown"`. */
  status: string;
}

/**
 * The least of a `cluster.open-cluster-management.io/v1` ManagedCluster the controller reads. A
 * ManagedCluster from client-node (JSON, timestamps as strings) or a hand-made object both fit.
 */
export interface ManagedClusterLike {
  /** `name` is the cluster name; a set `deletionTimestamp` means the cluster is being deleted. */
  metadata: { name: string; deletionTimestamp?: string | Date | null };
  /** `conditions` as the hub writes them. */
  status?: { conditions?: readonly ClusterConditionLike[] | null } | null;
}

/**
 * What the controller does with a cluster (hub-services.md §3.3): `ensure` a consumer, or `skip`
 * it because it is `missing`, `deleting` or `not-joined`.
 */
export type JoinDecision =
  | { readonly action: "ensure"; readonly name: string }
  | { readonly action: "skip"; readonly reason: "missing" | "deleting" | "not-joined" };

/** True if the cluster has the condition `ManagedClusterJoined` with status `True`. */
export function isJoined(cluster: ManagedClusterLike): boolean {
  const conditions = cluster.status?.conditions;
  return Array.isArray(conditions) && conditions.some((c) => c?.type === JOINED_CONDITION && c.status === "True");
}

/**
 * The join rules of the conductor's cluster controller: a missing cluster (`undefined`), one with
 * a `deletionTimestamp`, or one not `ManagedClusterJoined=True` is skipped; every other cluster
 * gets a consumer named after it. Name validity is checked later, by the controller.
 */
export function joinDecision(cluster: ManagedClusterLike | undefined | null): JoinDecision {
  if (cluster === undefined || cluster === null) return { action: "skip", reason: "missing" };
  const deletion = cluster.metadata.deletionTimestamp;
  if (deletion !== undefined && deletion !== null && deletion !== "") return { action: "skip", reason: "deleting" };
  if (!isJoined(cluster)) return { action: "skip", reason: "not-joined" };
  return { action: "ensure", name: cluster.metadata.name };
}
