import { defineConfig } from "vitest/config";

// Needs the Go peers (kube-apiserver + etcd, helm + kubectl); scripts/test.mjs sets
// OCM_SKIP_PEER_SUITES when no Go toolchain exists to build them (and fails the run in CI instead).
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    exclude: process.env.OCM_SKIP_PEER_SUITES === "1" ? ["src/**"] : [],
    passWithNoTests: process.env.OCM_SKIP_PEER_SUITES === "1",
    testTimeout: 120_000,
    hookTimeout: 300_000,
    fileParallelism: false,
  },
});
