/**
 * Kubernetes-backed conductor backends. Today: ManifestWorks for the `kube` source of
 * manifestbundles. Each backend implements the router's `Backend` interface and keeps a resilient
 * informer of its objects.
 *
 * @packageDocumentation
 */
export { KubeWorkBackend, type KubeWorkBackendOptions } from "./work-backend.js";
export { ResilientInformer, type ResilientInformerOptions } from "./resilient-informer.js";
export { httpStatusOf, toBackendError } from "./kube-errors.js";
export { MANIFEST_WORKS, type ManifestWork } from "./manifest-work.js";
export {
  CLUSTER_NAME_LABEL,
  KUBE_SOURCE,
  apiVersionOf,
  collectionPath,
  decodeAgentRequest,
  encodeKubeObject,
  isDeleting,
  objectKey,
  publishSafely,
  requireClusterNamespace,
  tombstone,
  type AgentRequest,
  type EncodeOptions,
  type KubeBackendOptions,
  type KubeObject,
  type KubeObjectMeta,
  type KubeResource,
} from "./kube-object-codec.js";
export { KubeClusterBackend, MANAGED_CLUSTERS } from "./cluster-backend.js";
export { CERTIFICATE_SIGNING_REQUESTS, CSR_USER_ANNOTATION, KubeCsrBackend } from "./csr-backend.js";
export { KubeLeaseBackend, LEASES } from "./lease-backend.js";
export { EVENTS, KubeEventBackend, type KubeEventBackendOptions } from "./event-backend.js";
export { KubeAddonBackend, managedClusterAddOns, type AddonVersion, type KubeAddonBackendOptions } from "./addon-backend.js";
export { KubeTokenRequestBackend, TOKEN_REQUESTS, type KubeTokenRequestBackendOptions } from "./token-request-backend.js";
export { createHubServices, registerHubServices, type HubBackend, type HubServices, type HubServicesOptions } from "./hub-services.js";
export { ConnectionReusingKubeConfig } from "./connection-reusing-kube-config.js";
export type { ResilientInformerStats } from "./resilient-informer.js";
