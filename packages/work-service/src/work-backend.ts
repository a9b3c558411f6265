import { isDeepStrictEqual } from "node:util";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from "@kubernetes/client-node";
import {
  Action,
  CONDITION_DELETED,
  DataTypes,
  Extension,
  MANIFEST_WORK_CLEANUP_FINALIZER,
  decodeManifestBundleStatus,
  eventTypeOf,
  integerExtension,
  newEvent,
  parseEventType,
  stringExtension,
  type CloudEvent,
  type ManifestBundle,
  type ManifestBundleStatus,
} from "@ocm-conductor/protocol";
import { BackendError, silentLogger, type Backend, type ListOptions, type Logger, type RequestContext, type SpecEventSink } from "@ocm-conductor/router";
import { httpStatusOf, toBackendError } from "./kube-errors.js";
import { MANIFEST_WORKS, type ManifestWork } from "./manifest-work.js";
import { ResilientInformer } from "./resilient-informer.js";

/** Options of {@link KubeWorkBackend}. */
export interface KubeWorkBackendOptions {
  kubeConfig: KubeConfig;
  /** `source` of spec events; agents echo it as `originalsource`. Default `kube`, as OCM. */
  source?: string;
  logger?: Logger;
  /** Periodic re-send of every work to its agent; default 30 min, 0 disables. */
  resyncMs?: number;
}

const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

/** What decides whether an update is worth pushing to the agent (hub-services.md §2.6, Profile B). */
interface Pushed {
  generation: number;
  labels: Record<string, string> | undefined;
  annotations: Record<string, string> | undefined;
}

/**
 * The `kube` source of manifestbundles: hub ManifestWorks ⇄ agents (hub-services.md §2.6).
 *
 * Fixes the Go service's quirks (§9): status-only changes do not re-send the spec (b); a work
 * deleted before it had the finalizer still reaches the agent as a deletion (c); and the first
 * status after the finalizer is added uses the fresh resourceVersion instead of failing with 409
 * (d), with one re-read on any other conflict.
 */
export class KubeWorkBackend implements Backend {
  private readonly api: CustomObjectsApi;
  private readonly informer: ResilientInformer<ManifestWork>;
  private readonly pushed = new Map<string, Pushed>();
  private readonly source: string;
  private readonly logger: Logger;
  private sink: SpecEventSink | undefined;

