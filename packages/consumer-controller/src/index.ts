/**
 * The conductor's consumer controller: every joined ManagedCluster gets a Maestro consumer, a row of
 * Maestro's `consumers` table written exactly as Maestro writes it (hub-services.md §3.3,
 * maestro-db.md §7), directly in the database or through Maestro's REST API. The consumer of a
 * deleted cluster is deleted once no resource references it. Consumers are never updated or renamed.
 *
 * @packageDocumentation
 */
export { ConsumerController, type ConsumerControllerOptions, type ManagedClusterSink, type SyncResult } from "./consumer-controller.js";
export { ConsumerRepository } from "./consumer-repository.js";
export type { ConsumerRow, ConsumerStore, DeleteConsumerResult, EnsureConsumerResult } from "./consumer-store.js";
export { FairQueue } from "./fair-queue.js";
export {
  MAESTRO_CONSUMERS_PATH,
  MAESTRO_RESOURCE_BUNDLES_PATH,
  MaestroRestConsumerStore,
  type MaestroRestConsumerStoreOptions,
} from "./maestro-rest-consumer-store.js";
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
