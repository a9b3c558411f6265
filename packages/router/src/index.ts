/**
 * The conductor's CloudEvents broker and router: the `io.cloudevents.v1.CloudEventService` that
 * OCM agents subscribe and publish to, routing spec events to streams by (cluster, data type), and
 * the {@link Backend} interface through which Kubernetes- and database-backed services plug in.
 * It has no Kubernetes or database dependency.
 *
 * @packageDocumentation
 */
export type { Backend, Identity, IncompleteList, ListOptions, RequestContext, SpecEventSink } from "./backend.js";
export { BackendError } from "./backend-error.js";
export { backendServiceImpl, registerBackendService, type BackendServiceHandle, type BackendServiceOptions } from "./backend-service.js";
export {
  Broker,
  type BrokerObserver,
  type BrokerOptions,
  type StreamEndReason,
  type StreamInfo,
  type StreamSnapshot,
  type Subscription,
} from "./broker.js";
export { SUBSCRIPTION_ID_HEADER, cloudEventServiceImpl, registerCloudEventService } from "./cloud-event-service.js";
export { kIdentity, kStreamReset } from "./context-keys.js";
export { silentLogger, type Logger } from "./logger.js";
export { MemoryWorkBackend, type MemoryWork } from "./memory-backend.js";
export { RemoteBackend, type RemoteBackendOptions } from "./remote-backend.js";
export { resyncResponses, type ResyncInput } from "./resync.js";
export { KUBE_SOURCE, MAESTRO_SOURCE, SourceRouter, workSourceOf, type SourceRouterOptions, type WorkSource } from "./source-router.js";
