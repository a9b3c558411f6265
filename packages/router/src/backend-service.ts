import { Code, ConnectError, type ConnectRouter, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  BackendService,
  ProtocolError,
  formatDataType,
  fromProto,
  parseEventType,
  statusErrorMessage,
  toProto,
  type PbCloudEvent,
  type WatchSpecResponse,
} from "@ocm-conductor/protocol";
import type { Backend, SpecEventSink } from "./backend.js";
import { BackendError } from "./backend-error.js";
import { silentLogger, type Logger } from "./logger.js";
import { SubscriberQueue } from "./subscriber-queue.js";

/** Options of {@link backendServiceImpl}. */
export interface BackendServiceOptions {
  /** The backends this process serves, by data type. */
  backends: ReadonlyMap<string, Backend>;
  /** Spec events a watch may have pending before it is ended (the router then resyncs). Default 4096. */
  queueCapacity?: number;
  logger?: Logger;
}

/** A backend service: the Connect implementation plus a way to end its watches on shutdown. */
export interface BackendServiceHandle {
  impl: ServiceImpl<typeof BackendService>;
  /** Ends every WatchSpec stream with `Unavailable`. */
  close(): void;
}

interface Watch {
  dataTypes: ReadonlySet<string>;
  queue: SubscriberQueue;
}

/**
 * Serves in-process backends to a router in another process over `ocm.conductor.v1.BackendService`
 * (the split deployment). Each backend is attached to a sink that fans its spec events out to every
 * `WatchSpec` stream asking for that data type. A watch that falls too far behind is ended, and the
 * router makes its agents resync, so nothing is lost silently. `BackendError`s travel as
 * `FailedPrecondition` with the Kubernetes status JSON, exactly as agents receive them.
 */
export function backendServiceImpl(options: BackendServiceOptions): BackendServiceHandle {
  const logger = options.logger ?? silentLogger;
  const capacity = options.queueCapacity ?? 4096;
  const watches = new Set<Watch>();
  for (const [dataType, backend] of options.backends) {
    const sink: SpecEventSink = {
      publish(event) {
        let queued = 0;
        const message = toProto(event);
        for (const watch of watches) {
          if (!watch.dataTypes.has(dataType)) continue;
          if (watch.queue.offer(message)) queued++;
          else {
            watches.delete(watch);
            watch.queue.close(new ConnectError(`watch queue overflow: more than ${capacity} spec events pending`, Code.Unavailable));
            logger.warn("slow spec watch ended", { dataType });
          }
        }
        return queued;
      },
    };
    backend.attach?.(sink);
  }

  const backendOf = (dataType: string): Backend => {
    const backend = options.backends.get(dataType);
    if (backend === undefined) throw new ConnectError(`no backend for data type ${dataType}`, Code.NotFound);
    return backend;
  };

  const impl: ServiceImpl<typeof BackendService> = {
    async list(request, context) {
      const result = await backendOf(request.dataType).list({ clusterName: request.clusterName, dataType: request.dataType }, context.signal).catch(rethrow);
      const events = Array.isArray(result) ? result : result.events;
      return { events: events.map(toProto), incomplete: Array.isArray(result) ? "" : result.incomplete };
    },
    async handle(request, context) {
      const event = decode(request.event);
      const dataType = formatDataType(parseOrInvalid(() => parseEventType(event.type)));
      const identity = request.identity === undefined ? undefined : { user: request.identity.user, groups: request.identity.groups };
      await backendOf(dataType).handle(event, identity === undefined ? { signal: context.signal } : { identity, signal: context.signal }).catch(rethrow);
      return {};
    },
    watchSpec(request, context) {
      for (const dataType of request.dataTypes) backendOf(dataType);
      return watchStream(new Set(request.dataTypes), context);
    },
  };

  async function* watchStream(dataTypes: Set<string>, context: HandlerContext): AsyncGenerator<WatchSpecResponse> {
    const watch: Watch = { dataTypes, queue: new SubscriberQueue(capacity) };
    watches.add(watch);
    const onAbort = () => watch.queue.close();
    context.signal.addEventListener("abort", onAbort, { once: true });
    try {
      yield { $typeName: "ocm.conductor.v1.WatchSpecResponse" }; // established: no event
      for (;;) {
        const message = await watch.queue.next();
        if (message === undefined) return;
        yield { $typeName: "ocm.conductor.v1.WatchSpecResponse", event: message };
      }
    } finally {
      context.signal.removeEventListener("abort", onAbort);
      watches.delete(watch);
      watch.queue.close();
    }
  }

  return {
    impl,
    close() {
      for (const watch of watches) watch.queue.close(new ConnectError("backend service is shutting down", Code.Unavailable));
      watches.clear();
    },
  };
}

/** Registers {@link backendServiceImpl} on a Connect router and returns its handle. */
export function registerBackendService(router: ConnectRouter, options: BackendServiceOptions): BackendServiceHandle {
  const handle = backendServiceImpl(options);
  router.service(BackendService, handle.impl);
  return handle;
}

function decode(message: PbCloudEvent | undefined) {
  if (message === undefined) throw new ConnectError("missing event", Code.InvalidArgument);
  return parseOrInvalid(() => fromProto(message));
}

function parseOrInvalid<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ProtocolError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw err;
  }
}

function rethrow(err: unknown): never {
  if (err instanceof BackendError) throw new ConnectError(statusErrorMessage(err.status), Code.FailedPrecondition, undefined, undefined, err);
  throw err;
}
