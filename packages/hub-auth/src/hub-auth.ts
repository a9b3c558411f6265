import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Action, Extension, SubResources, formatDataType, fromProto, parseDataType, parseEventType, stringExtension,
  type CloudEvent, type PbCloudEvent, type SubscriptionRequest,
} from "@ocm-conductor/protocol";
import { silentLogger, type Identity, type Logger } from "@ocm-conductor/router";
import type { AccessReviewResult, HubReviewer, TokenReviewResult } from "./hub-reviewer.js";
import { ReviewCache } from "./review-cache.js";
import { resourceAttributesFor, UnsupportedRequest, type AgentRequest, type ResourceAttributes } from "./sar-attributes.js";
import type { PeerSubject, TlsPeer } from "./tls-peer.js";

/** Default lifetime of cached TokenReview and SubjectAccessReview results. */
export const DEFAULT_REVIEW_CACHE_TTL_MS = 10_000;

/** Options of {@link HubAuth}. */
export interface HubAuthOptions {
  /** Makes the TokenReview and SubjectAccessReview calls (usually a {@link KubeHubReviewer}). */
  reviewer: HubReviewer;
  /**
   * How long a TokenReview or SubjectAccessReview result is reused, in ms (default 10 s); 0 calls
   * the hub for every request, as the Go server does. See README "Cache and its trade-off".
   */
  cacheTtlMs?: number;
  /** Bound on cached results per cache (default 10,000; the oldest are dropped). */
  cacheMaxEntries?: number;
  logger?: Logger;
}

/** Counters of what authentication and authorization did (for tests, metrics and the benchmark). */
export interface HubAuthStats {
  /** Results served from the cache or from a call in flight, instead of a hub call. */
  tokenReviewCacheHits: number;
  accessReviewCacheHits: number;
  /** Requests refused with Unauthenticated and with PermissionDenied. */
  unauthenticated: number;
  denied: number;
}

/**
 * Authentication and authorization of agents against the hub (protocol.md §8): bearer tokens by
 * TokenReview, else a client certificate verified against the client CA (user = CN, groups = O);
 * then a SubjectAccessReview per Publish and per Subscribe stream. Results are cached for a short
 * TTL and concurrent identical reviews share one hub call.
 */
export class HubAuth {
  readonly stats: HubAuthStats = { tokenReviewCacheHits: 0, accessReviewCacheHits: 0, unauthenticated: 0, denied: 0 };
  readonly reviewer: HubReviewer;
  private readonly tokens: ReviewCache<TokenReviewResult>;
  private readonly access: ReviewCache<AccessReviewResult>;
  private readonly logger: Logger;

