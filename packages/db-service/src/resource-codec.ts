import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  Action,
  DataTypes,
  Extension,
  SPEC_VERSION,
  eventTypeOf,
  isTimestamp,
  type CloudEvent,
  type ExtensionValue,
} from "@ocm-conductor/protocol";

/** The source ID of every spec event the maestro route sends (`constants.DefaultSourceID`). */
export const MAESTRO_SOURCE = "maestro";

/** A `resources` row as postgres.js returns it (maestro-db.md §1.2, §10). */
export interface ResourceRow {
  id: string;
  /** `bigint`: postgres.js returns it as a string (gotcha 3). */
  version: string | number | bigint;
  consumer_name: string | null;
  source: string | null;
  /** One CloudEvent in its JSON format, `metadata` as an object (§3.6). */
  payload: Record<string, unknown> | null;
  /** The last agent status CloudEvent in JSON format, or null (SQL NULL or jsonb `null`). */
  status: Record<string, unknown> | null;
  deleted_at: Date | string | null;
}

/** Thrown for a row Maestro's readers would fail on too; the row is skipped, never half-sent. */
export class ResourceRowError extends Error {
  override readonly name = "ResourceRowError";
}

const SPEC_ATTRIBUTES = new Set(["specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "subject", "data", "data_base64"]);
const encoder = new TextEncoder();

/**
 * Builds the ManifestBundle spec event of a resource, as the reference conductor does
 * (maestro-db.md §3.6): the stored payload CloudEvent with `source` = `maestro`,
 * `resourceid` = the row id, `resourceversion` = the row's version (an integer, never the payload's
 * own), `clustername` = the consumer, `deletiontimestamp` = `deleted_at` when soft-deleted (then
 * without data, like every work deletion), and `metadata` turned back into a JSON string.
 *
 * @throws ResourceRowError for a row without a payload, consumer or usable version.
 */
export function resourceToSpecEvent(row: ResourceRow, action: string = Action.createRequest): CloudEvent {
  if (row.payload === null || typeof row.payload !== "object") throw new ResourceRowError(`resource ${row.id} has no payload`);
  if (row.consumer_name === null || row.consumer_name === "") throw new ResourceRowError(`resource ${row.id} has no consumer`);
  const version = Number(row.version);
  if (!Number.isSafeInteger(version) || version < 0 || version > 2147483647) {
    throw new ResourceRowError(`resource ${row.id} has an unusable version ${String(row.version)}`);
  }
  const payload = row.payload;
  const extensions: Record<string, ExtensionValue> = {};
  for (const [key, value] of Object.entries(payload)) {
    if (SPEC_ATTRIBUTES.has(key) || value === null || value === undefined) continue;
    if (key === Extension.metadata) {
      extensions[key] = typeof value === "string" ? value : JSON.stringify(value);
    } else if (typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isInteger(value))) {
      extensions[key] = value;
    }
  }
  extensions[Extension.resourceId] = row.id;
  extensions[Extension.resourceVersion] = version;
  extensions[Extension.clusterName] = row.consumer_name;
  extensions[Extension.originalSource] ??= "";
  const deleted = row.deleted_at === null ? undefined : new Date(row.deleted_at);
  if (deleted !== undefined) extensions[Extension.deletionTimestamp] = timestampFromDate(deleted);
  const event: CloudEvent = {
    id: typeof payload.id === "string" && payload.id !== "" ? payload.id : row.id,
    source: MAESTRO_SOURCE,
    specVersion: SPEC_VERSION,
    type: eventTypeOf(DataTypes.manifestBundles, "spec", action),
    extensions,
  };
  const time = typeof payload.time === "string" ? Date.parse(payload.time) : Number.NaN;
  if (!Number.isNaN(time)) event.time = timestampFromDate(new Date(time));
  if (deleted === undefined && payload.data !== undefined && payload.data !== null) {
    event.dataContentType = "application/json";
    event.data = encoder.encode(JSON.stringify(payload.data));
  }
  return event;
}

/**
 * Turns an agent's status event into the JSON object Maestro stores in `resources.status` and
 * `status_events.status` (maestro-db.md §3.6): a CloudEvent in JSON format, data as JSON, and
 * `metadata` replaced by the spec payload's metadata object (as the reference conductor does).
 */
export function statusEventToJson(event: CloudEvent, specMetadata: unknown): Record<string, unknown> {
  const doc: Record<string, unknown> = {
    specversion: event.specVersion,
    id: event.id,
    source: event.source,
    type: event.type,
  };
  if (event.time !== undefined) doc.time = rfc3339(event.time);
  if (event.dataContentType !== undefined) doc.datacontenttype = event.dataContentType;
  for (const [key, value] of Object.entries(event.extensions)) {
    if (isTimestamp(value)) doc[key] = rfc3339(value);
    else if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") doc[key] = value;
  }
  if (specMetadata !== undefined && specMetadata !== null) doc[Extension.metadata] = specMetadata;
  else if (typeof doc[Extension.metadata] === "string") doc[Extension.metadata] = parseOrKeep(doc[Extension.metadata] as string);
  if (event.data !== undefined) doc.data = JSON.parse(new TextDecoder().decode(event.data));
  return doc;
}

function rfc3339(t: Timestamp): string {
  const iso = timestampDate(t).toISOString();
  return t.nanos % 1_000_000 === 0 ? iso : iso.replace(/\.\d{3}Z$/, `.${String(t.nanos).padStart(9, "0")}Z`);
}

function parseOrKeep(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
