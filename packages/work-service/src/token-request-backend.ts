import { CoreV1Api, type AuthenticationV1TokenRequest } from "@kubernetes/client-node";
import { Action, DataTypes, Extension, eventTypeOf, newEvent, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError, silentLogger, type Backend, type ListOptions, type Logger, type RequestContext, type SpecEventSink } from "@ocm-conductor/router";
import { toBackendError } from "./kube-errors.js";
import {
  KUBE_SOURCE,
  decodeAgentRequest,
  objectKey,
  requireClusterNamespace,
  type KubeBackendOptions,
  type KubeObject,
  type KubeResource,
} from "./kube-object-codec.js";

/** `authentication.k8s.io/v1` TokenRequests (the `serviceaccounts/token` subresource) as the token service serves them. */
export const TOKEN_REQUESTS: KubeResource = {
  group: "authentication.k8s.io",
  version: "v1",
  plural: "tokenrequests",
  kind: "TokenRequest",
  namespaced: true,
  dataType: DataTypes.tokenRequests,
  noun: "tokenRequest",
};

/** Options of {@link KubeTokenRequestBackend}. */
export type KubeTokenRequestBackendOptions = Pick<KubeBackendOptions, "kubeConfig" | "source" | "logger">;

/**
 * The token-request service (hub-services.md §2.7, protocol.md gotcha 34; sdk-go ≥ v1.2 agents):
 * an agent subscribes to `authentication.k8s.io.v1.tokenrequests`, then publishes a
 * `spec.create_request` whose TokenRequest names a ServiceAccount in its cluster namespace and
 * carries a request ID as `metadata.uid`. The hub clears the UID (the API server would check it
 * against the ServiceAccount's), asks for a token, puts the request ID back on the response and
 * publishes it as `spec.create_request` to the cluster's token streams, where the agent matches it
 * by UID. API errors (a missing ServiceAccount…) reach the agent unchanged. There is no resync.
 */
export class KubeTokenRequestBackend implements Backend {
  private readonly core: CoreV1Api;
  private readonly source: string;
  private readonly logger: Logger;
  private sink: SpecEventSink | undefined;

  constructor(options: KubeTokenRequestBackendOptions) {
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.source = options.source ?? KUBE_SOURCE;
    this.logger = options.logger ?? silentLogger;
  }

  /** Keeps the broker's sink, through which this backend pushes to agents. */
  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }

  /** Nothing to start: the token service keeps no cache. */
  start(): Promise<void> {
    return Promise.resolve();
  }

  /** Always true: the token service needs no initial list. */
  get ready(): boolean {
    return true;
  }

  /** Nothing to stop. */
  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** Always empty: token requests are never resynced. */
  list(_options: ListOptions): Promise<CloudEvent[]> {
    return Promise.resolve([]);
  }

  /** `create_request` → CreateToken, then the response is published to the cluster's token streams. */
  async handle(event: CloudEvent, _context: RequestContext): Promise<void> {
    const request = decodeAgentRequest(TOKEN_REQUESTS, event, (t) => t.action === Action.createRequest);
    requireClusterNamespace(TOKEN_REQUESTS, request);
    const sink = this.sink;
    if (sink === undefined) throw BackendError.of("ServiceUnavailable", "the token request service is not attached to a broker");
    const { metadata } = request.object;
    const key = objectKey(TOKEN_REQUESTS, request.object);
    const requestId = typeof metadata.uid === "string" ? metadata.uid : "";
    const { uid: _uid, ...withoutUid } = metadata;
    let response: AuthenticationV1TokenRequest;
    try {
      response = await this.core.createNamespacedServiceAccountToken({
        name: metadata.name,
        namespace: metadata.namespace as string,
        body: { ...request.object, metadata: withoutUid } as unknown as AuthenticationV1TokenRequest,
      });
    } catch (err) {
      throw toBackendError(err, `failed to create a token for ${key}`);
    }
    // Back to wire JSON (client-node turns timestamps into Dates; JSON.stringify restores RFC 3339).
    const data = JSON.parse(JSON.stringify(response)) as KubeObject;
    data.metadata = { ...data.metadata, uid: requestId };
    const clusterName = data.metadata.namespace || request.clusterName;
    const routed = sink.publish(newEvent({
      type: eventTypeOf(TOKEN_REQUESTS.dataType, "spec", Action.createRequest),
      source: this.source,
      clusterName,
      extensions: { [Extension.resourceId]: requestId === "" ? undefined : requestId },
      data,
    }));
    if (routed === 0) this.logger.warn("token response has no subscriber; the agent will time out", { tokenRequest: key, requestId });
  }
}
