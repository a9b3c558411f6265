import { CustomObjectsApi } from "@kubernetes/client-node";
import { Action, DataTypes, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError, silentLogger, type Backend, type ListOptions, type Logger, type RequestContext, type SpecEventSink } from "@ocm-conductor/router";
import { toBackendError } from "./kube-errors.js";
import {
  CLUSTER_NAME_LABEL,
  collectionPath,
  decodeAgentRequest,
  encodeKubeObject,
  publishSafely,
  tombstone,
  type KubeBackendOptions,
  type KubeObject,
  type KubeResource,
} from "./kube-object-codec.js";
import { ResilientInformer } from "./resilient-informer.js";

/** `certificates.k8s.io/v1` CertificateSigningRequests as the CSR service serves them. */
export const CERTIFICATE_SIGNING_REQUESTS: KubeResource = {
  group: "certificates.k8s.io",
  version: "v1",
  plural: "certificatesigningrequests",
  kind: "CertificateSigningRequest",
  namespaced: false,
  dataType: DataTypes.certificateSigningRequests,
  noun: "csr",
};

/**
 * The annotation that records which agent identity asked for a CSR. The CSR itself is created by
 * the conductor's own identity, so the hub's approver reads the agent from here (hub-services.md §2.2).
 */
export const CSR_USER_ANNOTATION = "open-cluster-management.io/csr-user";

/**
 * The CSR service (hub-services.md §2.2): agents create named CSRs (`create_request`, any
 * subresource); the hub replaces the CSR's annotations with exactly
 * `{"open-cluster-management.io/csr-user": <authenticated user>}` and creates it. Only CSRs with
 * the `open-cluster-management.io/cluster-name` label are watched; they are pushed on Add, Update
 * (approval, certificate) and Delete to the agents of the cluster the label names.
 *
 * Differences from OCM, both refusals instead of silent damage: a request without an authenticated
 * user is refused with `Unauthorized` (Go would record `<nil>`), and a CSR whose cluster-name label
 * does not name the agent's cluster is refused with `BadRequest` (Go would create a CSR the agent
 * never sees).
 */
export class KubeCsrBackend implements Backend {
  private readonly api: CustomObjectsApi;
  private readonly informer: ResilientInformer<KubeObject>;
  private readonly source: string | undefined;
  private readonly logger: Logger;
  private sink: SpecEventSink | undefined;

  constructor(options: KubeBackendOptions) {
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.source = options.source;
    this.logger = options.logger ?? silentLogger;
    const { group, version, plural } = CERTIFICATE_SIGNING_REQUESTS;
    this.informer = new ResilientInformer<KubeObject>(options.kubeConfig, {
      name: "certificatesigningrequests",
      path: collectionPath(CERTIFICATE_SIGNING_REQUESTS),
      labelSelector: CLUSTER_NAME_LABEL,
      list: () => this.api.listClusterCustomObject({ group, version, plural, labelSelector: CLUSTER_NAME_LABEL }) as never,
      onAdd: (csr) => this.push(csr, Action.createRequest),
      onUpdate: (csr) => this.push(csr, Action.updateRequest),
      onDelete: (csr) => this.push(tombstone(csr), Action.deleteRequest),
      resyncMs: options.resyncMs ?? 30 * 60_000,
      logger: this.logger,
    });
  }

  /** Keeps the broker's sink, through which this backend pushes to agents. */
  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }

  /** Starts the CSR informer; resolves once the initial list is in the cache. */
  start(): Promise<void> {
    return this.informer.start();
  }

  /** True after the initial list (for readiness). */
  get ready(): boolean {
    return this.informer.ready;
  }

  /** Stops the informer. */
  stop(): Promise<void> {
    return this.informer.stop();
  }

  /** The CSRs labelled with the cluster's name. */
  list({ clusterName }: ListOptions): Promise<CloudEvent[]> {
    return Promise.resolve(this.informer.list()
      .filter((csr) => clusterOf(csr) === clusterName)
      .map((csr) => this.encode(csr, Action.updateRequest)));
  }

  /** `create_request` → Create, with the annotations replaced by the agent's identity. */
  async handle(event: CloudEvent, context: RequestContext): Promise<void> {
    const request = decodeAgentRequest(CERTIFICATE_SIGNING_REQUESTS, event, (t) => t.action === Action.createRequest);
    const csr = request.object;
    const name = csr.metadata.name;
    const label = clusterOf(csr);
    if (label !== request.clusterName) {
      throw BackendError.of("BadRequest", label === undefined
        ? `csr ${name} has no ${CLUSTER_NAME_LABEL} label`
        : `csr ${name} is labelled for cluster ${label}, not for the cluster ${request.clusterName} the agent speaks for`);
    }
    const user = context.identity?.user;
    if (user === undefined || user === "") {
      throw BackendError.of("Unauthorized",
        `cannot create csr ${name}: the request has no authenticated user to record in the ${CSR_USER_ANNOTATION} annotation`);
    }
    const body: KubeObject = { ...csr, metadata: { ...csr.metadata, annotations: { [CSR_USER_ANNOTATION]: user } } };
    const { group, version, plural } = CERTIFICATE_SIGNING_REQUESTS;
    try {
      await this.api.createClusterCustomObject({ group, version, plural, body });
    } catch (err) {
      throw toBackendError(err, `failed to create csr ${name}`);
    }
  }

  /**
   * Encodes a CSR for the cluster its label names.
   *
   * @throws Error when the CSR has no cluster-name label (OCM's codec refuses those too).
   */
  encode(csr: KubeObject, action: string): CloudEvent {
    const clusterName = clusterOf(csr);
    if (clusterName === undefined) throw new Error(`no cluster name found for CSR ${csr.metadata.name}`);
    return encodeKubeObject(CERTIFICATE_SIGNING_REQUESTS, csr, { action, clusterName, source: this.source });
  }

  private push(csr: KubeObject, action: string): void {
    publishSafely(this.sink, this.logger, () => this.encode(csr, action), csr.metadata.name);
  }
}

function clusterOf(csr: KubeObject): string | undefined {
  return csr.metadata.labels?.[CLUSTER_NAME_LABEL];
}
