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
