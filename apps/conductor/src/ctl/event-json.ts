import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { SPEC_VERSION, type CloudEvent, type ExtensionValue } from "@ocm-conductor/protocol";

/** A CloudEvents JSON document `conductor ctl publish` cannot send; the message says what is wrong. */
export class EventJsonError extends Error {
  override readonly name = "EventJsonError";
}

const NAME = /^[a-z0-9]{1,20}$/;
const ATTRIBUTES = new Set(["specversion", "id", "source", "type", "time", "datacontenttype", "data", "data_base64", "subject", "dataschema"]);

/**
 * Reads an event in the CloudEvents JSON format (what `maestro` stores and what people write by
 * hand): `specversion` 1.0, `source` and `type` required, `id` defaulting to a UUID, `data` as JSON
 * or `data_base64`, every other member an extension. Object-valued extensions such as `metadata`
 * become JSON strings, as OCM carries them on the wire.
 *
 * @throws EventJsonError naming the member at fault.
 */
export function parseEventJson(text: string): CloudEvent {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new EventJsonError(`not JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new EventJsonError("the event must be a JSON object");
  const o = doc as Record<string, unknown>;
  const text_ = (key: string, required: boolean): string | undefined => {
    const v = o[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== "string" || v === "") throw new EventJsonError(`"${key}" must be a non-empty string`);
    return v;
  };
  const specVersion = text_("specversion", false) ?? SPEC_VERSION;
  if (specVersion !== SPEC_VERSION) throw new EventJsonError(`"specversion" must be "${SPEC_VERSION}"`);
  const event: CloudEvent = {
    id: text_("id", false) ?? randomUUID(),
    source: text_("source", true)!,
    specVersion,
    type: text_("type", true)!,
    extensions: {},
  };
  const time = text_("time", false);
  if (time !== undefined) {
    const ms = Date.parse(time);
    if (Number.isNaN(ms)) throw new EventJsonError(`"time" is not an RFC 3339 time: ${time}`);
    event.time = timestampFromDate(new Date(ms));
  }
  const contentType = text_("datacontenttype", false);
  if (o.data !== undefined && o.data_base64 !== undefined) throw new EventJsonError(`"data" and "data_base64" are exclusive`);
  if (o.data !== undefined) {
    event.dataContentType = contentType ?? "application/json";
    event.data = new TextEncoder().encode(JSON.stringify(o.data));
  } else if (o.data_base64 !== undefined) {
    if (typeof o.data_base64 !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(o.data_base64)) throw new EventJsonError(`"data_base64" must be base64`);
    event.data = Buffer.from(o.data_base64, "base64");
    if (contentType !== undefined) event.dataContentType = contentType;
  }
  for (const [key, value] of Object.entries(o)) {
    if (ATTRIBUTES.has(key)) continue;
    if (!NAME.test(key)) throw new EventJsonError(`extension name "${key}" must be 1-20 lower-case letters or digits`);
    event.extensions[key] = extensionValue(key, value);
  }
  return event;
}

function extensionValue(key: string, value: unknown): ExtensionValue {
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isInteger(value) || Math.abs(value) > 2147483647) throw new EventJsonError(`extension "${key}" must be a 32-bit integer, a string or a boolean`);
    return value;
  }
  if (typeof value === "object" && value !== null) return JSON.stringify(value);
  throw new EventJsonError(`extension "${key}" has an unsupported value`);
}