  constructor(options: KubeWorkBackendOptions) {
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.source = options.source ?? "kube";
    this.logger = options.logger ?? silentLogger;
    this.informer = new ResilientInformer<ManifestWork>(options.kubeConfig, {
      name: "manifestworks",
      path: `/apis/${MANIFEST_WORKS.group}/${MANIFEST_WORKS.version}/${MANIFEST_WORKS.plural}`,
      list: () => this.api.listClusterCustomObject({ ...MANIFEST_WORKS }) as never,
      onAdd: (w) => this.onAdd(w),
      onUpdate: (w) => this.onUpdate(w),
      onDelete: (w) => this.onDelete(w),
      resyncMs: options.resyncMs ?? 30 * 60_000,
      logger: this.logger,
    });
  }

  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }

  /** Starts the ManifestWork informer; resolves once the initial list is in the cache. */
  start(): Promise<void> {
    return this.informer.start();
  }

  /** True after the initial list (for readiness). */
  get ready(): boolean {
    return this.informer.ready;
  }

  stop(): Promise<void> {
    return this.informer.stop();
  }

  list({ clusterName }: ListOptions): Promise<CloudEvent[]> {
    return Promise.resolve(this.informer.list(clusterName).map((w) => this.encode(w, Action.updateRequest)));
  }

  async handle(event: CloudEvent, _context: RequestContext): Promise<void> {
    const type = parseEventType(event.type);
    const clusterName = BackendError.badRequestOn("failed to get cluster name", () => stringExtension(event, Extension.clusterName));
    const resourceVersion = BackendError.badRequestOn("failed to get resource version", () => integerExtension(event, Extension.resourceVersion));
    const uid = BackendError.badRequestOn("failed to get resource id", () => stringExtension(event, Extension.resourceId));
    BackendError.badRequestOn("failed to get status update sequence id", () => stringExtension(event, Extension.sequenceId));
    const status = BackendError.badRequestOn("failed to unmarshal event data", () => decodeManifestBundleStatus(event));
    const last = this.informer.list(clusterName).find((w) => w.metadata.uid === uid);
    if (last === undefined) {
      this.logger.debug("status for an unknown work; acknowledged", { cluster: clusterName, uid });
      return;
    }
    const name = `${last.metadata.namespace}/${last.metadata.name}`;
    // A status resync response is a status update the agent sends when asked (protocol.md §5.7).
    if (type.action !== Action.updateRequest && type.action !== Action.resyncResponse) {
      throw BackendError.of("BadRequest", `unsupported action ${type.action} for work ${name}`);
    }
    if (status.conditions?.some((c) => c.type === CONDITION_DELETED && c.status === "True")) {
      await this.withFreshOnConflict(last, `failed to remove the finalizer of work ${name}`, (w) => this.removeFinalizer(w));
      return;
    }
    if ((last.metadata.generation ?? 0) > resourceVersion) return; // stale status
    const current = await this.withFreshOnConflict(last, `failed to add the finalizer to work ${name}`, (w) => this.ensureFinalizer(w));
    await this.withFreshOnConflict(current, `failed to patch the status of work ${name}`, (w) => this.patchStatus(w, status, resourceVersion));
  }

  /**
   * Runs a write whose uid + resourceVersion preconditions come from `work`. The informer cache may
   * trail the hub by a write (often our own previous one), so on 409 the work is re-read once and
   * the write retried; the uid precondition still refuses a recreated work.
   */
  private async withFreshOnConflict<T>(work: ManifestWork, what: string, write: (w: ManifestWork) => Promise<T>): Promise<T> {
    try {
      return await write(work);
    } catch (err) {
      if (httpStatusOf(err) !== 409) throw toBackendError(err, what);
    }
    try {
      const fresh = (await this.api.getNamespacedCustomObject({
        ...MANIFEST_WORKS, namespace: work.metadata.namespace, name: work.metadata.name,
      })) as ManifestWork;
      if (fresh.metadata.uid !== work.metadata.uid) throw BackendError.of("Conflict", `${what}: the work was recreated`);
      return await write(fresh);
    } catch (err) {
      throw toBackendError(err, what);
    }
  }

  private async removeFinalizer(work: ManifestWork): Promise<void> {
    const finalizers = work.metadata.finalizers ?? [];
    if (!finalizers.includes(MANIFEST_WORK_CLEANUP_FINALIZER)) return;
    try {
      await this.patch(work, { finalizers: finalizers.filter((f) => f !== MANIFEST_WORK_CLEANUP_FINALIZER) });
    } catch (err) {
      if (httpStatusOf(err) !== 404) throw err;
    }
  }

  private async ensureFinalizer(work: ManifestWork): Promise<ManifestWork> {
    const finalizers = work.metadata.finalizers ?? [];
    if (finalizers.includes(MANIFEST_WORK_CLEANUP_FINALIZER)) return work;
    return this.patch(work, { finalizers: [...finalizers, MANIFEST_WORK_CLEANUP_FINALIZER] });
  }

  private async patchStatus(work: ManifestWork, status: ManifestBundleStatus, resourceVersion: number): Promise<void> {
    if ((work.metadata.generation ?? 0) > resourceVersion) return;
    const next = { conditions: status.conditions ?? [], resourceStatus: { manifests: status.resourceStatus ?? [] } };
    const prev = { conditions: work.status?.conditions ?? [], resourceStatus: { manifests: work.status?.resourceStatus?.manifests ?? [] } };
    if (isDeepStrictEqual(prev, next)) return;
    await this.api.patchNamespacedCustomObjectStatus({
      ...MANIFEST_WORKS,
      namespace: work.metadata.namespace,
      name: work.metadata.name,
      body: { metadata: { uid: work.metadata.uid, resourceVersion: work.metadata.resourceVersion }, status: next },
    }, mergePatch);
  }

  private async patch(work: ManifestWork, metadata: Record<string, unknown>): Promise<ManifestWork> {
    return (await this.api.patchNamespacedCustomObject({
      ...MANIFEST_WORKS,
      namespace: work.metadata.namespace,
      name: work.metadata.name,
      body: { metadata: { uid: work.metadata.uid, resourceVersion: work.metadata.resourceVersion, ...metadata } },
    }, mergePatch)) as ManifestWork;
  }

  private onAdd(work: ManifestWork): void {
    this.remember(work);
    this.push(work, Action.createRequest);
  }

  private onUpdate(work: ManifestWork): void {
    const before = this.pushed.get(work.metadata.uid);
    const deleting = work.metadata.deletionTimestamp !== undefined && work.metadata.deletionTimestamp !== null;
    const changed = before === undefined
      || (work.metadata.generation ?? 0) > before.generation
      || !isDeepStrictEqual(before.labels, work.metadata.labels)
      || !isDeepStrictEqual(before.annotations, work.metadata.annotations);
    this.remember(work);
    if (changed || deleting) this.push(work, Action.updateRequest);
  }

  private onDelete(work: ManifestWork): void {
    this.pushed.delete(work.metadata.uid);
    const tombstone = { ...work, metadata: { ...work.metadata, deletionTimestamp: work.metadata.deletionTimestamp ?? new Date().toISOString() } };
    this.push(tombstone, Action.deleteRequest);
  }

  private remember(work: ManifestWork): void {
    this.pushed.set(work.metadata.uid, {
      generation: work.metadata.generation ?? 0,
      labels: work.metadata.labels,
      annotations: work.metadata.annotations,
    });
  }

  private push(work: ManifestWork, action: string): void {
    try {
      this.sink?.publish(this.encode(work, action));
    } catch (err) {
      this.logger.error("failed to push a work", { work: `${work.metadata.namespace}/${work.metadata.name}`, error: String(err) });
    }
  }

  /** Encodes a work as OCM's source codec does (hub-services.md §2.6), without managedFields. */
  encode(work: ManifestWork, action: string): CloudEvent {
    const { managedFields: _managed, ...metadata } = work.metadata;
    const deletion = work.metadata.deletionTimestamp;
    const logTracing = Object.fromEntries(
      Object.entries(work.metadata.annotations ?? {}).filter(([k]) => k.startsWith("logging.open-cluster-management.io/")),
    );
    const bundle: ManifestBundle = {
      manifests: work.spec?.workload?.manifests ?? [],
      ...(work.spec?.deleteOption === undefined ? {} : { deleteOption: work.spec.deleteOption }),
      ...(work.spec?.manifestConfigs === undefined ? {} : { manifestConfigs: work.spec.manifestConfigs as unknown as ManifestBundle["manifestConfigs"] }),
      ...(work.spec?.executor === undefined ? {} : { executer: work.spec.executor as ManifestBundle["executer"] }),
    };
    return newEvent({
      type: eventTypeOf(DataTypes.manifestBundles, "spec", action),
      source: this.source,
      clusterName: work.metadata.namespace,
      extensions: {
        [Extension.resourceId]: work.metadata.uid,
        [Extension.resourceVersion]: work.metadata.generation ?? 0,
        [Extension.metadata]: JSON.stringify(metadata),
        [Extension.logTracing]: JSON.stringify(logTracing),
        [Extension.deletionTimestamp]: deletion === undefined || deletion === null ? undefined : timestampFromDate(new Date(deletion)),
      },
      data: deletion === undefined || deletion === null ? bundle : undefined,
    });
  }
}
