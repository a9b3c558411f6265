import { ApiException } from "@kubernetes/client-node";
import { kubeStatus, type KubeStatus, type StatusReason } from "@ocm-conductor/protocol";
import { BackendError } from "@ocm-conductor/router";

/** The HTTP status of a Kubernetes API error, or undefined for other errors. */
export function httpStatusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/**
 * Turns an error from the Kubernetes API into the {@link BackendError} agents receive. A `Status`
 * body from the API server passes through unchanged, so agents see exactly the reason, code and
 * details the hub answered (hub-services.md §9 item 3); anything else becomes an `InternalError`
 * with a meaningful message instead of the Go server's `{}` (quirk g).
 */
export function toBackendError(err: unknown, what: string): BackendError {
  if (err instanceof BackendError) return err;
  if (err instanceof ApiException) {
    const status = parseStatus(err.body);
    if (status !== undefined) return new BackendError(status, { cause: err });
    return BackendError.of(reasonFor(err.code), `${what}: the API server answered ${err.code}`);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new BackendError(kubeStatus("InternalError", `${what}: ${message}`), { cause: err });
}

function parseStatus(body: unknown): KubeStatus | undefined {
  let value = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (typeof value !== "object" || value === null) return undefined;
  const s = value as Partial<KubeStatus> & { kind?: string };
  if (s.kind !== "Status" || typeof s.code !== "number") return undefined;
  return { metadata: {}, status: "Failure", message: "", reason: "", ...s } as KubeStatus;
}

function reasonFor(code: number): StatusReason {
  switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 503: return "ServiceUnavailable";
    default: return "InternalError";
  }
}
