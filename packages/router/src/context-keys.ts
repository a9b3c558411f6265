import { createContextKey } from "@connectrpc/connect";
import type { Identity } from "./backend.js";

/**
 * The authenticated identity of the caller. An authentication interceptor sets it; the broker
 * passes it to backends (the CSR backend records the user in `open-cluster-management.io/csr-user`).
 */
export const kIdentity = createContextKey<Identity | undefined>(undefined, { description: "authenticated identity" });

/**
 * Resets the HTTP/2 stream of the current call. A transport that can reach the stream provides it;
 * the broker uses it to end a Subscribe whose agent stopped reading, since such a stream cannot
 * receive trailers while flow control holds its data back.
 */
export const kStreamReset = createContextKey<(() => void) | undefined>(undefined, { description: "reset the HTTP/2 stream" });
