import { ConsumerControllerError } from "./errors.js";

/** The longest consumer name Maestro accepts (a DNS label). */
export const MAX_CONSUMER_NAME_LENGTH = 63;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * True if `name` is a valid Maestro consumer name: an RFC 1123 DNS label
 * (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters), as Kubernetes' `ValidateNamespaceName`
 * that Maestro's `ValidateConsumer` calls (maestro-db.md §7).
 */
export function isValidConsumerName(name: unknown): name is string {
  return typeof name === "string" && name.length <= MAX_CONSUMER_NAME_LENGTH && DNS_LABEL.test(name);
}

/**
 * Throws `ConsumerControllerError("invalid-name")` unless {@link isValidConsumerName}. The message
 * quotes at most the first 80 characters of the name, so hostile input cannot flood the logs.
 */
export function assertValidConsumerName(name: unknown): asserts name is string {
  if (isValidConsumerName(name)) return;
  const shown = typeof name === "string" ? JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}…` : name) : String(name);
  const length = typeof name === "string" ? ` (${name.length} characters)` : "";
  throw new ConsumerControllerError(
    "invalid-name",
    `cluster name ${shown}${length} is not a valid Maestro consumer name: it must be an RFC 1123 DNS label ` +
      `(lower-case letters, digits and '-', starting and ending with a letter or digit, at most ${MAX_CONSUMER_NAME_LENGTH} characters)`,
  );
}
