import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Action,
  CloudEventSchema,
  Extension,
  ProtocolError,
  formatDataType,
  fromProto,
  heartbeatMessage,
  parseDataType,
  parseEventType,
  parseResourceVersionList,
  statusErrorMessage,
  stringExtension,
  toProto,
  kubeStatus,
  type CloudEvent,
  type PbCloudEvent,
  type ResourceVersion,
} from "@ocm-conductor/protocol";
import type { Backend, RequestContext, SpecEventSink } from "./backend.js";
import { BackendError } from "./backend-error.js";
import { silentLogger, type Logger } from "./logger.js";
import { resyncResponses } from "./resync.js";
import { SubscriberQueue } from "./subscriber-queue.js";
import { SubscriberRegistry, type Subscriber } from "./subscriber-registry.js";

/** Tuning of a {@link Broker}; every field has a default. */
export interface BrokerOptions {
  /** Heartbeat period per stream; 0 disables heartbeats. Default 10 s, like sdk-go (§5.8). */
  heartbeatIntervalMs?: number;
  /** Events a stream may have pending before it is ended as too slow. Default 1024. */
  queueCapacity?: number;
  /** Grace before resetting a stream that overflowed while its agent stopped reading. Default 1 s. */
  stuckStreamResetMs?: number;
  /** Largest encoded event sent to agents; bigger ones are dropped and logged. Default 4 MiB. */
  maxSendBytes?: number;
  /** `source` of resync deletions the broker synthesises. Default `conductor`. */
  synthesizedSource?: string;
  /** How long a resync request that arrived before its stream is replayed on subscribe. Default 10 s. */
  pendingResyncTtlMs?: number;
  logger?: Logger;
  /** Told about stream lifecycle, e.g. for the `grpc_server_ce_subscribers` gauge. */
  observer?: BrokerObserver;
}

/** Identifies a Subscribe stream to a {@link BrokerObserver}. */
export interface StreamInfo {
  /** The `subscription-id` sent to the agent. */
  id: string;
  clusterName: string;
  dataType: string;
}

/** Why a stream ended: the agent left, it could not keep up, or the server is stopping. */
export type StreamEndReason = "closed" | "overflow" | "shutdown" | "resync";

/** One live stream as {@link Broker.streams} reports it. */
export interface StreamSnapshot extends StreamInfo {
  /** When the stream subscribed (RFC 3339). */
  since: string;
  /** Events waiting to be sent. */
  queued: number;
  /** Messages sent, heartbeats included. */
  sent: number;
  /** When the last heartbeat was sent (RFC 3339), or null. */
  lastHeartbeat: string | null;
}

/** Receives stream lifecycle events; each method is optional. */
export interface BrokerObserver {
  subscribed?(stream: StreamInfo): void;
  unsubscribed?(stream: StreamInfo, reason: StreamEndReason): void;
}

/** A registered Subscribe stream, as the gRPC service drives it. */
export interface Subscription {
  /** The `subscription-id` header value. */
  readonly id: string;
  /** The next message for the agent; undefined when the stream should end with OK. */
  next(): Promise<PbCloudEvent | undefined>;
  /** Unregisters the stream (the agent went away). Idempotent. */
  close(): void;
}

const MiB = 1024 * 1024;

/**
 * The CloudEvents broker: the hub end of agents' Subscribe streams and Publish calls
 * (protocol.md §5). It is stateless like the Go broker — correctness rests on agent resync — but
 * routes through an index, never blocks a producer on a slow agent, and answers resync with the
 * fixed HEAD semantics. Errors it throws are `ConnectError`s carrying the gRPC code agents expect.
 */
export class Broker {
  private readonly registry = new SubscriberRegistry();
  private readonly backends = new Map<string, Backend>();
  private readonly pendingResync = new Map<string, { requested: ResourceVersion[]; at: number }>();
  /**
   * Per cluster and data type, one set per resync whose list is in flight, collecting the resource
   * ids of live spec events routed meanwhile (see {@link runResync}).
   */
  private readonly resyncsInFlight = new Map<string, Array<Set<string>>>();
  private readonly options: Required<Omit<BrokerOptions, "observer">>;
  private readonly observer: BrokerObserver;
  private readonly lifetime = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;

  /** Where backends publish spec events. */
  readonly sink: Required<SpecEventSink> = {
    publish: (event) => this.routeLive(event),
    resyncAll: (dataType, why) => this.endStreams(dataType, why),
  };

