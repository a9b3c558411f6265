import type { CloudEvent } from "./cloud-event.js";
import { ProtocolError } from "./protocol-error.js";

// Work payloads of protocol.md §7: the data of hub→agent spec events (ManifestBundle) and of
// agent→hub status events (ManifestBundleStatus). Field names are the JSON keys on the wire.

/** A raw Kubernetes object as it appears in a bundle. */
export type Manifest = Record<string, unknown> & { apiVersion?: string; kind?: string; metadata?: Record<string, unknown> };

/** How the agent deletes applied resources (`workv1.DeleteOption`). */
export interface DeleteOption {
  propagationPolicy?: "Foreground" | "Orphan" | "SelectivelyOrphan";
  selectivelyOrphans?: { orphaningRules?: ResourceIdentifier[] };
  ttlSecondsAfterFinished?: number;
}

/** Identifies one applied resource (`workv1.ResourceIdentifier`). */
export interface ResourceIdentifier {
  group?: string;
  resource?: string;
  name?: string;
  namespace?: string;
}

/** Per-resource apply options (`workv1.ManifestConfigOption`); kept open, the agent validates it. */
export interface ManifestConfigOption {
  resourceIdentifier: ResourceIdentifier;
  feedbackRules?: unknown[];
  updateStrategy?: Record<string, unknown>;
  conditionRules?: unknown[];
  feedbackScrapeType?: string;
}

/** Data of a manifestbundles spec event. */
export interface ManifestBundle {
  /** Never omitted: a nil list is `null` in Go. Agents drop bundles whose list is empty. */
  manifests: Manifest[] | null;
  deleteOption?: DeleteOption;
  manifestConfigs?: ManifestConfigOption[];
  /** Spelled `executer` on the wire (the ManifestWork field is `executor`). */
  executer?: { subject: { type: string; serviceAccount?: { namespace: string; name: string } } };
}

/** A `metav1.Condition`. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** The status of one applied resource (`workv1.ManifestCondition`). */
export interface ManifestCondition {
  resourceMeta: {
    ordinal: number;
    group?: string;
    version?: string;
    kind?: string;
    resource?: string;
    name?: string;
    namespace?: string;
  };
  statusFeedback?: { values?: unknown[] };
  conditions: Condition[] | null;
}

/** Data of a manifestbundles status event. */
export interface ManifestBundleStatus {
  manifestBundle?: ManifestBundle;
  /** Never omitted; may be `null`. */
  conditions: Condition[] | null;
  resourceStatus?: ManifestCondition[];
}

/** The finalizer agents put on works they manage. */
export const MANIFEST_WORK_CLEANUP_FINALIZER = "cluster.open-cluster-management.io/manifest-work-cleanup";

/** The work condition type that tells the hub an agent finished deleting (`Deleted=True`). */
export const CONDITION_DELETED = "Deleted";

/** The largest total manifest size agents accept (bytes, protocol.md §7.1). */
export const MAX_MANIFESTS_BYTES = 500 * 1024;

/**
 * Decodes the data of a manifestbundles status event. Absent data is an empty status (Go's
 * `DataAs` gives a zero value); otherwise the data must be a JSON object whose `conditions` and
 * `resourceStatus`, when present, are lists.
 *
 * @throws ProtocolError `invalid-payload`
 */
export function decodeManifestBundleStatus(event: CloudEvent): ManifestBundleStatus {
  if (event.data === undefined) return { conditions: null };
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(event.data));
  } catch (err) {
    throw new ProtocolError("invalid-payload", (err as Error).message);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ProtocolError("invalid-payload", "the status is not a JSON object");
  }
  const status = doc as ManifestBundleStatus;
  if (status.conditions !== undefined && status.conditions !== null && !Array.isArray(status.conditions)) {
    throw new ProtocolError("invalid-payload", "conditions is not a list");
  }
  if (status.resourceStatus !== undefined && !Array.isArray(status.resourceStatus)) {
    throw new ProtocolError("invalid-payload", "resourceStatus is not a list");
  }
  return status;
}
