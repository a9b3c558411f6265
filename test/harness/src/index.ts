/**
 * Real peers for the conductor's tests: a PostgreSQL server, a kube-apiserver + etcd control plane
 * and the sdk-go agent simulator. Each harness starts real processes on loopback and ends them by
 * PID or process group.
 *
 * @packageDocumentation
 */
export * from "./agentsim.js";
export * from "./control-plane.js";
export { eventually } from "./eventually.js";
export * from "./postgres.js";
