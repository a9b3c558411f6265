import { create } from "@bufbuild/protobuf";
import { TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  CloudEventAttributeValueSchema,
  CloudEventSchema,
  type CloudEvent as PbCloudEvent,
  type CloudEventAttributeValue,
} from "./gen/io/cloudevents/v1/cloudevent_pb.js";
import { isTimestamp, type CloudEvent, type ExtensionValue } from "./cloud-event.js";
import { ProtocolError } from "./protocol-error.js";
import { parseRfc3339 } from "./rfc3339.js";
import { checkUri } from "./uri.js";

// The OCM "binary mode" mapping of protocol.md §2: optional attributes and extensions are keyed
// "ce-<name>", the content type is keyed "contenttype", data travels in binary_data only.
const PREFIX = "ce-";
const CONTENT_TYPE_KEY = "contenttype";
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** Spec attributes a "ce-" key may name instead of an extension (CloudEvents v1.0). */
const SPEC_ATTRIBUTES = new Set([
  "id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time",
]);

/** Content types that switch a Go reader into structured mode (protocol.md §2.2). */
const STRUCTURED_FORMATS = new Set(["application/cloudevents+json", "application/cloudevents-batch+json"]);

/**
 * Encodes a CloudEvent as the protobuf message OCM agents read: `contenttype`, then `ce-time`,
 * `ce-subject`, `ce-dataschema`, then extensions in insertion order; data in `binary_data`.
 *
 * @throws ProtocolError `invalid-extension-name` or `invalid-attribute` for values Go would refuse.
 */
export function toProto(event: CloudEvent): PbCloudEvent {
  const attributes: Record<string, CloudEventAttributeValue> = {};
  if (event.dataContentType !== undefined) {
    attributes[CONTENT_TYPE_KEY] = attr({ case: "ceString", value: event.dataContentType });
  }
  if (event.time !== undefined) attributes[`${PREFIX}time`] = attr({ case: "ceTimestamp", value: event.time });
  if (event.subject !== undefined) attributes[`${PREFIX}subject`] = attr({ case: "ceString", value: event.subject });
  if (event.dataSchema !== undefined) attributes[`${PREFIX}dataschema`] = attr({ case: "ceUri", value: event.dataSchema });
  for (const [name, value] of Object.entries(event.extensions)) {
    checkExtensionName(name);
    if (name !== name.toLowerCase() || SPEC_ATTRIBUTES.has(name)) {
      throw new ProtocolError("invalid-extension-name", `bad extension name "${name}": must be lower case and not a spec attribute`);
    }
    attributes[PREFIX + name] = attr(wireValue(name, value));
  }
  return create(CloudEventSchema, {
    id: event.id,
    source: event.source,
    specVersion: event.specVersion,
    type: event.type,
    attributes,
    data: event.data !== undefined && event.data.length > 0 ? { case: "binaryData", value: event.data } : { case: undefined },
  });
}

/**
 * Decodes a protobuf CloudEvent the way the Go agents and broker do (`binding.ToEvent` over the OCM
 * message reader), refusing what they refuse.
 *
 * Deliberate differences, each refused with a clear code instead of half-supported: structured mode
 * and spec version 0.3 (no OCM component emits either).
 *
 * @throws ProtocolError
 */
export function fromProto(message: PbCloudEvent): CloudEvent {
  const entries = Object.entries(message.attributes);
  if (entries.length === 0) {
    // An empty map is indistinguishable from an absent one on the wire (protocol.md §2.2).
    throw new ProtocolError("unknown-encoding", "unknown Message encoding: the event has no attributes");
  }
  const contentType = message.attributes[CONTENT_TYPE_KEY]?.attr;
  if (contentType?.case === "ceString" && STRUCTURED_FORMATS.has(mediaType(contentType.value))) {
    throw new ProtocolError("structured-mode", `structured content mode (${contentType.value}) is not supported`);
  }
  if (message.specVersion === "") {
    throw new ProtocolError("unknown-encoding", "unknown Message encoding: spec_version is empty");
  }
  if (message.specVersion !== "1.0") {
    throw new ProtocolError("unknown-encoding", `unknown Message encoding: unsupported spec version "${message.specVersion}"`);
  }
  const event: CloudEvent = { id: message.id, source: message.source, specVersion: "1.0", type: message.type, extensions: {} };
  for (const [key, value] of entries) {
    const fail = (why: string) => new ProtocolError("invalid-attribute", `failed to convert attribute ${key}: ${why}`);
    const v = value.attr;
    if (v.case === undefined) throw fail("unsupported attribute type: no value");
    if (v.case === "ceUri" || v.case === "ceUriRef") {
      const why = checkUri(v.value);
      if (why !== undefined) throw fail(why);
    }
    if (key === CONTENT_TYPE_KEY) {
      event.dataContentType = asString(v, () => fail("datacontenttype must be a string"));
    } else if (key.startsWith(PREFIX)) {
      setPrefixed(event, key.slice(PREFIX.length), v, fail);
    }
    // Any other key is ignored, as the Go reader ignores it.
  }
  if (message.data.case === "binaryData" && message.data.value.length > 0) {
    event.data = message.data.value;
  }
  return event;
}

