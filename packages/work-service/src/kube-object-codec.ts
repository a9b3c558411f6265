import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  Extension,
  ProtocolError,
  eventDataJson,
  eventTypeOf,
  formatDataType,
  newEvent,
  parseEventType,
  stringExtension,
  type CloudEvent,
  type EventType,
} from "@ocm-conductor/protocol";
import type { KubeConfig } from "@kubernetes/client-node";
import { BackendError, type Logger, type SpecEventSink } from "@ocm-conductor/router";

// The envelope of non-work hub objects (hub-services.md §1.6, Profile B = sdk-go v1.3 codecs), and
// the checks every agent request passes before it reaches the hub's API server.

/** Object metadata as the API server sends it (JSON: timestamps are strings, never `Date`s). */
export interface KubeObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string | null;
  [field: string]: unknown;
}

/** A Kubernetes object as raw JSON, exactly as read from (or written to) the API server. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: KubeObjectMeta;
  [field: string]: unknown;
}

/** Where a kind lives in the hub's API and which CloudEvents data type carries it. */
export interface KubeResource {
  /** API group; never the core group (the custom-objects API needs one). */
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** The data type string, e.g. `coordination.k8s.io.v1.leases`. */
  dataType: string;
  /** The word the Go services use in messages: `cluster`, `csr`, `lease`, `event`, `addon`. */
  noun: string;
}

/** The label that ties CSRs and leases to their cluster (`open-cluster-management.io/cluster-name`). */
export const CLUSTER_NAME_LABEL = "open-cluster-management.io/cluster-name";

/** The `source` of every hub → agent event, as OCM's services (`CloudEventsSourceKube`). */
export const KUBE_SOURCE = "kube";

/** Options shared by the Kubernetes-backed backends of this package. */
export interface KubeBackendOptions {
  kubeConfig: KubeConfig;
  /** `source` of spec events; agents echo it as `originalsource`. Default {@link KUBE_SOURCE}. */
  source?: string;
  logger?: Logger;
  /** Periodic re-send of every cached object (client-go's informer resync); default 30 min, 0 disables. */
  resyncMs?: number;
}

/**
 * Builds and publishes a spec event, logging instead of throwing: an informer callback must never
 * fail because one object cannot be encoded or routed (OCM's handlers only log, too).
 */
export function publishSafely(sink: SpecEventSink | undefined, logger: Logger, build: () => CloudEvent, what: string): void {
  if (sink === undefined) return;
  try {
    sink.publish(build());
  } catch (err) {
    logger.error("failed to push a hub object", { object: what, error: String(err) });
  }
}

/** `<group>/<version>` of a resource. */
export function apiVersionOf(resource: KubeResource): string {
  return `${resource.group}/${resource.version}`;
}

/** The cluster-wide collection path of a resource, for watches. */
export function collectionPath(resource: KubeResource): string {
  return `/apis/${resource.group}/${resource.version}/${resource.plural}`;
}

/** `namespace/name` for namespaced objects, `name` otherwise (the key in Go's messages). */
export function objectKey(resource: KubeResource, obj: KubeObject): string {
  return resource.namespaced ? `${obj.metadata.namespace ?? ""}/${obj.metadata.name}` : obj.metadata.name;
}

/** True when the object has a deletion timestamp. */
export function isDeleting(obj: KubeObject): boolean {
  return typeof obj.metadata.deletionTimestamp === "string" && obj.metadata.deletionTimestamp !== "";
}

/**
 * A copy of an object the hub no longer has, as agents must see it: a deletion timestamp (now,
 * unless it already has one) and no finalizers, so sdk-go v1.3 agents drop it from their stores
 * instead of keeping it as "deleting" forever.
 */
export function tombstone(obj: KubeObject): KubeObject {
  const { finalizers: _gone, ...metadata } = obj.metadata;
  return { ...obj, metadata: { ...metadata, deletionTimestamp: isDeleting(obj) ? obj.metadata.deletionTimestamp : new Date().toISOString() } };
}

/** What {@link encodeKubeObject} needs besides the object. */
export interface EncodeOptions {
  /** `create_request`, `update_request` or `delete_request`. */
  action: string;
  /** The cluster whose subscribers receive the event (the broker routes by it). */
  clusterName: string;
  /** Default {@link KUBE_SOURCE}. */
  source?: string;
}

/**
 * Encodes a hub object as a spec event the way sdk-go v1.3 codecs do: `resourceid` = UID,
 * `resourceversion` = `metadata.resourceVersion` (a decimal string, omitted when empty), data = the
 * full object with `apiVersion` and `kind`, plus a `deletiontimestamp` extension when it is deleting.
 *
 * Unlike the Go v1.3 codecs, a deleting object keeps its data. sdk-go v1.1.0 and v1.2.0 agents
 * decode a data-less deletion into a nameless empty object (and v1.1.0 then fails every later
 * resync of that type); with the data all three generations find the object and act on its
 * deletion, and v1.3 agents drop it or, while it still has finalizers, mark it deleting — which is
 * exactly the hub's state (see the package README, "Agent generations").
 */
