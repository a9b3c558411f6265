import { defineConfig } from "vitest/config";

// Every drill spawns the real conductor binary, kube-apiserver + etcd, PostgreSQL and sdk-go
// agents; scripts/test.mjs sets OCM_SKIP_PEER_SUITES when no Go toolchain exists to build the
// peers (and fails the run in CI instead). `*.extended.test.ts` (drills outside CI: too slow, or
// failing on a reported conductor bug) run only with DRILL_EXTENDED=1.
const skip = process.env.OCM_SKIP_PEER_SUITES === "1";
const extended = process.env.DRILL_EXTENDED === "1";
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    exclude: skip ? ["src/**"] : extended ? [] : ["src/**/*.extended.test.ts"],
    passWithNoTests: skip,
    testTimeout: 180_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
});