  constructor(options: BrokerOptions = {}) {
    this.options = {
      heartbeatIntervalMs: 10_000,
      queueCapacity: 1024,
      stuckStreamResetMs: 1_000,
      maxSendBytes: 4 * MiB,
      synthesizedSource: "conductor",
      pendingResyncTtlMs: 10_000,
      logger: silentLogger,
      ...options,
    };
    this.observer = options.observer ?? {};
    if (this.options.heartbeatIntervalMs > 0) {
      this.timer = setInterval(() => this.tick(), this.options.heartbeatIntervalMs);
      this.timer.unref();
    }
  }

  /** Serves `dataType` with `backend` and lets the backend publish through {@link sink}. */
  registerBackend(dataType: string, backend: Backend): void {
    parseDataType(dataType);
    if (this.backends.has(dataType)) throw new Error(`a backend for ${dataType} is already registered`);
    this.backends.set(dataType, backend);
    backend.attach?.(this.sink);
  }

  /** Number of live streams. */
  get subscriberCount(): number {
    return this.registry.size;
  }

  /** The live streams, for operators (`/debug/subscribers`). */
  streams(): StreamSnapshot[] {
    return [...this.registry.subscribers()].map((s) => ({
      id: s.id,
      clusterName: s.clusterName,
      dataType: s.dataType,
      since: new Date(s.since).toISOString(),
      queued: s.queue.size,
      sent: s.queue.sent,
      lastHeartbeat: s.queue.lastHeartbeatAt === undefined ? null : new Date(s.queue.lastHeartbeatAt).toISOString(),
    }));
  }

  /** Cluster names with at least one live stream. */
  subscribedClusters(): string[] {
    return this.registry.clusters();
  }

  /**
   * Validates and registers a Subscribe stream. The caller must send the returned id as the
   * `subscription-id` header right away: the subscriber is already registered, so nothing
   * published after the agent sees the header is lost (the Go broker registers after).
   *
   * @throws ConnectError `Unknown` with the Go broker's messages for a missing cluster name or an
   *   unparsable data type (protocol.md §5.1).
   */
  subscribe(request: { clusterName: string; dataType: string }, reset?: () => void): Subscription {
    if (request.clusterName.length === 0) {
      throw new ConnectError("invalid subscription request: missing cluster name", Code.Unknown);
    }
    try {
      parseDataType(request.dataType);
    } catch (err) {
      throw new ConnectError(`invalid subscription request: invalid data type ${(err as Error).message}`, Code.Unknown);
    }
    if (this.lifetime.signal.aborted) throw new ConnectError("server is shutting down", Code.Unavailable);
    const subscriber: Subscriber = {
      id: randomUUID(),
      clusterName: request.clusterName,
      dataType: request.dataType,
      queue: new SubscriberQueue(this.options.queueCapacity),
      since: Date.now(),
      reset,
    };
    this.registry.add(subscriber);
    this.options.logger.debug("subscribed", { id: subscriber.id, cluster: subscriber.clusterName, dataType: subscriber.dataType });
    this.observer.subscribed?.(info(subscriber));
    this.replayPendingResync(subscriber.clusterName, subscriber.dataType);
    return {
      id: subscriber.id,
      next: () => subscriber.queue.next(),
      close: () => {
        subscriber.queue.close();
        if (this.registry.remove(subscriber)) {
          this.options.logger.debug("unsubscribed", { id: subscriber.id, cluster: subscriber.clusterName });
          this.observer.unsubscribed?.(info(subscriber), "closed");
        }
      },
    };
  }

  /**
   * Handles an agent Publish: decodes it, answers spec resync requests, and dispatches everything
   * else to the backend of its data type (protocol.md §5.4).
   *
   * @throws ConnectError `InvalidArgument` for undecodable events, bad types, a missing
   *   `clustername` or an unserved data type; `FailedPrecondition` for resync failures and backend
   *   refusals, whose message is the JSON of a Kubernetes `StatusError`.
   */
  async publish(message: PbCloudEvent | undefined, context: RequestContext): Promise<void> {
    const event = decode(message);
    const type = parseOrThrow(() => parseEventType(event.type), (m) => `failed to parse cloud event type ${event.type}, ${m}`);
    const clusterName = parseOrThrow(() => stringExtension(event, Extension.clusterName), (m) => m);
    const dataType = formatDataType(type);
    if (type.action === Action.resyncRequest) {
      await this.answerResync(event, dataType, clusterName, context.signal);
      return;
    }
    const backend = this.backends.get(dataType);
    if (backend === undefined) throw new ConnectError(`failed to find service for event type ${dataType}`, Code.InvalidArgument);
    try {
      await backend.handle(event, context);
    } catch (err) {
      throw this.backendFailure(err, event.type);
    }
  }

