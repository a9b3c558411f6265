// The Kubernetes `metav1.Status` carried in FailedPrecondition messages (protocol.md §5.4, §10.6):
// agents `json.Unmarshal` the gRPC status message into an `apierrors.StatusError`, whose only
// field is `ErrStatus`, so `errors.IsAlreadyExists` and friends work on their side.

/** A `metav1.Status` with the fields agents read. */
export interface KubeStatus {
  kind?: "Status";
  apiVersion?: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: StatusReason | "";
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: unknown[]; retryAfterSeconds?: number };
  code: number;
}

/** The `metav1.StatusReason` values the conductor returns, with their HTTP codes. */
export const StatusReasons = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  AlreadyExists: 409,
  Conflict: 409,
  Invalid: 422,
  TooManyRequests: 429,
  InternalError: 500,
  ServiceUnavailable: 503,
} as const;

/** A reason agents can detect with apimachinery's `errors.Is*` helpers. */
export type StatusReason = keyof typeof StatusReasons;

/** Builds a failure `metav1.Status` for `reason`, with the reason's HTTP code. */
export function kubeStatus(reason: StatusReason, message: string, details?: KubeStatus["details"]): KubeStatus {
  const status: KubeStatus = {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code: StatusReasons[reason],
  };
  if (details !== undefined) status.details = details;
  return status;
}

/** The exact gRPC status message for a Kubernetes error: `{"ErrStatus":{…}}`. */
export function statusErrorMessage(status: KubeStatus): string {
  return JSON.stringify({ ErrStatus: status });
}
