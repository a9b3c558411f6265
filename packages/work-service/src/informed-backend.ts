import { CustomObjectsApi } from "@kubernetes/client-node";
import { Action, type CloudEvent } from "@ocm-conductor/protocol";
import { silentLogger, type Backend, type ListOptions, type Logger, type RequestContext, type SpecEventSink } from "@ocm-conductor/router";
import {
  collectionPath,
  encodeKubeObject,
  objectKey,
  publishSafely,
  tombstone,
  type KubeBackendOptions,
  type KubeObject,
  type KubeResource,
} from "./kube-object-codec.js";
import { ResilientInformer } from "./resilient-informer.js";

/** Which hub changes an {@link InformedBackend} watches and pushes. */
export interface InformerSpec {
  /** Only objects with this label selector are seen (hub-services.md §1.3). */
  labelSelector?: string;
  /** Push deletions to agents (the cluster service has no delete handler). Default true. */
  pushDeletes?: boolean;
}

/**
 * The common shape of the registration-side backends: one resilient informer over one hub
 * resource, whose Add/Update(/Delete) are pushed to the agents of the object's cluster, and the
 * agent-facing `list`/`handle` each service defines. Subclasses say which cluster an object belongs
 * to and how agent requests are applied.
 */
export abstract class InformedBackend implements Backend {
  protected readonly api: CustomObjectsApi;
  protected readonly informer: ResilientInformer<KubeObject>;
  protected readonly source: string | undefined;
  protected readonly logger: Logger;
  private sink: SpecEventSink | undefined;

  constructor(readonly resource: KubeResource, options: KubeBackendOptions, spec: InformerSpec = {}) {
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.source = options.source;
    this.logger = options.logger ?? silentLogger;
    const { group, version, plural } = resource;
    const labelSelector = spec.labelSelector;
    this.informer = new ResilientInformer<KubeObject>(options.kubeConfig, {
      name: `${plural}.${version}`,
      path: collectionPath(resource),
      ...(labelSelector === undefined ? {} : { labelSelector }),
      list: () => this.api.listClusterCustomObject({ group, version, plural, ...(labelSelector === undefined ? {} : { labelSelector }) }) as never,
      onAdd: (obj) => this.push(obj, Action.createRequest),
      onUpdate: (obj) => this.push(obj, Action.updateRequest),
      ...(spec.pushDeletes === false ? {} : { onDelete: (obj: KubeObject) => this.push(tombstone(obj), Action.deleteRequest) }),
      resyncMs: options.resyncMs ?? 30 * 60_000,
      logger: this.logger,
    });
  }

  /** The data type this backend serves. */
  get dataType(): string {
    return this.resource.dataType;
  }

  /** Keeps the broker's sink, through which this backend pushes to agents. */
  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }

  /** Starts the informer; resolves once the initial list is in the cache. */
  start(): Promise<void> {
    return this.informer.start();
  }

  /** True after the initial list (for readiness). */
  get ready(): boolean {
    return this.informer.ready;
  }

  /** Stops the informer. */
  stop(): Promise<void> {
    return this.informer.stop();
  }

  /** Encodes an object as a spec event for the agents of its cluster. */
  encode(obj: KubeObject, action: string): CloudEvent {
    const clusterName = this.clusterOf(obj);
    if (clusterName === undefined) throw new Error(`no cluster found for ${this.resource.noun} ${objectKey(this.resource, obj)}`);
    return encodeKubeObject(this.resource, obj, { action, clusterName, ...(this.source === undefined ? {} : { source: this.source }) });
  }

  abstract list(options: ListOptions): Promise<CloudEvent[]>;
  abstract handle(event: CloudEvent, context: RequestContext): Promise<void>;

  /** The cluster whose agents receive `obj`, or undefined when it belongs to none. */
  protected abstract clusterOf(obj: KubeObject): string | undefined;

  private push(obj: KubeObject, action: string): void {
    publishSafely(this.sink, this.logger, () => this.encode(obj, action), objectKey(this.resource, obj));
  }
}
