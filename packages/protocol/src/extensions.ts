import { create } from "@bufbuild/protobuf";
import { TimestampSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { isTimestamp, type CloudEvent } from "./cloud-event.js";
import { ProtocolError } from "./protocol-error.js";
import { parseRfc3339 } from "./rfc3339.js";

// Readers with the coercion rules of the CloudEvents Go SDK's `types.To*` helpers, which is how
// agents and the Go broker read extensions (protocol.md §2.2).

/**
 * Reads a string extension. Like Go's `ToString`, only a string value is accepted.
 *
 * @throws ProtocolError `missing-extension` when absent, `invalid-attribute` when not a string.
 */
export function stringExtension(event: CloudEvent, name: string): string {
  const value = event.extensions[name];
  if (value === undefined) throw missing(name);
  if (typeof value !== "string") {
    throw new ProtocolError("invalid-attribute", `failed to get ${name} extension: cannot convert ${describe(value)} to string`);
  }
  return value;
}

/**
 * Reads an int32 extension. Like Go's `ToInteger`, an integer or a string holding a decimal or
 * float number (truncated) is accepted.
 *
 * @throws ProtocolError `missing-extension` or `invalid-attribute`.
 */
export function integerExtension(event: CloudEvent, name: string): number {
  const value = event.extensions[name];
  if (value === undefined) throw missing(name);
  if (typeof value === "number") return value;
  if (typeof value === "string") {
    const trimmed = value.trim();
    const n = trimmed === "" ? Number.NaN : Number(trimmed);
    if (Number.isFinite(n) && n >= -2147483648 && n <= 2147483647) return Math.trunc(n);
  }
  throw new ProtocolError("invalid-attribute", `failed to get ${name} extension: cannot convert ${describe(value)} to int32`);
}

/**
 * Reads a timestamp extension. Like Go's `ToTime`, a timestamp or an RFC 3339 string is accepted.
 *
 * @throws ProtocolError `missing-extension` or `invalid-attribute`.
 */
export function timeExtension(event: CloudEvent, name: string): Timestamp {
  const value = event.extensions[name];
  if (value === undefined) throw missing(name);
  if (isTimestamp(value)) return value;
  if (typeof value === "string") {
    const t = parseRfc3339(value);
    if (t !== undefined) return create(TimestampSchema, t);
  }
  throw new ProtocolError("invalid-attribute", `failed to get ${name} extension: cannot convert ${describe(value)} to time`);
}

/** True when the event carries the named extension, whatever its type. */
export function hasExtension(event: CloudEvent, name: string): boolean {
  return event.extensions[name] !== undefined;
}

function missing(name: string): ProtocolError {
  return new ProtocolError("missing-extension", `failed to get ${name} extension: extension not found`);
}

function describe(value: unknown): string {
  if (value instanceof Uint8Array) return "bytes";
  if (typeof value === "object" && value !== null) return isTimestamp(value as never) ? "timestamp" : "URI";
  return typeof value;
}