  /** Ends every stream with `Unavailable` so agents reconnect elsewhere, and stops timers. */
  close(): void {
    this.lifetime.abort();
    if (this.timer !== undefined) clearInterval(this.timer);
    const error = new ConnectError("server is shutting down", Code.Unavailable);
    for (const subscriber of [...this.registry.subscribers()]) {
      this.registry.remove(subscriber);
      subscriber.queue.close(error);
      this.observer.unsubscribed?.(info(subscriber), "shutdown");
    }
  }

  private endStreams(dataType: string, why: string): void {
    const error = new ConnectError(`${why}; resubscribe to resync`, Code.Unavailable);
    const ended = [...this.registry.subscribers()].filter((s) => s.dataType === dataType);
    for (const subscriber of ended) {
      this.registry.remove(subscriber);
      subscriber.queue.close(error);
      this.observer.unsubscribed?.(info(subscriber), "resync");
    }
    if (ended.length > 0) this.options.logger.warn("streams ended so that agents resync", { dataType, streams: ended.length, why });
  }

  /** A live spec event from a backend: noted for resyncs in flight, then routed. */
  private routeLive(event: CloudEvent): number {
    if (this.resyncsInFlight.size > 0) {
      const key = streamKey(stringExtension(event, Extension.clusterName), formatDataType(parseEventType(event.type)));
      const sets = this.resyncsInFlight.get(key);
      if (sets !== undefined) {
        const id = event.extensions[Extension.resourceId];
        if (typeof id === "string") for (const set of sets) set.add(id);
      }
    }
    return this.route(event);
  }

  /** Queues `event` for every matching stream; a resync answer (`resync`) is not bounded by the queue capacity. */
  private route(event: CloudEvent, resync = false): number {
    const dataType = formatDataType(parseEventType(event.type));
    const clusterName = stringExtension(event, Extension.clusterName);
    const subscribers = this.registry.match(clusterName, dataType);
    if (subscribers.length === 0) return 0;
    const message = toProto(event);
    if (this.tooLarge(message, event)) {
      this.options.logger.error("event exceeds the send limit of agents; dropped", {
        type: event.type, cluster: clusterName, resourceId: event.extensions[Extension.resourceId], maxSendBytes: this.options.maxSendBytes,
      });
      return 0;
    }
    let queued = 0;
    for (const subscriber of subscribers) {
      if (subscriber.queue.offer(message, { resync })) queued++;
      else this.overflow(subscriber);
    }
    return queued;
  }

  private tooLarge(message: PbCloudEvent, event: CloudEvent): boolean {
    // Cheap bound first: only events near the limit pay for an exact encoding.
    if ((event.data?.length ?? 0) + 64 * 1024 < this.options.maxSendBytes) return false;
    return toBinary(CloudEventSchema, message).length > this.options.maxSendBytes;
  }

  private overflow(subscriber: Subscriber): void {
    this.registry.remove(subscriber);
    this.observer.unsubscribed?.(info(subscriber), "overflow");
    const { queue } = subscriber;
    const waiting = queue.consumerWaiting;
    queue.close(new ConnectError(
      `subscriber queue overflow: more than ${this.options.queueCapacity} events pending; resubscribe to resync`,
      Code.Unavailable,
    ));
    this.options.logger.warn("slow subscriber disconnected", { id: subscriber.id, cluster: subscriber.clusterName, dataType: subscriber.dataType });
    // A stream whose agent stopped reading cannot even receive trailers (flow control holds the
    // data before them), so it is reset unless it drains by itself shortly.
    if (!waiting && subscriber.reset !== undefined) {
      setTimeout(subscriber.reset, this.options.stuckStreamResetMs).unref();
    }
  }

  private async answerResync(event: CloudEvent, dataType: string, clusterName: string, signal: AbortSignal): Promise<void> {
    const fail = (m: string) => new ConnectError(`failed to respond resync spec request: ${m}`, Code.FailedPrecondition);
    const requested = parseOrThrow(() => parseResourceVersionList(event), (m) => m, fail);
    if (!this.backends.has(dataType)) throw fail(`failed to find service for event type ${dataType}`);
    if (!this.registry.has(clusterName, dataType)) {
      // sdk-go v1.1.0 agents may resync before their stream is registered (protocol.md §10.3);
      // keep the request and answer it when the stream arrives.
      this.pendingResync.set(streamKey(clusterName, dataType), { requested, at: Date.now() });
      return;
    }
    try {
      await this.runResync(dataType, clusterName, requested, signal);
    } catch (err) {
      throw fail(err instanceof Error ? err.message : String(err));
    }
  }

