/**
 * The conductor's consumer controller: every joined ManagedCluster gets a Maestro consumer, a row of
 * Maestro's `consumers` table written exactly as Maestro writes it (hub-services.md §3.3,
 * maestro-db.md §7). Consumers are never updated, renamed or deleted.
 *
 * @packageDocumentation
 */
export { ConsumerController, type ConsumerControllerOptions, type ManagedClusterSink, type SyncResult } from "./consumer-controller.js";
export { ConsumerRepository, type ConsumerRow, type ConsumerStore, type EnsureConsumerResult } from "./consumer-repository.js";
export { MAX_CONSUMER_NAME_LENGTH, assertValidConsumerName, isValidConsumerName } from "./consumer-name.js";
export { ConsumerControllerError, type ConsumerControllerErrorCode } from "./errors.js";
export { JOINED_CONDITION, isJoined, joinDecision, type ClusterConditionLike, type JoinDecision, type ManagedClusterLike } from "./managed-cluster.js";
export {
  MANAGED_CLUSTERS,
  MANAGED_CLUSTERS_PATH,
  watchManagedClusters,
  type ManagedClusterWatch,
  type WatchManagedClustersOptions,
} from "./watch-managed-clusters.js";
