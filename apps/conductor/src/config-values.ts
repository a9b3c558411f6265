/**
 * The configuration error and the value readers shared by the config file sections: each reader
 * validates one value and throws {@link ConfigError} naming its key, so a bad file never half-applies.
 */
import { parseGoDuration } from "./duration.js";

/** Thrown for an unreadable or invalid configuration; the message names the key and the rule. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Always `invalid-config`: the one error code of the configuration boundary (exit status 2). */
  readonly code = "invalid-config";
}

/** Returns a sub-mapping of `doc`, `{}` when absent or null. */
export function section(doc: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = doc[key];
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw new ConfigError(`${key} must be a mapping`);
  return value as Record<string, unknown>;
}

/** A non-empty string. */
export function readString(key: string, value: unknown): string {
  if (typeof value !== "string" || value === "") throw new ConfigError(`${key} must be a non-empty string`);
  return value;
}

/** An integer in `[min, max]`. */
export function readInt(key: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parses a TCP port given as a string (the Go form) or a number; `min` is 0 for "pick one". */
export function readPort(key: string, value: unknown, min = 0): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  return readInt(key, n, min, 65535);
}

/** `true` or `false`. */
export function readBool(key: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new ConfigError(`${key} must be true or false`);
  return value;
}

/** A Go duration (`30s`, `1m30s`) of at least `min` ms, in ms. */
export function readDuration(key: string, value: unknown, min: number): number {
  const ms = parseGoDuration(value);
  if (ms === undefined || ms < min) throw new ConfigError(`${key} must be a duration such as "30s" (at least ${min} ms), got ${JSON.stringify(value)}`);
  return ms;
}
