/**
 * Why a CloudEvent, type string or payload was refused by the protocol layer.
 *
 * - `unknown-encoding`: neither binary nor structured mode is detectable (no attributes, or no
 *   usable `spec_version`); the Go reader fails the same way (protocol.md §2.2).
 * - `structured-mode`: `contenttype` names a CloudEvents event format; OCM never uses structured
 *   mode, so we refuse it instead of guessing.
 * - `invalid-attribute`: an attribute value has no value, the wrong type for its attribute, or is
 *   out of range.
 * - `invalid-extension-name`: an extension name is empty or not ASCII letters and digits.
 * - `missing-extension`: a required extension (such as `clustername`) is absent.
 * - `invalid-type`: a CloudEvents type string does not follow `<dataType>.<spec|status>.<action>`.
 * - `invalid-data-type`: a data type string does not follow `<group>.<version>.<resource>`.
 * - `invalid-payload`: event data does not decode into the expected JSON shape.
 */
export type ProtocolErrorCode =
  | "unknown-encoding"
  | "structured-mode"
  | "invalid-attribute"
  | "invalid-extension-name"
  | "missing-extension"
  | "invalid-type"
  | "invalid-data-type"
  | "invalid-payload";

/**
 * The single error type thrown by `@ocm-conductor/protocol`. Callers branch on `code`; the message
 * is for humans and mirrors the Go wording where agents or operators may see it.
 */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";

  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
