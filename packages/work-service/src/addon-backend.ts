import { Action, DataTypes, type CloudEvent } from "@ocm-conductor/protocol";
import type { ListOptions, RequestContext } from "@ocm-conductor/router";
import { toBackendError } from "./kube-errors.js";
import {
  decodeAgentRequest,
  objectKey,
  requireClusterNamespace,
  type KubeBackendOptions,
  type KubeObject,
  type KubeResource,
} from "./kube-object-codec.js";
import { InformedBackend } from "./informed-backend.js";

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
export class KubeAddonBackend extends InformedBackend {

  constructor(options: KubeAddonBackendOptions) {
    super(managedClusterAddOns(options.version), options);
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



  /** An addon belongs to the cluster whose namespace holds it. */
  protected clusterOf(obj: KubeObject): string | undefined {
    return obj.metadata.namespace;
  }
}
