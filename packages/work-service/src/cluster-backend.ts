import { Action, DataTypes, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError, type ListOptions, type RequestContext } from "@ocm-conductor/router";
import { toBackendError } from "./kube-errors.js";
import {
  decodeAgentRequest,
  type KubeBackendOptions,
  type KubeObject,
  type KubeResource,
} from "./kube-object-codec.js";
import { InformedBackend } from "./informed-backend.js";

/** `cluster.open-cluster-management.io/v1` ManagedClusters as the cluster service serves them. */
export const MANAGED_CLUSTERS: KubeResource = {
  group: "cluster.open-cluster-management.io",
  version: "v1",
  plural: "managedclusters",
  kind: "ManagedCluster",
  namespaced: false,
  dataType: DataTypes.managedClusters,
  noun: "cluster",
};

/**
 * The cluster service (hub-services.md §2.1): agents create their ManagedCluster
 * (`create_request`, any subresource) and report its status (`status.update_request`, a full PUT
 * to `/status` with the resourceVersion they hold); a `spec.update_request` is a full PUT of the
 * object. It is the only service that routes on the subresource. The hub pushes the cluster on
 * informer Add and Update and, like OCM, has no delete handler. An agent may only write the
 * ManagedCluster named after the cluster it speaks for.
 */
export class KubeClusterBackend extends InformedBackend {

  constructor(options: KubeBackendOptions) {
    super(MANAGED_CLUSTERS, options, { pushDeletes: false });
  }






  /** The ManagedCluster named `clusterName`, if the hub has it. */
  list({ clusterName }: ListOptions): Promise<CloudEvent[]> {
    const cluster = this.informer.get(clusterName);
    return Promise.resolve(cluster === undefined ? [] : [this.encode(cluster, Action.updateRequest)]);
  }

  /** `create_request` → Create; `status.update_request` → UpdateStatus; `spec.update_request` → Update. */
  async handle(event: CloudEvent, _context: RequestContext): Promise<void> {
    const request = decodeAgentRequest(MANAGED_CLUSTERS, event,
      (t) => t.action === Action.createRequest || t.action === Action.updateRequest);
    const cluster = request.object;
    const name = cluster.metadata.name;
    if (name !== request.clusterName) {
      throw BackendError.of("BadRequest", `cluster ${name} is not the cluster ${request.clusterName} the agent speaks for`);
    }
    const { group, version, plural } = MANAGED_CLUSTERS;
    try {
      if (request.type.action === Action.createRequest) {
        await this.api.createClusterCustomObject({ group, version, plural, body: cluster });
      } else if (request.type.subResource === "status") {
        await this.api.replaceClusterCustomObjectStatus({ group, version, plural, name, body: cluster });
      } else {
        await this.api.replaceClusterCustomObject({ group, version, plural, name, body: cluster });
      }
    } catch (err) {
      const verb = request.type.action === Action.createRequest ? "create" : request.type.subResource === "status" ? "update the status of" : "update";
      throw toBackendError(err, `failed to ${verb} cluster ${name}`);
    }
  }



  /** A ManagedCluster belongs to the cluster it names. */
  protected clusterOf(obj: KubeObject): string {
    return obj.metadata.name;
  }
}