type AttrCase = CloudEventAttributeValue["attr"];
type Fail = (why: string) => ProtocolError;

function setPrefixed(event: CloudEvent, rawName: string, v: Exclude<AttrCase, { case: undefined }>, fail: Fail): void {
  const name = rawName.toLowerCase();
  switch (name) {
    case "id":
    case "source":
    case "type":
    case "subject":
    case "datacontenttype": {
      const s = asString(v, () => fail(`${name} must be a string`));
      if (name === "datacontenttype") event.dataContentType = s;
      else event[name] = s;
      return;
    }
    case "specversion":
      if (asString(v, () => fail("specversion must be a string")) !== "1.0") throw fail("unrecognized event version");
      return;
    case "dataschema":
      if (v.case === "ceUri" || v.case === "ceUriRef" || v.case === "ceString") {
        const why = checkUri(v.value);
        if (why !== undefined) throw fail(why);
        event.dataSchema = v.value;
        return;
      }
      throw fail("dataschema must be a URI");
    case "time":
      event.time = asTime(v, fail);
      return;
  }
  checkExtensionName(rawName);
  event.extensions[name] = extensionValue(v);
}

function extensionValue(v: Exclude<AttrCase, { case: undefined }>): ExtensionValue {
  switch (v.case) {
    case "ceString":
    case "ceInteger":
    case "ceBoolean":
    case "ceBytes":
    case "ceTimestamp":
      return v.value;
    case "ceUri":
      return { uri: v.value };
    case "ceUriRef":
      return { uriRef: v.value };
  }
}

function wireValue(name: string, value: ExtensionValue): AttrCase {
  if (typeof value === "string") return { case: "ceString", value };
  if (typeof value === "boolean") return { case: "ceBoolean", value };
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
      throw new ProtocolError("invalid-attribute", `extension ${name}: ${value} is not an int32`);
    }
    return { case: "ceInteger", value };
  }
  if (value instanceof Uint8Array) return { case: "ceBytes", value };
  if (isTimestamp(value)) return { case: "ceTimestamp", value };
  if ("uri" in value) return { case: "ceUri", value: value.uri };
  if ("uriRef" in value) return { case: "ceUriRef", value: value.uriRef };
  throw new ProtocolError("invalid-attribute", `extension ${name}: unsupported value type`);
}

function asString(v: Exclude<AttrCase, { case: undefined }>, fail: () => ProtocolError): string {
  if (v.case !== "ceString") throw fail();
  return v.value;
}

function asTime(v: Exclude<AttrCase, { case: undefined }>, fail: Fail): Timestamp {
  if (v.case === "ceTimestamp") return v.value;
  if (v.case === "ceString") {
    const t = parseRfc3339(v.value);
    if (t === undefined) throw fail(`time ${JSON.stringify(v.value)} is not RFC 3339`);
    return create(TimestampSchema, t);
  }
  throw fail("time must be a timestamp or an RFC 3339 string");
}

/** Extension names are ASCII letters and digits, as the CloudEvents Go SDK requires. */
function checkExtensionName(name: string): void {
  if (!/^[A-Za-z0-9]+$/.test(name)) {
    throw new ProtocolError(
      "invalid-extension-name",
      `bad extension name "${name}": CloudEvents attribute names must be non-empty ASCII letters and digits`,
    );
  }
}

function attr(value: AttrCase): CloudEventAttributeValue {
  return create(CloudEventAttributeValueSchema, { attr: value });
}

function mediaType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}
