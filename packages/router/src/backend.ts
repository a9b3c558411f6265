import type { CloudEvent } from "@ocm-conductor/protocol";

/** Who sent a request, as the authentication layer established it (empty until authn runs). */
export interface Identity {
  user: string;
  groups: string[];
}

/** What a backend learns about the agent request it handles. */
export interface RequestContext {
  /** The authenticated caller, when authentication is enabled. */
  identity?: Identity;
  /** Aborted when the agent cancels or the deadline passes: pass it to I/O. */
  signal: AbortSignal;
}

/** Which spec events {@link Backend.list} must return. */
export interface ListOptions {
  /** The cluster whose objects are listed: the `clustername` of the agent's resync request. */
  clusterName: string;
  /** The data type string, e.g. `io.open-cluster-management.works.v1alpha1.manifestbundles`. */
  dataType: string;
}

/**
 * A list some of whose objects could not be read (one source behind a SourceRouter is down).
 * The broker answers the resync with the events it has and synthesises **no** deletions, since an
 * object missing from an incomplete list may still exist.
 */
export interface IncompleteList {
  events: CloudEvent[];
  /** Why the list is incomplete, for logs. */
  incomplete: string;
}

/** Where a backend sends spec events; the broker routes them to the matching subscribers. */
export interface SpecEventSink {
  /**
   * Routes a fully built spec event to every stream subscribed to its (`clustername`, data type).
   * It never blocks: a subscriber that cannot keep up is disconnected and resyncs later. Returns
   * the number of streams the event was queued on (0 when the cluster has no subscriber).
   */
  publish(event: CloudEvent): number;
  /**
   * Tells the agents of `dataType` to resync because spec events may have been lost (a remote
   * backend's event stream broke): their streams end with `Unavailable`, and they resubscribe and
   * resync. Provided by the broker; a sink may lack it.
   */
  resyncAll?(dataType: string, why: string): void;
}

/**
 * The seam between the broker and the systems that own objects (Kubernetes for `kube`, Maestro's
 * database for `maestro`). One backend serves one data type; it is the TypeScript counterpart of
 * sdk-go's `server.Service` (protocol.md §6.1).
 */
export interface Backend {
  /**
   * Lists the current spec events of a cluster, used to answer resync requests. Each event must
   * carry `clustername`, `resourceid` (the object UID) and `resourceversion` (an integer for
   * manifestbundles, a decimal string otherwise; it may be omitted only with `deletiontimestamp`).
   * The type is ignored: the broker rewrites it to `<dataType>.spec.resync_response`. Deleting
   * objects should stay listed, with `deletiontimestamp`, until the agent confirms the deletion.
   * A backend that can read only part of its objects returns an {@link IncompleteList}.
   */
  list(options: ListOptions, signal: AbortSignal): Promise<CloudEvent[] | IncompleteList>;
  /**
   * Handles an event an agent published (a status update, a create, a lease update…): every
   * action except `spec.resync_request`, which the broker answers itself. Throw a
   * {@link BackendError} to give the agent a typed Kubernetes error.
   */
  handle(event: CloudEvent, context: RequestContext): Promise<void>;
  /**
   * Called once when the backend is registered with the broker. The backend keeps the sink and
   * publishes spec events through it whenever its objects change.
   */
  attach?(sink: SpecEventSink): void;
}
