import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { Health, ServingStatus, type HealthCheckResponse } from "@ocm-conductor/protocol";
import { create } from "@bufbuild/protobuf";
import { HealthCheckResponseSchema } from "@ocm-conductor/protocol";

/**
 * The serving status behind `grpc.health.v1.Health`, keyed by service name ("" is the whole
 * server), as Kubernetes gRPC probes and load balancers query it.
 */
export class HealthStatus {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<() => void>();

  constructor(services: string[]) {
    for (const service of ["", ...services]) this.statuses.set(service, ServingStatus.SERVING);
  }

  /** Sets every known service to `status` (NOT_SERVING while shutting down). */
  setAll(status: ServingStatus): void {
    for (const service of this.statuses.keys()) this.statuses.set(service, status);
    for (const wake of [...this.watchers]) wake();
  }

  /** The status of `service`, or undefined when the service is unknown. */
  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** Waits for the next change, or for `signal`. */
  changed(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.watchers.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.watchers.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

/** Implements the standard gRPC health service over a {@link HealthStatus}. */
export function healthServiceImpl(health: HealthStatus): ServiceImpl<typeof Health> {
  const response = (status: ServingStatus): HealthCheckResponse => create(HealthCheckResponseSchema, { status });
  return {
    check(request) {
      const status = health.get(request.service);
      if (status === undefined) throw new ConnectError(`unknown service ${request.service}`, Code.NotFound);
      return response(status);
    },
    async *watch(request, context) {
      let last: ServingStatus | undefined;
      for (;;) {
        const status = health.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (status !== last) yield response((last = status));
        if (context.signal.aborted) return;
        await health.changed(context.signal);
      }
    },
  };
}
