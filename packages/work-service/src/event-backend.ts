import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { Action, DataTypes, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError, type Backend, type ListOptions, type RequestContext } from "@ocm-conductor/router";
import { httpStatusOf, toBackendError } from "./kube-errors.js";
import { decodeAgentRequest, objectKey, requireClusterNamespace, type KubeObject, type KubeResource } from "./kube-object-codec.js";

/** `events.k8s.io/v1` Events as the event service serves them. */
export const EVENTS: KubeResource = {
  group: "events.k8s.io",
  version: "v1",
  plural: "events",
  kind: "Event",
  namespaced: true,
  dataType: DataTypes.events,
  noun: "event",
};

/** Options of {@link KubeEventBackend}. */
export interface KubeEventBackendOptions {
  kubeConfig: KubeConfig;
}

/**
 * The event service (hub-services.md §2.4): agents record events on the hub in their cluster
 * namespace. `create_request` creates the event as sent; `update_request` carries a stub with the
 * event's name and the agent's `series` patch, so the hub reads the event, copies **only** `series`
 * onto it and updates it (a missing event is ignored). Agents never subscribe to or resync events:
 * nothing is pushed, and {@link list} refuses with `MethodNotAllowed` (405), as OCM's
 * `MethodNotSupported`.
 */
export class KubeEventBackend implements Backend {
  private readonly api: CustomObjectsApi;

  constructor(options: KubeEventBackendOptions) {
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /** Nothing to start: the event service keeps no cache. */
  start(): Promise<void> {
    return Promise.resolve();
  }

  /** Always true: the event service needs no initial list. */
  get ready(): boolean {
    return true;
  }

  /** Nothing to stop. */
  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** Always refuses: events are never resynced. */
  list(_options: ListOptions): Promise<CloudEvent[]> {
    return Promise.reject(BackendError.of("MethodNotAllowed", 'list is not supported on resources of kind "events.events.k8s.io"',
      { group: EVENTS.group, kind: EVENTS.plural }));
  }

  /** `create_request` → Create; `update_request` → Get, copy `series`, Update (NotFound → nothing). */
  async handle(event: CloudEvent, _context: RequestContext): Promise<void> {
    const request = decodeAgentRequest(EVENTS, event,
      (t) => t.action === Action.createRequest || t.action === Action.updateRequest);
    requireClusterNamespace(EVENTS, request);
    const { metadata } = request.object;
    const key = objectKey(EVENTS, request.object);
    const target = { group: EVENTS.group, version: EVENTS.version, plural: EVENTS.plural, namespace: metadata.namespace as string };
    if (request.type.action === Action.createRequest) {
      try {
        await this.api.createNamespacedCustomObject({ ...target, body: request.object });
      } catch (err) {
        throw toBackendError(err, `failed to create event ${key}`);
      }
      return;
    }
    let current: KubeObject;
    try {
      current = (await this.api.getNamespacedCustomObject({ ...target, name: metadata.name })) as KubeObject;
    } catch (err) {
      if (httpStatusOf(err) === 404) return;
      throw toBackendError(err, `failed to get event ${key}`);
    }
    const { series: _old, ...rest } = current;
    const series = request.object.series;
    const body: KubeObject = series === undefined || series === null ? rest as KubeObject : { ...rest, series } as KubeObject;
    try {
      await this.api.replaceNamespacedCustomObject({ ...target, name: metadata.name, body });
    } catch (err) {
      throw toBackendError(err, `failed to update event ${key}`);
    }
  }
}