export function encodeKubeObject(resource: KubeResource, obj: KubeObject, options: EncodeOptions): CloudEvent {
  const deleting = isDeleting(obj);
  const rv = obj.metadata.resourceVersion;
  return newEvent({
    type: eventTypeOf(resource.dataType, "spec", options.action),
    source: options.source ?? KUBE_SOURCE,
    clusterName: options.clusterName,
    extensions: {
      [Extension.resourceId]: obj.metadata.uid === undefined || obj.metadata.uid === "" ? undefined : obj.metadata.uid,
      [Extension.resourceVersion]: rv === undefined || rv === "" ? undefined : rv,
      [Extension.deletionTimestamp]: deleting ? timestampFromDate(new Date(obj.metadata.deletionTimestamp as string)) : undefined,
    },
    data: { ...obj, apiVersion: apiVersionOf(resource), kind: resource.kind },
  });
}

/** An agent request, decoded and checked by {@link decodeAgentRequest}. */
export interface AgentRequest<T extends KubeObject = KubeObject> {
  type: EventType;
  /** The `clustername` extension: the cluster the agent speaks for. */
  clusterName: string;
  /** The object in the event data, with `apiVersion` and `kind` set to the resource's. */
  object: T;
}

/**
 * Decodes an agent event into a request for `resource`, refusing with `BadRequest` (and before any
 * hub call) a type that does not parse or is of another data type, a missing `clustername`, data
 * that is absent, not JSON or not an object with `metadata.name`, another `kind` or `apiVersion`,
 * and any action `supports` rejects: `unsupported action <a> for <noun> <ns/name>`.
 */
export function decodeAgentRequest<T extends KubeObject = KubeObject>(
  resource: KubeResource,
  event: CloudEvent,
  supports: (type: EventType) => boolean,
): AgentRequest<T> {
  const type = bad(() => parseEventType(event.type), `failed to parse cloud event type ${event.type}`);
  if (formatDataType(type) !== resource.dataType) {
    throw BackendError.of("BadRequest", `event type ${event.type} is not of data type ${resource.dataType}`);
  }
  const clusterName = bad(() => stringExtension(event, Extension.clusterName), "failed to get cluster name");
  if (clusterName === "") throw BackendError.of("BadRequest", "failed to get cluster name, the clustername extension is empty");
  const data = bad(() => eventDataJson(event), "failed to unmarshal event data");
  if (data === undefined) throw BackendError.of("BadRequest", `the ${resource.noun} event has no data`);
  const object = asObject(resource, data);
  if (!supports(type)) {
    throw BackendError.of("BadRequest", `unsupported action ${type.action} for ${resource.noun} ${objectKey(resource, object)}`);
  }
  return { type, clusterName, object: object as T };
}

/**
 * Refuses (`BadRequest`) a namespaced object outside the namespace of the cluster the agent speaks
 * for: agents only ever write in their own cluster namespace.
 */
export function requireClusterNamespace(resource: KubeResource, request: AgentRequest): void {
  const namespace = request.object.metadata.namespace;
  if (namespace !== request.clusterName) {
    throw BackendError.of("BadRequest",
      `${resource.noun} ${objectKey(resource, request.object)} is not in the namespace of cluster ${request.clusterName}`);
  }
}

function asObject(resource: KubeResource, data: unknown): KubeObject {
  const what = `failed to unmarshal event data, the ${resource.noun}`;
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw BackendError.of("BadRequest", `${what} is not a JSON object`);
  const obj = data as Partial<KubeObject>;
  if (typeof obj.metadata !== "object" || obj.metadata === null || Array.isArray(obj.metadata)) {
    throw BackendError.of("BadRequest", `${what} has no metadata`);
  }
  if (typeof obj.metadata.name !== "string" || obj.metadata.name === "") throw BackendError.of("BadRequest", `${what} has no metadata.name`);
  if (obj.metadata.namespace !== undefined && typeof obj.metadata.namespace !== "string") {
    throw BackendError.of("BadRequest", `${what} has a metadata.namespace that is not a string`);
  }
  if (obj.kind !== undefined && obj.kind !== "" && obj.kind !== resource.kind) {
    throw BackendError.of("BadRequest", `${what} has kind ${String(obj.kind)}, expected ${resource.kind}`);
  }
  if (obj.apiVersion !== undefined && obj.apiVersion !== "" && obj.apiVersion !== apiVersionOf(resource)) {
    throw BackendError.of("BadRequest", `${what} has apiVersion ${String(obj.apiVersion)}, expected ${apiVersionOf(resource)}`);
  }
  return { ...(obj as KubeObject), apiVersion: apiVersionOf(resource), kind: resource.kind };
}

function bad<T>(fn: () => T, what: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ProtocolError || err instanceof SyntaxError) throw BackendError.of("BadRequest", `${what}, ${err.message}`);
    throw err;
  }
}
