/**
 * Real peers for the conductor's tests: a PostgreSQL server, a kube-apiserver + etcd control plane
 * and the sdk-go agent simulator; plus the real `conductor` binary as a child process and a small
 * hub client, shared by the e2e suite and the fault drills. Each harness starts real processes on loopback and ends them by
 * PID or process group.
 *
 * @packageDocumentation
 */
export * from "./agentsim.js";
export * from "./conductor-child.js";
export * from "./control-plane.js";
export { eventually } from "./eventually.js";
export * from "./hub-client.js";
export * from "./postgres.js";
