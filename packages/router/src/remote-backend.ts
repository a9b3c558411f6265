import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { BackendService, fromProto, toProto, type CloudEvent, type KubeStatus } from "@ocm-conductor/protocol";
import type { Backend, IncompleteList, ListOptions, RequestContext, SpecEventSink } from "./backend.js";
import { BackendError } from "./backend-error.js";
import { silentLogger, type Logger } from "./logger.js";

/** Options of {@link RemoteBackend}. */
export interface RemoteBackendOptions {
  /** A Connect transport to the backend process (gRPC over HTTP/2, e.g. connect-node's `createGrpcTransport`). */
  transport: Transport;
  /** The data type this backend serves. */
  dataType: string;
  /** A name for logs and errors, e.g. `db-service`. */
  name: string;
  logger?: Logger;
  /** Deadline of List and Handle calls. Default 30 s. */
  callTimeoutMs?: number;
  /** Back-off between watch attempts: from `retryMinMs` (default 500 ms) doubling to `retryMaxMs` (default 10 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/**
 * A {@link Backend} in another process, reached over `ocm.conductor.v1.BackendService`: the
 * router's side of the split deployment. List and Handle are plain calls; spec events arrive on a
 * `WatchSpec` stream that is re-opened with back-off whenever it breaks.
 *
 * Events produced while no watch is open are lost, so every time a watch is established the
 * agents of this data type are told to resync (`sink.resyncAll`): they resubscribe, and their
 * resync restores whatever they missed, deletions included. An unreachable backend answers agents
 * with a `ServiceUnavailable` status; refusals of the backend reach them unchanged.
 */
export class RemoteBackend implements Backend {
  private readonly client: Client<typeof BackendService>;
  private readonly options: Required<Omit<RemoteBackendOptions, "transport">>;
  private readonly lifetime = new AbortController();
  private connected = false;

  constructor(options: RemoteBackendOptions) {
    this.client = createClient(BackendService, options.transport);
    this.options = { logger: silentLogger, callTimeoutMs: 30_000, retryMinMs: 500, retryMaxMs: 10_000, ...options };
  }

  /** Whether the spec watch is open (for readiness). */
  get watching(): boolean {
    return this.connected;
  }

  async list(options: ListOptions, signal: AbortSignal): Promise<CloudEvent[] | IncompleteList> {
    const response = await this.call(() => this.client.list(options, { signal, timeoutMs: this.options.callTimeoutMs }));
    const events = response.events.map((e) => fromProto(e));
    return response.incomplete === "" ? events : { events, incomplete: response.incomplete };
  }

  async handle(event: CloudEvent, context: RequestContext): Promise<void> {
    const identity = context.identity === undefined ? undefined : { $typeName: "ocm.conductor.v1.Identity" as const, ...context.identity };
    await this.call(() => this.client.handle({ event: toProto(event), ...(identity === undefined ? {} : { identity }) }, {
      signal: context.signal,
      timeoutMs: this.options.callTimeoutMs,
    }));
  }

  attach(sink: SpecEventSink): void {
    void this.watch(sink);
  }

  /** Stops watching. */
  close(): void {
    this.lifetime.abort();
  }

  private async watch(sink: SpecEventSink): Promise<void> {
    const { dataType, name, logger, retryMinMs, retryMaxMs } = this.options;
    let delay = retryMinMs;
    while (!this.lifetime.signal.aborted) {
      try {
        for await (const response of this.client.watchSpec({ dataTypes: [dataType] }, { signal: this.lifetime.signal })) {
          if (response.event === undefined) {
            this.connected = true;
            delay = retryMinMs;
            logger.info("spec watch established", { backend: name, dataType });
            sink.resyncAll?.(dataType, `spec events of ${name} may have been missed`);
            continue;
          }
          sink.publish(fromProto(response.event));
        }
        if (!this.lifetime.signal.aborted) logger.warn("spec watch ended by the backend", { backend: name, dataType });
      } catch (err) {
        if (!this.lifetime.signal.aborted) logger.warn("spec watch failed", { backend: name, dataType, error: err instanceof Error ? err.message : String(err), retryMs: delay });
      }
      this.connected = false;
      await sleep(delay, this.lifetime.signal);
      delay = Math.min(delay * 2, retryMaxMs);
    }
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      if (err.code === Code.FailedPrecondition) throw new BackendError(parseStatus(err.rawMessage));
      if (err.code === Code.Canceled) throw err;
      throw BackendError.of("ServiceUnavailable", `${this.options.name} is unavailable: ${err.rawMessage}`);
    }
  }
}

/** A refusal of the remote backend is a k8s StatusError as JSON, `{"ErrStatus": …}` (see `backendServiceImpl`). */
function parseStatus(text: string): KubeStatus {
  try {
    const status = (JSON.parse(text) as { ErrStatus?: KubeStatus }).ErrStatus;
    if (typeof status === "object" && status !== null && typeof status.message === "string" && typeof status.reason === "string") return status;
  } catch {
    // fall through
  }
  return BackendError.of("InternalError", text).status;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}
