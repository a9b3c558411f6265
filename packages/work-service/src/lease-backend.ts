import { Action, DataTypes, type CloudEvent } from "@ocm-conductor/protocol";
import type { ListOptions, RequestContext } from "@ocm-conductor/router";
import { toBackendError } from "./kube-errors.js";
import {
  CLUSTER_NAME_LABEL,
  decodeAgentRequest,
  objectKey,
  requireClusterNamespace,
  type KubeBackendOptions,
  type KubeObject,
  type KubeResource,
} from "./kube-object-codec.js";
import { InformedBackend } from "./informed-backend.js";

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
export class KubeLeaseBackend extends InformedBackend {

  constructor(options: KubeBackendOptions) {
    super(LEASES, options, { labelSelector: CLUSTER_NAME_LABEL });
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



  /** A lease belongs to the cluster whose namespace holds it. */
  protected clusterOf(obj: KubeObject): string | undefined {
    return obj.metadata.namespace;
  }
}
