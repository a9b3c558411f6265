/**
 * The OCM CloudEvents-over-gRPC protocol: the generated `io.cloudevents.v1.CloudEventService` and
 * `grpc.health.v1.Health` descriptors, the conductor's internal `ocm.conductor.v1.BackendService`
 * (router ⇄ backend processes in the split deployment), the OCM binary-mode codec, type strings, extensions, the
 * work payloads and the Kubernetes error shape agents decode.
 *
 * @packageDocumentation
 */
export {
  CloudEventService,
  CloudEventSchema,
  CloudEventAttributeValueSchema,
  PublishRequestSchema,
  SubscriptionRequestSchema,
  file_io_cloudevents_v1_cloudevent,
  type CloudEvent as PbCloudEvent,
  type CloudEventAttributeValue as PbCloudEventAttributeValue,
  type PublishRequest,
  type SubscriptionRequest,
} from "./gen/io/cloudevents/v1/cloudevent_pb.js";
export {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "./gen/grpc/health/v1/health_pb.js";
export {
  BackendService,
  HandleRequestSchema,
  ListResponseSchema,
  WatchSpecResponseSchema,
  type HandleRequest,
  type ListRequest,
  type ListResponse,
  type WatchSpecRequest,
  type WatchSpecResponse,
} from "./gen/ocm/conductor/v1/backend_pb.js";
export { ProtocolError, type ProtocolErrorCode } from "./protocol-error.js";
export {
  Extension,
  SPEC_VERSION,
  isTimestamp,
  type CeUri,
  type CeUriRef,
  type CloudEvent,
  type ExtensionValue,
} from "./cloud-event.js";
export { fromProto, toProto } from "./codec.js";
export { hasExtension, integerExtension, stringExtension, timeExtension } from "./extensions.js";
export {
  Action,
  DataTypes,
  HEARTBEAT_TYPE,
  SubResources,
  eventTypeOf,
  formatDataType,
  formatEventType,
  parseDataType,
  parseEventType,
  type DataType,
  type EventType,
  type SubResource,
} from "./event-type.js";
export { eventDataJson, newEvent, type NewEventInit } from "./event-builder.js";
export { heartbeatMessage } from "./heartbeat.js";
export { parseResourceVersionList, type ResourceStatusHash, type ResourceVersion } from "./resync-payload.js";
export * from "./manifest-bundle.js";
export { StatusReasons, kubeStatus, statusErrorMessage, type KubeStatus, type StatusReason } from "./kube-status.js";
