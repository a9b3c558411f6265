import type { Http2Session } from "node:http2";

/** Keepalive and connection-age limits for every HTTP/2 connection (protocol.md §9.1). */
export interface ConnectionKeeperOptions {
  /** Ping period; 0 disables pings. */
  pingIntervalMs: number;
  /** A ping not answered within this time closes the connection. */
  pingTimeoutMs: number;
  /** Maximum connection age before GOAWAY; 0 means unlimited. ±10 % jitter is applied. */
  maxConnectionAgeMs: number;
  /** Time left to streams after the age GOAWAY before the connection is destroyed. */
  maxConnectionAgeGraceMs: number;
  /** Called when a connection is dropped for a missed ping. */
  onDeadPeer?: (session: Http2Session) => void;
}

/**
 * Applies server keepalive and max-connection-age to an HTTP/2 session, as grpc-go and grpc-js
 * servers do and connect-node does not: a dead agent behind a half-open TCP connection is detected
 * in ping interval + timeout, and long-lived connections are rotated with a graceful GOAWAY, which
 * sdk-go agents answer by reconnecting and resyncing (protocol.md §10.4).
 */
export function keepConnection(session: Http2Session, options: ConnectionKeeperOptions): void {
  const timers: NodeJS.Timeout[] = [];
  const track = (timer: NodeJS.Timeout) => {
    timer.unref();
    timers.push(timer);
    return timer;
  };
  const clear = () => timers.forEach(clearTimeout);
  session.once("close", clear);
  session.once("error", clear);

  if (options.pingIntervalMs > 0) {
    const schedulePing = () => {
      track(setTimeout(() => {
        if (session.destroyed || session.closed) return;
        const deadline = track(setTimeout(() => {
          options.onDeadPeer?.(session);
          session.destroy();
        }, options.pingTimeoutMs));
        const sent = session.ping((err) => {
          clearTimeout(deadline);
          if (err === null) schedulePing();
        });
        if (!sent) clearTimeout(deadline);
      }, options.pingIntervalMs));
    };
    schedulePing();
  }

  if (options.maxConnectionAgeMs > 0) {
    const jitter = 1 + (Math.random() * 0.2 - 0.1);
    track(setTimeout(() => {
      if (session.destroyed) return;
      session.close(); // GOAWAY; in-flight streams may finish
      track(setTimeout(() => session.destroy(), options.maxConnectionAgeGraceMs));
    }, options.maxConnectionAgeMs * jitter));
  }
}
