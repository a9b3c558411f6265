import { createContextKey } from "@connectrpc/connect";

/** A client certificate's subject, as Node reports it (repeated fields are arrays). */
export interface PeerSubject {
  CN?: string | string[];
  O?: string | string[];
}

/** The TLS side of a connection, as the mTLS authenticator needs it (a `tls.TLSSocket` has this shape). */
export interface TlsPeer {
  /** True when the client presented a certificate that verified against the configured client CA bundle. */
  readonly authorized: boolean;
  readonly authorizationError?: Error | string | null;
  getPeerCertificate(detailed?: boolean): { subject?: PeerSubject } | Record<string, never> | null;
}

/**
 * Context key for the connection's TLS peer: the transport sets it for every call (undefined on h2c),
 * the authentication interceptor reads it.
 */
export const kTlsPeer = createContextKey<TlsPeer | undefined>(undefined, { description: "TLS peer of the connection" });

/**
 * The TLS peer of a Node HTTP/2 (or HTTP/1) server request, for {@link kTlsPeer}: its socket when
 * the connection is encrypted, else undefined. Call it from connect-node's `contextValues(req)`.
 */
export function tlsPeerOf(req: { socket?: unknown }): TlsPeer | undefined {
  const socket = req.socket as (Partial<TlsPeer> & { encrypted?: boolean }) | undefined | null;
  if (socket === undefined || socket === null || socket.encrypted !== true || typeof socket.getPeerCertificate !== "function") return undefined;
  return socket as TlsPeer;
}
