import type { Condition, ManifestCondition } from "@ocm-conductor/protocol";

/** The ManifestWork fields the conductor reads and writes (`work.open-cluster-management.io/v1`). */
export interface ManifestWork {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string | Date;
    creationTimestamp?: string | Date;
    managedFields?: unknown[];
  };
  spec?: {
    workload?: { manifests?: Array<Record<string, unknown>> };
    deleteOption?: Record<string, unknown>;
    manifestConfigs?: Array<Record<string, unknown>>;
    executor?: Record<string, unknown>;
  };
  status?: {
    conditions?: Condition[];
    resourceStatus?: { manifests?: ManifestCondition[] };
  };
}

/** Group, version and plural of ManifestWorks, for the custom-objects API. */
export const MANIFEST_WORKS = { group: "work.open-cluster-management.io", version: "v1", plural: "manifestworks" } as const;
