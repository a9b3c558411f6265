import { createServer } from "node:net";

/**
 * Returns a TCP port on which `host` (default `127.0.0.1`) is free right now.
 *
 * The port is found by letting the kernel pick one (`listen(0)`) and closing the probe socket again
 * before resolving, so that a real peer (PostgreSQL, kube-apiserver, …) can bind it next. That leaves
 * a short window in which another process may grab the same port: callers that start a server on it
 * should treat "address already in use" as retryable and ask for a new port.
 *
 * @param host - the loopback address the port will be bound on; tests only ever use loopback.
 */
export function getFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error(`could not read the port of a probe socket on ${host}`));
        return;
      }
      server.close((err) => (err ? reject(err) : resolve(address.port)));
    });
  });
}
