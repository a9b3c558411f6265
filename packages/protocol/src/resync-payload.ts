import type { CloudEvent } from "./cloud-event.js";
import { ProtocolError } from "./protocol-error.js";

/** One entry of a spec resync request: what the agent has for a resource. */
export interface ResourceVersion {
  resourceID: string;
  /** Generation for manifestbundles, `metadata.resourceVersion` for other types. */
  resourceVersion: number;
}

/** One entry of a status resync request: the hash of the status the source has. */
export interface ResourceStatusHash {
  resourceID: string;
  statusHash: string;
}

const decoder = new TextDecoder();

/**
 * Decodes the data of a `spec.resync_request` (`{"resourceVersions":[…]}`) with Go's
 * `json.Unmarshal` strictness where it matters: data must be present and be a JSON object,
 * `resourceID` a string, `resourceVersion` an integer in int64 range; `null` list means empty and
 * unknown keys are ignored.
 *
 * @throws ProtocolError `invalid-payload`
 */
export function parseResourceVersionList(event: CloudEvent): ResourceVersion[] {
  const fail = (why: string) =>
    new ProtocolError("invalid-payload", `failed to unmarshal spec resync request payload: ${why}`);
  if (event.data === undefined) throw fail("unexpected end of JSON input");
  let doc: unknown;
  try {
    doc = JSON.parse(decoder.decode(event.data));
  } catch (err) {
    throw fail((err as Error).message);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw fail("payload is not a JSON object");
  const list = (doc as Record<string, unknown>)["resourceVersions"];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw fail("resourceVersions is not an array");
  return list.map((item, i) => {
    if (typeof item !== "object" || item === null) throw fail(`resourceVersions[${i}] is not an object`);
    const { resourceID = "", resourceVersion = 0 } = item as Record<string, unknown>;
    if (typeof resourceID !== "string") throw fail(`resourceVersions[${i}].resourceID is not a string`);
    if (typeof resourceVersion !== "number" || !Number.isSafeInteger(resourceVersion)) {
      throw fail(`resourceVersions[${i}].resourceVersion is not an integer`);
    }
    return { resourceID, resourceVersion };
  });
}
