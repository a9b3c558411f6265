import { existsSync } from "node:fs";
import { ConnectionReusingKubeConfig } from "@ocm-conductor/work-service";
import { ConfigError } from "./config-values.js";

/** Where the hub's Kubernetes API credentials came from. */
export type KubeAccessOrigin = "--kubeconfig" | "KUBECONFIG" | "in-cluster";

/** The hub's Kubernetes API, as the conductor's own identity. */
export interface KubeAccess {
  kubeConfig: ConnectionReusingKubeConfig;
  origin: KubeAccessOrigin;
  /** The API server URL, for logs. */
  server: string;
}

const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/**
 * Finds the hub's Kubernetes API: `--kubeconfig`, else `KUBECONFIG`, else the in-cluster service
 * account (when running in a pod). `undefined` means no Kubernetes access: the conductor then runs
 * without the `kube` route and the registration services. `~/.kube/config` is deliberately not
 * read, so a server never picks up a developer's personal credentials by accident.
 *
 * The config reuses keep-alive connections (`ConnectionReusingKubeConfig`, bench/RESULTS.md).
 *
 * @throws ConfigError for a named kubeconfig that cannot be read or has no current cluster.
 */
export function resolveKubeAccess(flag: string | undefined, env: NodeJS.ProcessEnv): KubeAccess | undefined {
  const named: Array<[KubeAccessOrigin, string | undefined]> = [["--kubeconfig", flag], ["KUBECONFIG", env.KUBECONFIG]];
  for (const [origin, path] of named) {
    if (path === undefined || path === "") continue;
    const kubeConfig = new ConnectionReusingKubeConfig();
    try {
      kubeConfig.loadFromFile(path);
    } catch (err) {
      throw new ConfigError(`${origin}: cannot load ${path}: ${(err as Error).message}`);
    }
    const server = kubeConfig.getCurrentCluster()?.server;
    if (server === undefined) throw new ConfigError(`${origin}: ${path} has no current cluster`);
    return { kubeConfig, origin, server };
  }
  if (env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_HOST !== "" && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    const kubeConfig = new ConnectionReusingKubeConfig();
    kubeConfig.loadFromCluster();
    return { kubeConfig, origin: "in-cluster", server: kubeConfig.getCurrentCluster()?.server ?? "" };
  }
  return undefined;
}
