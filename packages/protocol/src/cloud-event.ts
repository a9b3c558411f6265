import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** An absolute URI attribute value (`ce_uri` on the wire). */
export interface CeUri {
  readonly uri: string;
}

/** A URI-reference attribute value (`ce_uri_ref` on the wire). */
export interface CeUriRef {
  readonly uriRef: string;
}

/**
 * The value of a CloudEvent extension. The JS type decides the wire type (protocol.md §2.1):
 * `string` → `ce_string`, `number` (an int32) → `ce_integer`, `boolean` → `ce_boolean`,
 * `Uint8Array` → `ce_bytes`, a protobuf `Timestamp` → `ce_timestamp`, {@link CeUri} → `ce_uri`,
 * {@link CeUriRef} → `ce_uri_ref`.
 */
export type ExtensionValue = string | number | boolean | Uint8Array | Timestamp | CeUri | CeUriRef;

/**
 * A CloudEvent as the conductor handles it: the four required attributes as fields, the optional
 * spec attributes OCM uses, extensions by name, and data as bytes.
 *
 * Timestamps keep nanosecond precision so that events decoded from agents re-encode to the same
 * bytes.
 */
export interface CloudEvent {
  id: string;
  source: string;
  specVersion: string;
  type: string;
  /** `datacontenttype`; OCM sets `application/json` whenever there is data. */
  dataContentType?: string;
  dataSchema?: string;
  subject?: string;
  time?: Timestamp;
  /** Extensions by lower-case name, in the order they were set (the order they are encoded in). */
  extensions: Record<string, ExtensionValue>;
  /** Event data; absent when the event carries none. */
  data?: Uint8Array;
}

/** The CloudEvents spec version OCM speaks. */
export const SPEC_VERSION = "1.0";

/** Extension attribute names used by OCM (protocol.md §4). */
export const Extension = {
  clusterName: "clustername",
  originalSource: "originalsource",
  resourceId: "resourceid",
  resourceVersion: "resourceversion",
  deletionTimestamp: "deletiontimestamp",
  sequenceId: "sequenceid",
  statusHash: "statushash",
  metadata: "metadata",
  logTracing: "logtracing",
} as const;

/** Tells a protobuf `Timestamp` apart from the other object-shaped extension values. */
export function isTimestamp(value: ExtensionValue): value is Timestamp {
  return typeof value === "object" && value !== null && "$typeName" in value
    && value.$typeName === "google.protobuf.Timestamp";
}
