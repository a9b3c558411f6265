import type { KubeConfig } from "@kubernetes/client-node";
import { DataTypes } from "@ocm-conductor/protocol";
import type { Backend, Broker, Logger } from "@ocm-conductor/router";
import { KubeAddonBackend } from "./addon-backend.js";
import { KubeClusterBackend } from "./cluster-backend.js";
import { KubeCsrBackend } from "./csr-backend.js";
import { KubeEventBackend } from "./event-backend.js";
import { KubeLeaseBackend } from "./lease-backend.js";
import { KubeTokenRequestBackend } from "./token-request-backend.js";
import { KubeWorkBackend } from "./work-backend.js";

/** Options of {@link createHubServices}. */
export interface HubServicesOptions {
  /** The hub's API server, as the identity bound to `rbac/cluster-role.yaml`. */
  kubeConfig: KubeConfig;
  logger?: Logger;
  /** Periodic re-send of every cached object to its agents; default 30 min, 0 disables. */
  resyncMs?: number;
}

/** A backend with the lifecycle every hub service has. */
export interface HubBackend extends Backend {
  /** Starts its informer, if any; resolves after the initial list. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True once its cache is filled (always true for cache-less services). */
  readonly ready: boolean;
}

/** Every Kubernetes-backed service of the conductor, built by {@link createHubServices}. */
export interface HubServices {
  /** One entry per data type, in the order they are registered. */
  readonly backends: ReadonlyArray<{ dataType: string; backend: HubBackend }>;
  /**
   * Starts every informer; resolves after all initial lists. A list the hub refuses (RBAC, missing
   * CRD) is retried with backoff, so this only resolves once the hub serves every resource.
   */
  start(): Promise<void>;
  /** Stops every informer. */
  stop(): Promise<void>;
  /** True once every informer has its initial list (for the readiness probe). */
  readonly ready: boolean;
}

/**
 * Builds the hub services of hub-services.md §2 over one Kubernetes identity: ManifestWorks (the
 * `kube` source of manifestbundles), ManagedClusters, CSRs, leases, events, ManagedClusterAddOns
 * v1alpha1 and v1beta1, and token requests. Register them with {@link registerHubServices} before
 * {@link HubServices.start}, so that no informer event is dropped for want of a sink.
 *
 * A conductor that routes manifestbundles between `kube` and `maestro` registers its own router
 * for that data type instead: filter out the {@link DataTypes.manifestBundles} entry.
 */
export function createHubServices(options: HubServicesOptions): HubServices {
  const { kubeConfig, logger, resyncMs } = options;
  const common = { kubeConfig, logger, resyncMs };
  const backends: Array<{ dataType: string; backend: HubBackend }> = [
    { dataType: DataTypes.manifestBundles, backend: new KubeWorkBackend(common) },
    { dataType: DataTypes.managedClusters, backend: new KubeClusterBackend(common) },
    { dataType: DataTypes.certificateSigningRequests, backend: new KubeCsrBackend(common) },
    { dataType: DataTypes.leases, backend: new KubeLeaseBackend(common) },
    { dataType: DataTypes.events, backend: new KubeEventBackend({ kubeConfig }) },
    { dataType: DataTypes.managedClusterAddOnsV1alpha1, backend: new KubeAddonBackend({ ...common, version: "v1alpha1" }) },
    { dataType: DataTypes.managedClusterAddOnsV1beta1, backend: new KubeAddonBackend({ ...common, version: "v1beta1" }) },
    { dataType: DataTypes.tokenRequests, backend: new KubeTokenRequestBackend({ kubeConfig, logger }) },
  ];
  return {
    backends,
    async start() {
      await Promise.all(backends.map(({ backend }) => backend.start()));
    },
    async stop() {
      await Promise.all(backends.map(({ backend }) => backend.stop()));
    },
    get ready() {
      return backends.every(({ backend }) => backend.ready);
    },
  };
}

/** Registers every service with the broker, which attaches its sink to each. */
export function registerHubServices(broker: Broker, services: HubServices): void {
  for (const { dataType, backend } of services.backends) broker.registerBackend(dataType, backend);
}
