import { ProtocolError } from "./protocol-error.js";

/** The kind of objects an event carries: `<group>.<version>.<resource>` (protocol.md §3.1). */
export interface DataType {
  /** May itself contain dots, e.g. `io.open-cluster-management.works`. */
  group: string;
  version: string;
  resource: string;
}

/** Whether an event is about the spec or the status of its object. */
export type SubResource = "spec" | "status";

/** A parsed CloudEvents type: `<dataType>.<subResource>.<action>`. */
export interface EventType extends DataType {
  subResource: SubResource;
  /** Not validated when parsing, exactly as the Go parser does not validate it. */
  action: string;
}

/** The subresource constants of protocol.md §3.2. */
export const SubResources = { spec: "spec", status: "status" } as const satisfies Record<string, SubResource>;

/** The action constants of protocol.md §3.2. `watch` is used only for authorizing Subscribe. */
export const Action = {
  createRequest: "create_request",
  updateRequest: "update_request",
  deleteRequest: "delete_request",
  resyncRequest: "resync_request",
  resyncResponse: "resync_response",
  watchRequest: "watch_request",
} as const;

/** The data types OCM agents speak (protocol.md §3.3). */
export const DataTypes = {
  manifestBundles: "io.open-cluster-management.works.v1alpha1.manifestbundles",
  managedClusters: "cluster.open-cluster-management.io.v1.managedclusters",
  certificateSigningRequests: "certificates.k8s.io.v1.certificatesigningrequests",
  leases: "coordination.k8s.io.v1.leases",
  events: "events.k8s.io.v1.events",
  managedClusterAddOnsV1alpha1: "addon.open-cluster-management.io.v1alpha1.managedclusteraddons",
  managedClusterAddOnsV1beta1: "addon.open-cluster-management.io.v1beta1.managedclusteraddons",
  tokenRequests: "authentication.k8s.io.v1.tokenrequests",
} as const;

/** The heartbeat type. It has four dot-parts, so it is filtered before type parsing (§5.8). */
export const HEARTBEAT_TYPE = "io.open-cluster-management.cloudevents.heartbeat";

/**
 * Parses `<group>.<version>.<resource>` with the Go rules: at least three dot-parts, the last two
 * are version and resource, the rest is the group.
 *
 * @throws ProtocolError `invalid-data-type`
 */
export function parseDataType(text: string): DataType {
  const parts = text.split(".");
  if (parts.length < 3) {
    throw new ProtocolError("invalid-data-type", `unsupported cloudevents data type format: ${text}`);
  }
  return {
    group: parts.slice(0, -2).join("."),
    version: parts[parts.length - 2] as string,
    resource: parts[parts.length - 1] as string,
  };
}

/**
 * Parses `<dataType>.<spec|status>.<action>` with the Go rules: at least five dot-parts, the
 * subresource must be `spec` or `status`, the action is taken as is.
 *
 * @throws ProtocolError `invalid-type`
 */
export function parseEventType(text: string): EventType {
  const parts = text.split(".");
  const n = parts.length;
  if (n < 5) throw new ProtocolError("invalid-type", `unsupported cloudevents type format: ${text}`);
  const subResource = parts[n - 2] as string;
  if (subResource !== "spec" && subResource !== "status") {
    throw new ProtocolError("invalid-type", `unsupported subresource ${subResource}`);
  }
  return {
    group: parts.slice(0, n - 4).join("."),
    version: parts[n - 4] as string,
    resource: parts[n - 3] as string,
    subResource,
    action: parts[n - 1] as string,
  };
}

/** Formats a data type as `<group>.<version>.<resource>`. */
export function formatDataType(dataType: DataType): string {
  return `${dataType.group}.${dataType.version}.${dataType.resource}`;
}

/** Formats an event type as `<group>.<version>.<resource>.<subResource>.<action>`. */
export function formatEventType(eventType: EventType): string {
  return `${formatDataType(eventType)}.${eventType.subResource}.${eventType.action}`;
}

/** Builds the type string of an event of `dataType` (a data type string) for one action. */
export function eventTypeOf(dataType: string, subResource: SubResource, action: string): string {
  return `${dataType}.${subResource}.${action}`;
}
