import { CustomObjectsApi } from "@kubernetes/client-node";
import { Action, DataTypes, type CloudEvent } from "@ocm-conductor/protocol";
import { silentLogger, type Backend, type ListOptions, type Logger, type RequestContext, type SpecEventSink } from "@ocm-conductor/router";
import { toBackendError } from "./kube-errors.js";
import {
  collectionPath,
  decodeAgentRequest,
  encodeKubeObject,
  objectKey,
  publishSafely,
  requireClusterNamespace,
  tombstone,
  type KubeBackendOptions,
  type KubeObject,
  type KubeResource,
} from "./kube-object-codec.js";
import { ResilientInformer } from "./resilient-informer.js";

/** The ManagedClusterAddOn API versions agents speak: v1alpha1 (every generation) and v1beta1 (sdk-go ≥ v1.3). */
export type AddonVersion = "v1alpha1" | "v1beta1";

/** `addon.open-cluster-management.io/<version>` ManagedClusterAddOns as the addon service serves them. */
export function managedClusterAddOns(version: AddonVersion): KubeResource {
  return {
    group: "addon.open-cluster-management.io",
    version,
    plural: "managedclusteraddons",
    kind: "ManagedClusterAddOn",
    namespaced: true,
    dataType: version === "v1alpha1" ? DataTypes.managedClusterAddOnsV1alpha1 : DataTypes.managedClusterAddOnsV1beta1,
    noun: "addon",
  };
}

/** Options of {@link KubeAddonBackend}. */
export interface KubeAddonBackendOptions extends KubeBackendOptions {
  /** Which API version (and so which data type) this instance serves. */
  version: AddonVersion;
}

/**
 * The addon service (hub-services.md §2.5), one instance per API version: agents report addon
 * status with `update_request` (any subresource; a full PUT to `/status` with the resourceVersion
 * they hold). Every addon in the cluster namespace is pushed on Add, Update and Delete. Each
 * instance watches the CRD at its own version, so one hub write reaches the subscribers of both
 * data types, each in its own version.
 */
export class KubeAddonBackend implements Backend {
  /** The resource (and data type) this instance serves. */
  readonly resource: KubeResource;
  private readonly api: CustomObjectsApi;
  private readonly informer: ResilientInformer<KubeObject>;
  private readonly source: string | undefined;
  private readonly logger: Logger;
  private sink: SpecEventSink | undefined;

  constructor(options: KubeAddonBackendOptions) {
    this.resource = managedClusterAddOns(options.version);
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.source = options.source;
    this.logger = options.logger ?? silentLogger;
    const { group, version, plural } = this.resource;
    this.informer = new ResilientInformer<KubeObject>(options.kubeConfig, {
      name: `managedclusteraddons.${version}`,
      path: collectionPath(this.resource),
      list: () => this.api.listClusterCustomObject({ group, version, plural }) as never,
      onAdd: (addon) => this.push(addon, Action.createRequest),
      onUpdate: (addon) => this.push(addon, Action.updateRequest),
      onDelete: (addon) => this.push(tombstone(addon), Action.deleteRequest),
      resyncMs: options.resyncMs ?? 30 * 60_000,
      logger: this.logger,
    });
  }

  /** The data type this instance serves. */
  get dataType(): string {
    return this.resource.dataType;
  }

  /** Keeps the broker's sink, through which this backend pushes to agents. */
  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }

  /** Starts the addon informer; resolves once the initial list is in the cache. */
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

  /** Every addon in the cluster's namespace. */
  list({ clusterName }: ListOptions): Promise<CloudEvent[]> {
    return Promise.resolve(this.informer.list(clusterName).map((addon) => this.encode(addon, Action.updateRequest)));
  }

  /** `update_request` (any subresource) → UpdateStatus with the agent's object. */
  async handle(event: CloudEvent, _context: RequestContext): Promise<void> {
    const request = decodeAgentRequest(this.resource, event, (t) => t.action === Action.updateRequest);
    requireClusterNamespace(this.resource, request);
    const { group, version, plural } = this.resource;
    const { metadata } = request.object;
    try {
      await this.api.replaceNamespacedCustomObjectStatus({
        group, version, plural, namespace: metadata.namespace as string, name: metadata.name, body: request.object,
      });
    } catch (err) {
      throw toBackendError(err, `failed to update the status of addon ${objectKey(this.resource, request.object)}`);
    }
  }

  /** Encodes an addon for its cluster (the namespace). */
  encode(addon: KubeObject, action: string): CloudEvent {
    return encodeKubeObject(this.resource, addon, { action, clusterName: addon.metadata.namespace ?? "", source: this.source });
  }

  private push(addon: KubeObject, action: string): void {
    publishSafely(this.sink, this.logger, () => this.encode(addon, action), objectKey(this.resource, addon));
  }
}
