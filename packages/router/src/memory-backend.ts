import { timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  Action,
  CONDITION_DELETED,
  DataTypes,
  Extension,
  eventDataJson,
  eventTypeOf,
  integerExtension,
  newEvent,
  parseEventType,
  stringExtension,
  type CloudEvent,
  type ManifestBundle,
  type ManifestBundleStatus,
} from "@ocm-conductor/protocol";
import { randomUUID } from "node:crypto";
import type { Backend, ListOptions, RequestContext, SpecEventSink } from "./backend.js";
import { BackendError } from "./backend-error.js";

/** A work held by {@link MemoryWorkBackend}. */
export interface MemoryWork {
  uid: string;
  name: string;
  clusterName: string;
  generation: number;
  bundle: ManifestBundle;
  deletionTimestamp?: Timestamp;
  /** The last status an agent reported, with its version and sequence id. */
  status?: { resourceVersion: number; sequenceId?: string; payload: ManifestBundleStatus };
}

/**
 * An in-memory manifestbundles backend: the demo backend of `pnpm start` and the source of truth
 * of the interop suite until the Kubernetes and Maestro backends exist. It behaves like OCM's work
 * service (protocol.md §6.3): works are encoded with `resourceid` = UID and `resourceversion` =
 * generation, deletions stay listed until the agent reports `Deleted=True`, and statuses older than
 * the current generation are dropped.
 */
export class MemoryWorkBackend implements Backend {
  private readonly works = new Map<string, MemoryWork>();
  private sink: SpecEventSink | undefined;
  /** Every event agents published to this backend, for inspection. */
  readonly received: CloudEvent[] = [];

  constructor(readonly source = "memory") {}

  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }

  /** Creates a work and pushes it to the cluster's agents. */
  create(clusterName: string, name: string, bundle: ManifestBundle): MemoryWork {
    const work: MemoryWork = { uid: randomUUID(), name, clusterName, generation: 1, bundle };
    this.works.set(work.uid, work);
    this.push(work, Action.createRequest);
    return work;
  }

  /** Replaces a work's bundle, bumps its generation and pushes the update. */
  update(uid: string, bundle: ManifestBundle): MemoryWork {
    const work = this.mustGet(uid);
    work.bundle = bundle;
    work.generation++;
    this.push(work, Action.updateRequest);
    return work;
  }

  /** Marks a work deleting and pushes the deletion; it is forgotten once the agent confirms. */
  delete(uid: string): void {
    const work = this.mustGet(uid);
    work.deletionTimestamp ??= timestampNow();
    this.push(work, Action.deleteRequest);
  }

  /** Forgets a work without telling agents (as if it was removed behind the hub's back). */
  forget(uid: string): void {
    this.works.delete(uid);
  }

  get(uid: string): MemoryWork | undefined {
    return this.works.get(uid);
  }

  list({ clusterName }: ListOptions): Promise<CloudEvent[]> {
    const events = [...this.works.values()]
      .filter((w) => w.clusterName === clusterName)
      .map((w) => this.encode(w, Action.updateRequest));
    return Promise.resolve(events);
  }

  handle(event: CloudEvent, _context: RequestContext): Promise<void> {
    this.received.push(event);
    const type = parseEventType(event.type);
    if (type.subResource !== "status" || (type.action !== Action.updateRequest && type.action !== Action.resyncResponse)) {
      return Promise.reject(BackendError.of("BadRequest", `unsupported action ${type.subResource}.${type.action}`));
    }
    const work = this.works.get(stringExtension(event, Extension.resourceId));
    if (work === undefined) return Promise.resolve(); // unknown works are acknowledged (gotcha 15)
    const payload = eventDataJson(event) as ManifestBundleStatus | undefined;
    if (payload?.conditions?.some((c) => c.type === CONDITION_DELETED && c.status === "True")) {
      this.works.delete(work.uid);
      return Promise.resolve();
    }
    const resourceVersion = integerExtension(event, Extension.resourceVersion);
    if (resourceVersion < work.generation) return Promise.resolve(); // stale
    const sequenceId = event.extensions[Extension.sequenceId];
    work.status = { resourceVersion, payload: payload ?? { conditions: null }, ...(typeof sequenceId === "string" ? { sequenceId } : {}) };
    return Promise.resolve();
  }

  private push(work: MemoryWork, action: string): void {
    this.sink?.publish(this.encode(work, action));
  }

  private encode(work: MemoryWork, action: string): CloudEvent {
    const deleting = work.deletionTimestamp !== undefined;
    const metadata = { name: work.name, namespace: work.clusterName, uid: work.uid, generation: work.generation };
    return newEvent({
      type: eventTypeOf(DataTypes.manifestBundles, "spec", action),
      source: this.source,
      clusterName: work.clusterName,
      extensions: {
        [Extension.resourceId]: work.uid,
        [Extension.resourceVersion]: work.generation,
        [Extension.metadata]: JSON.stringify(metadata),
        [Extension.logTracing]: "{}",
        [Extension.deletionTimestamp]: work.deletionTimestamp,
      },
      data: deleting ? undefined : work.bundle,
    });
  }

  private mustGet(uid: string): MemoryWork {
    const work = this.works.get(uid);
    if (work === undefined) throw new Error(`no work with uid ${uid}`);
    return work;
  }
}