  constructor(options: HubAuthOptions) {
    this.reviewer = options.reviewer;
    const ttl = options.cacheTtlMs ?? DEFAULT_REVIEW_CACHE_TTL_MS;
    this.tokens = new ReviewCache(ttl, options.cacheMaxEntries);
    this.access = new ReviewCache(ttl, options.cacheMaxEntries);
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * Establishes who is calling. The token authenticator runs first, then mTLS; the first success
   * wins and, when both fail, the request is Unauthenticated (the Go chain returns the mTLS error).
   *
   * @throws ConnectError `Unauthenticated`.
   */
  async authenticate(header: Headers, peer: TlsPeer | undefined): Promise<Identity> {
    const failures: string[] = [];
    const authorization = header.get("authorization");
    if (authorization !== null && authorization.startsWith("Bearer ") && authorization.length > "Bearer ".length) {
      const token = authorization.slice("Bearer ".length);
      try {
        const key = createHash("sha256").update(token).digest("base64");
        const result = await this.tokens.get(key, () => this.reviewer.reviewToken(token), () => this.stats.tokenReviewCacheHits++);
        if (result.authenticated) return result.identity;
        failures.push(`token: ${result.reason}`);
      } catch (err) {
        failures.push(`token: review failed: ${(err as Error).message}`);
        this.logger.warn("TokenReview failed", { error: (err as Error).message });
      }
    } else {
      failures.push("token: invalid token");
    }
    const fromCert = certificateIdentity(peer);
    if ("identity" in fromCert) return fromCert.identity;
    failures.push(`mtls: ${fromCert.error}`);
    this.stats.unauthenticated++;
    throw new ConnectError(`unauthenticated: ${failures.join("; ")}`, Code.Unauthenticated);
  }

  /**
   * Authorizes a Publish: the event's type and `clustername` name the SubjectAccessReview.
   *
   * @throws ConnectError `InvalidArgument` for an event the broker could not decode either (no
   *   event, bad type, no string `clustername`); `PermissionDenied` when the hub does not allow it,
   *   for undecodable data, an unsupported data type or action, and when the review itself fails.
   */
  async authorizePublish(identity: Identity, event: PbCloudEvent | undefined): Promise<void> {
    if (event === undefined) throw new ConnectError("failed to convert protobuf to cloudevent: missing event", Code.InvalidArgument);
    let decoded: CloudEvent;
    let request: AgentRequest;
    try {
      decoded = fromProto(event);
      const type = parseEventType(decoded.type);
      request = { dataType: formatDataType(type), subResource: type.subResource, action: type.action, clusterName: stringExtension(decoded, Extension.clusterName) };
    } catch (err) {
      throw new ConnectError(`failed to read the event: ${(err as Error).message}`, Code.InvalidArgument);
    }
    const name = objectName(decoded);
    if (typeof name !== "string" && name !== undefined) return this.deny(identity, request, `cannot decode the event data as an object: ${name.error}`);
    if (name !== undefined) request.name = name;
    await this.authorize(identity, request, decoded.type);
  }

  /**
   * Authorizes a Subscribe, once per stream: verb `watch` (`subscribe` for token requests) on the
   * data type's resource in the namespace named by `cluster_name`.
   *
   * @throws ConnectError `PermissionDenied`.
   */
  async authorizeSubscribe(identity: Identity, subscription: SubscriptionRequest): Promise<void> {
    let dataType: string;
    try {
      dataType = formatDataType(parseDataType(subscription.dataType));
    } catch (err) {
      return this.deny(identity, { dataType: subscription.dataType, subResource: SubResources.spec, action: Action.watchRequest, clusterName: subscription.clusterName }, (err as Error).message);
    }
    const request: AgentRequest = { dataType, subResource: SubResources.spec, action: Action.watchRequest, clusterName: subscription.clusterName };
    await this.authorize(identity, request, `${dataType} (subscribe)`);
  }

  private async authorize(identity: Identity, request: AgentRequest, what: string): Promise<void> {
    if (identity.user === "" && identity.groups.length === 0) return this.deny(identity, request, "no user and groups in context");
    let attributes: ResourceAttributes;
    try {
      attributes = resourceAttributesFor(request);
    } catch (err) {
      if (err instanceof UnsupportedRequest) return this.deny(identity, request, err.message);
      throw err;
    }
    const key = JSON.stringify([identity.user, [...identity.groups].sort(), attributes]);
    let result: AccessReviewResult;
    try {
      result = await this.access.get(key, () => this.reviewer.reviewAccess(identity, attributes), () => this.stats.accessReviewCacheHits++);
    } catch (err) {
      this.logger.warn("SubjectAccessReview failed", { error: (err as Error).message, user: identity.user, cluster: request.clusterName });
      return this.deny(identity, request, `authorization check failed: ${(err as Error).message}`);
    }
    if (!result.allowed) {
      return this.deny(identity, request, `${what} is not allowed (verb=${attributes.verb}, resource=${describe(attributes)}${result.reason === "" ? "" : `, reason=${result.reason}`})`);
    }
  }

  private deny(identity: Identity, request: AgentRequest, why: string): never {
    this.stats.denied++;
    this.logger.info("request denied", { user: identity.user, groups: identity.groups, cluster: request.clusterName, dataType: request.dataType, action: request.action, why });
    throw new ConnectError(`access denied: cluster ${request.clusterName}: ${why}`, Code.PermissionDenied);
  }
}

function describe(a: ResourceAttributes): string {
  const resource = `${a.group === "" ? "" : `${a.group}/`}${a.resource}${a.subresource === undefined ? "" : `/${a.subresource}`}`;
  return `${resource} in namespace ${a.namespace}${a.name === undefined || a.name === "" ? "" : ` named ${a.name}`}`;
}

/** `metadata.name` of the event data (string or undefined), or why the data is not an object. */
function objectName(event: CloudEvent): string | undefined | { error: string } {
  if (event.data === undefined || event.data.length === 0) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(event.data));
  } catch (err) {
    return { error: (err as Error).message };
  }
  if (doc === null) return undefined;
  if (typeof doc !== "object" || Array.isArray(doc)) return { error: "not a JSON object" };
  const metadata = (doc as { metadata?: unknown }).metadata;
  if (metadata === undefined || metadata === null) return undefined;
  if (typeof metadata !== "object" || Array.isArray(metadata)) return { error: "metadata is not an object" };
  const name = (metadata as { name?: unknown }).name;
  if (name === undefined || name === null) return undefined;
  if (typeof name !== "string") return { error: "metadata.name is not a string" };
  return name;
}

function all(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** The mTLS authenticator: a client certificate verified against the client CA bundle. */
function certificateIdentity(peer: TlsPeer | undefined): { identity: Identity } | { error: string } {
  if (peer === undefined) return { error: "no TLS peer (plaintext connection)" };
  const cert = peer.getPeerCertificate(false);
  const subject = cert === null || !("subject" in cert) ? undefined : (cert.subject as PeerSubject | undefined);
  if (subject === undefined) return { error: "no client certificate" };
  if (!peer.authorized) {
    const why = peer.authorizationError;
    return { error: `could not verify peer certificate${why === undefined || why === null ? "" : `: ${String(why)}`}` };
  }
  const cn = all(subject.CN);
  return { identity: { user: cn[0] ?? "", groups: all(subject.O) } };
}
