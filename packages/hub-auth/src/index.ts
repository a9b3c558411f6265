/**
 * Authentication and authorization of OCM agents on the hub for the conductor's CloudEvent service
 * (protocol.md §8): TokenReview for bearer tokens, client certificates verified against the client
 * CA bundle, a SubjectAccessReview per Publish and per Subscribe stream, with results cached for a
 * short TTL and concurrent identical reviews coalesced; plus the serving TLS files, reloaded when
 * they change.
 *
 * @packageDocumentation
 */
export { DEFAULT_REVIEW_CACHE_TTL_MS, HubAuth, type HubAuthOptions, type HubAuthStats } from "./hub-auth.js";
export { KubeHubReviewer, type AccessReviewResult, type HubCallCounts, type HubReviewer, type TokenReviewResult } from "./hub-reviewer.js";
export { createAuthInterceptor } from "./interceptor.js";
export { ReviewCache } from "./review-cache.js";
export { resourceAttributesFor, UnsupportedRequest, type AgentRequest, type ResourceAttributes } from "./sar-attributes.js";
export { kTlsPeer, tlsPeerOf, type PeerSubject, type TlsPeer } from "./tls-peer.js";
export { readTlsFiles, watchTlsFiles, TlsFilesError, type TlsFiles, type TlsFilesMaterial, type TlsWatchOptions } from "./tls-files.js";
