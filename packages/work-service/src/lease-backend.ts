import { CustomObjectsApi } from "@kubernetes/client-node";
import { Action, DataTypes, type CloudEvent } from "@ocm-conductor/protocol";
import { silentLogger, type Backend, type ListOptions, type Logger, type RequestContext, type SpecEventSink } from "@ocm-conductor/router";
import { toBackendError } from "./kube-errors.js";
import {
  CLUSTER_NAME_LABEL,
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

/** `coordination.k8s.io/v1` Leases as the lease service serves them. */
export const LEASES: KubeResource = {
  group: "coordination.k8s.io",
  version: "v1",
  plural: "leases",
  kind: "Lease",
  namespaced: true,
  dataType: DataTypes.leases,
  noun: "lease",
};

/**
 * The lease service (hub-services.md §2.3): the hub lease controller creates
 * `managed-cluster-lease` in the cluster namespace with the cluster-name label; agents renew it
 * with `update_request` (a full PUT with the resourceVersion they hold, so a stale one gets the API
 * server's 409), and every hub-side change — their own renewals included — is echoed back to the
 * cluster's agents. Only leases with the `open-cluster-management.io/cluster-name` label are seen.
 */
export class KubeLeaseBackend implements Backend {
  private readonly api: CustomObjectsApi;
  private readonly informer: ResilientInformer<KubeObject>;
  private readonly source: string | undefined;
  private readonly logger: Logger;
  private sink: SpecEventSink | undefined;

  constructor(options: KubeBackendOptions) {
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.source = options.source;
    this.logger = options.logger ?? silentLogger;
    const { group, version, plural } = LEASES;
    this.informer = new ResilientInformer<KubeObject>(options.kubeConfig, {
      name: "leases",
      path: collectionPath(LEASES),
      labelSelector: CLUSTER_NAME_LABEL,
      list: () => this.api.listClusterCustomObject({ group, version, plural, labelSelector: CLUSTER_NAME_LABEL }) as never,
      onAdd: (lease) => this.push(lease, Action.createRequest),
      onUpdate: (lease) => this.push(lease, Action.updateRequest),
      onDelete: (lease) => this.push(tombstone(lease), Action.deleteRequest),
      resyncMs: options.resyncMs ?? 30 * 60_000,
      logger: this.logger,
    });
  }

  /** Keeps the broker's sink, through which this backend pushes to agents. */
  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }

  /** Starts the lease informer; resolves once the initial list is in the cache. */
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

  /** The labelled leases in the cluster's namespace whose label names the cluster. */
  list({ clusterName }: ListOptions): Promise<CloudEvent[]> {
    return Promise.resolve(this.informer.list(clusterName)
      .filter((lease) => lease.metadata.labels?.[CLUSTER_NAME_LABEL] === clusterName)
      .map((lease) => this.encode(lease, Action.updateRequest)));
  }

  /** `update_request` (any subresource) → a full PUT of the agent's lease. */
  async handle(event: CloudEvent, _context: RequestContext): Promise<void> {
    const request = decodeAgentRequest(LEASES, event, (t) => t.action === Action.updateRequest);
    requireClusterNamespace(LEASES, request);
    const { metadata } = request.object;
    try {
      await this.api.replaceNamespacedCustomObject({
        group: LEASES.group, version: LEASES.version, plural: LEASES.plural,
        namespace: metadata.namespace as string, name: metadata.name, body: request.object,
      });
    } catch (err) {
      throw toBackendError(err, `failed to update lease ${objectKey(LEASES, request.object)}`);
    }
  }

  /** Encodes a lease for its cluster (the namespace). */
  encode(lease: KubeObject, action: string): CloudEvent {
    return encodeKubeObject(LEASES, lease, { action, clusterName: lease.metadata.namespace ?? "", source: this.source });
  }

  private push(lease: KubeObject, action: string): void {
    publishSafely(this.sink, this.logger, () => this.encode(lease, action), objectKey(LEASES, lease));
  }
}
