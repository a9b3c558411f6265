import { randomUUID } from "node:crypto";
import { timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Extension, SPEC_VERSION, type CloudEvent, type ExtensionValue } from "./cloud-event.js";

/** What {@link newEvent} needs to build an OCM event. */
export interface NewEventInit {
  /** Full type string, e.g. `<dataType>.spec.create_request`. */
  type: string;
  /** The source ID; it becomes the agent-side `originalsource` label (keep it stable). */
  source: string;
  clusterName: string;
  /** Defaults to "" exactly as the Go event builder does. */
  originalSource?: string;
  /** Further extensions, set after `clustername` and `originalsource`. */
  extensions?: Record<string, ExtensionValue | undefined>;
  /** JSON-serialisable data, or bytes. JSON data sets `datacontenttype` to `application/json`. */
  data?: unknown;
  id?: string;
  time?: Timestamp;
}

const encoder = new TextEncoder();

/**
 * Builds an event the way sdk-go's `EventBuilder.NewEvent` does: a UUID id, the current time, and
 * always the `clustername` and `originalsource` extensions, so the attribute map is never empty on
 * the wire (protocol.md §2.1, gotcha 3). Extensions whose value is undefined are skipped.
 */
export function newEvent(init: NewEventInit): CloudEvent {
  const extensions: Record<string, ExtensionValue> = {
    [Extension.clusterName]: init.clusterName,
    [Extension.originalSource]: init.originalSource ?? "",
  };
  for (const [name, value] of Object.entries(init.extensions ?? {})) {
    if (value !== undefined) extensions[name] = value;
  }
  const event: CloudEvent = {
    id: init.id ?? randomUUID(),
    source: init.source,
    specVersion: SPEC_VERSION,
    type: init.type,
    time: init.time ?? timestampNow(),
    extensions,
  };
  if (init.data instanceof Uint8Array) {
    event.data = init.data;
  } else if (init.data !== undefined) {
    event.dataContentType = "application/json";
    event.data = encoder.encode(JSON.stringify(init.data));
  }
  return event;
}

/**
 * Parses event data as JSON. Absent data yields undefined; the caller decides whether that is an
 * error.
 *
 * @throws SyntaxError when the data is not JSON.
 */
export function eventDataJson(event: CloudEvent): unknown {
  if (event.data === undefined) return undefined;
  return JSON.parse(new TextDecoder("utf-8", { fatal: false }).decode(event.data));
}