  /**
   * Answers a resync from the backend's list. A live spec event routed while the list was in flight
   * already reached the agent with newer (or the same) state, so that resource is left out of the
   * answer: an older listed copy queued after it would undo it (a listed work without the deletion
   * that was just sent makes sdk-go v1.3 drop the deletion from its store), and a synthesised
   * deletion would remove what was just created.
   */
  private async runResync(dataType: string, clusterName: string, requested: ResourceVersion[], signal: AbortSignal): Promise<void> {
    const backend = this.backends.get(dataType) as Backend;
    const key = streamKey(clusterName, dataType);
    const overtaken = new Set<string>();
    const sets = this.resyncsInFlight.get(key) ?? [];
    sets.push(overtaken);
    this.resyncsInFlight.set(key, sets);
    let result: Awaited<ReturnType<Backend["list"]>>;
    try {
      result = await backend.list({ clusterName, dataType }, signal);
    } finally {
      sets.splice(sets.indexOf(overtaken), 1);
      if (sets.length === 0) this.resyncsInFlight.delete(key);
    }
    const listed = Array.isArray(result) ? result : result.events;
    if (!Array.isArray(result)) {
      this.options.logger.warn("resync from an incomplete list: no deletions synthesised", { cluster: clusterName, dataType, why: result.incomplete });
    }
    const responses = resyncResponses({
      dataType, clusterName, requested, listed, complete: Array.isArray(result), source: this.options.synthesizedSource, logger: this.options.logger,
    });
    for (const response of responses) {
      const id = response.extensions[Extension.resourceId];
      if (typeof id === "string" && overtaken.has(id)) continue;
      this.route(response, true);
    }
    if (overtaken.size > 0) this.options.logger.debug("resync: resources sent live meanwhile left out", { cluster: clusterName, dataType, resources: overtaken.size });
  }

  private replayPendingResync(clusterName: string, dataType: string): void {
    const key = streamKey(clusterName, dataType);
    const pending = this.pendingResync.get(key);
    if (pending === undefined) return;
    this.pendingResync.delete(key);
    if (Date.now() - pending.at > this.options.pendingResyncTtlMs) return;
    this.runResync(dataType, clusterName, pending.requested, this.lifetime.signal).catch((err: unknown) => {
      this.options.logger.warn("replayed resync failed", { cluster: clusterName, dataType, error: String(err) });
    });
  }

  private tick(): void {
    for (const subscriber of this.registry.subscribers()) subscriber.queue.offerHeartbeat(heartbeatMessage);
    const cutoff = Date.now() - this.options.pendingResyncTtlMs;
    for (const [key, pending] of this.pendingResync) if (pending.at < cutoff) this.pendingResync.delete(key);
  }

  private backendFailure(err: unknown, type: string): ConnectError {
    if (err instanceof BackendError) {
      return new ConnectError(statusErrorMessage(err.status), Code.FailedPrecondition, undefined, undefined, err);
    }
    if (err instanceof ConnectError) return err;
    // The Go broker sends `{}` here; a typed InternalError tells agents more and decodes the same way.
    this.options.logger.error("backend failed", { type, error: err instanceof Error ? err.stack ?? err.message : String(err) });
    const status = kubeStatus("InternalError", `Internal error occurred: failed to handle ${type}`);
    return new ConnectError(statusErrorMessage(status), Code.FailedPrecondition, undefined, undefined, err);
  }
}

function streamKey(clusterName: string, dataType: string): string {
  return `${clusterName}\u0000${dataType}`;
}

function info(subscriber: Subscriber): StreamInfo {
  return { id: subscriber.id, clusterName: subscriber.clusterName, dataType: subscriber.dataType };
}

function decode(message: PbCloudEvent | undefined): CloudEvent {
  if (message === undefined) {
    throw new ConnectError("failed to convert protobuf to cloudevent: missing event", Code.InvalidArgument);
  }
  return parseOrThrow(() => fromProto(message), (m) => `failed to convert protobuf to cloudevent: ${m}`);
}

function parseOrThrow<T>(
  parse: () => T,
  describe: (message: string) => string,
  wrap: (message: string) => ConnectError = (m) => new ConnectError(m, Code.InvalidArgument),
): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ProtocolError) throw wrap(describe(err.message));
    throw err;
  }
}
