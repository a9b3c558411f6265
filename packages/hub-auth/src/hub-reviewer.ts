import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Identity } from "@ocm-conductor/router";
import type { ResourceAttributes } from "./sar-attributes.js";

/** What a TokenReview said about a bearer token. */
export type TokenReviewResult = { authenticated: true; identity: Identity } | { authenticated: false; reason: string };

/** What a SubjectAccessReview said. */
export interface AccessReviewResult {
  allowed: boolean;
  /** `status.reason` (and `evaluationError`), for the denial message and logs. */
  reason: string;
}

/** The two hub API calls authentication and authorization make. Errors are hub API failures. */
export interface HubReviewer {
  /** `authentication.k8s.io/v1` TokenReview (no audiences, as the Go server). */
  reviewToken(token: string): Promise<TokenReviewResult>;
  /** `authorization.k8s.io/v1` SubjectAccessReview of `identity` doing `attributes`. */
  reviewAccess(identity: Identity, attributes: ResourceAttributes): Promise<AccessReviewResult>;
}

/** Hub calls made so far, by kind (what the cache tests and the benchmark read). */
export interface HubCallCounts {
  tokenReviews: number;
  subjectAccessReviews: number;
}

/**
 * {@link HubReviewer} on the hub's Kubernetes API with `@kubernetes/client-node`, counting every call.
 * The conductor's identity needs `create` on `tokenreviews` and `subjectaccessreviews`
 * (packages/work-service/rbac/cluster-role.yaml).
 */
export class KubeHubReviewer implements HubReviewer {
  readonly calls: HubCallCounts = { tokenReviews: 0, subjectAccessReviews: 0 };
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.authn = kubeConfig.makeApiClient(AuthenticationV1Api);
    this.authz = kubeConfig.makeApiClient(AuthorizationV1Api);
  }

  async reviewToken(token: string): Promise<TokenReviewResult> {
    this.calls.tokenReviews++;
    const review = await this.authn.createTokenReview({ body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } } });
    const status = review.status;
    if (status?.authenticated !== true) return { authenticated: false, reason: status?.error || "token not authenticated" };
    return { authenticated: true, identity: { user: status.user?.username ?? "", groups: status.user?.groups ?? [] } };
  }

  async reviewAccess(identity: Identity, attributes: ResourceAttributes): Promise<AccessReviewResult> {
    this.calls.subjectAccessReviews++;
    const review = await this.authz.createSubjectAccessReview({
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: { user: identity.user, groups: identity.groups, resourceAttributes: { ...attributes } },
      },
    });
    const status = review.status;
    const reason = [status?.reason, status?.evaluationError].filter((s) => s !== undefined && s !== "").join("; ");
    return { allowed: status?.allowed === true && status.denied !== true, reason };
  }
}
