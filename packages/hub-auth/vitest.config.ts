import { defineConfig } from "vitest/config";

// The acceptance suites run against a real kube-apiserver + etcd (and sdk-go agents); scripts/test.mjs
// sets OCM_SKIP_PEER_SUITES when no Go toolchain exists to build them (and fails the run in CI instead).
const peerSuites = ["src/**/*.kube.test.ts"];

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    exclude: process.env.OCM_SKIP_PEER_SUITES === "1" ? peerSuites : [],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
