import { Action, DataTypes, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError, type ListOptions, type RequestContext } from "@ocm-conductor/router";
import { toBackendError } from "./kube-errors.js";
import {
  CLUSTER_NAME_LABEL,
  decodeAgentRequest,
  type KubeBackendOptions,
  type KubeObject,
  type KubeResource,
} from "./kube-object-codec.js";
import { InformedBackend } from "./informed-backend.js";

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
export class KubeCsrBackend extends InformedBackend {

  constructor(options: KubeBackendOptions) {
    super(CERTIFICATE_SIGNING_REQUESTS, options, { labelSelector: CLUSTER_NAME_LABEL });
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



  /** A CSR belongs to the cluster its `open-cluster-management.io/cluster-name` label names. */
  protected clusterOf(obj: KubeObject): string | undefined {
    return clusterOf(obj);
  }
}

function clusterOf(csr: KubeObject): string | undefined {
  return csr.metadata.labels?.[CLUSTER_NAME_LABEL];
}
