import { ProtocolError, kubeStatus, type KubeStatus, type StatusReason } from "@ocm-conductor/protocol";

/**
 * The error a {@link Backend} throws to refuse an agent request. It carries the Kubernetes
 * `metav1.Status` the agent receives as the JSON message of a `FailedPrecondition` status, so
 * `errors.IsAlreadyExists`, `IsNotFound`, `IsConflict` work on the agent side (protocol.md §5.4).
 */
export class BackendError extends Error {
  override readonly name = "BackendError";

  constructor(
    readonly status: KubeStatus,
    options?: { cause?: unknown },
  ) {
    super(status.message, options);
  }

  /** The status reason, e.g. `AlreadyExists`. */
  get code(): StatusReason | "" {
    return this.status.reason;
  }

  /** Builds a BackendError from a reason and message. */
  static of(reason: StatusReason, message: string, details?: KubeStatus["details"]): BackendError {
    return new BackendError(kubeStatus(reason, message, details));
  }

  /**
   * Runs a protocol read (an extension, a payload) and turns its `ProtocolError` into a
   * `BadRequest` refusal that names what was being read, so every backend words bad agent input
   * the same way. Other errors pass through.
   */
  static badRequestOn<T>(what: string, read: () => T): T {
    try {
      return read();
    } catch (err) {
      if (err instanceof ProtocolError) throw BackendError.of("BadRequest", `${what}, ${err.message}`);
      throw err;
    }
  }
}
