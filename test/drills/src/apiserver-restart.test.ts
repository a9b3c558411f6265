/**
 * R3 kube-apiserver restart mid-traffic (kube route; test/interop/src/kube-restart.test.ts does it
 * in-process, this is the binary),
 * against one `conductor serve --mode all` with both sources and sdk-go v1.3 and v1.1.0 agents.
 * Each drill ends in the convergence check (world.ts `converge`): every agent's cache equals the
 * hub's ManifestWorks plus the live Maestro resources of its cluster, every status landed, no spec
 * event unreconciled.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AgentSimHandle } from "@ocm-conductor/test-harness";
import type { ConductorChild } from "@ocm-conductor/test-harness";
import { Traffic } from "./traffic.js";
import { agentErrors, allSpec, converge, dump, log, prepareCluster, sleep, startAgents, startAll, startWorld, stopWorld, type World } from "./world.js";

let w: World;
let conductor: ConductorChild;
const pairs: Array<[AgentSimHandle, string]> = [];
const CLUSTERS = ["drill-r3-a", "drill-r3-b"];

beforeAll(async () => {
  const t0 = Date.now();
  w = await startWorld("apiserver");
  conductor = await startAll(w, await allSpec(w, "all"));
  for (const c of CLUSTERS) await prepareCluster(w, c);
  const a = await startAgents(w, "v1.3", [CLUSTERS[0]!], conductor.spec.grpcPort, conductor);
  const b = await startAgents(w, "v1.1.0", [CLUSTERS[1]!], conductor.spec.grpcPort, conductor);
  pairs.push([a, CLUSTERS[0]!], [b, CLUSTERS[1]!]);
  log(`restarts: world ready in ${Date.now() - t0} ms`);
}, 180_000);

afterAll(async () => {
  await stopWorld(w);
}, 120_000);

beforeEach((ctx) => {
  ctx.onTestFailed(() => dump(w));
});

describe("kube-apiserver restart", () => {
  it("R3: kube-apiserver restarted (3 s down) mid-traffic; watches resume or relist, every work arrives and gets its status", async () => {
    const t0 = Date.now();
    const o = { clusters: CLUSTERS, prefix: "r3", maestro: false };
    await Traffic.burst(w, o, 10);
    const during = new Traffic(w, { ...o, pauseMs: 30 });
    await sleep(1_000);
    const restart = await w.cp.restartApiServer({ downMs: 3_000 });
    log(`R3: kube-apiserver restarted, outage ${restart.outageMs} ms`);
    await sleep(2_000);
    await during.stop();
    await Traffic.burst(w, o, 10);
    const ms = await converge(w, pairs, 90_000);
    log(`R3: ${during.created.kube} works created during, converged ${ms} ms after the last write; drill ${Date.now() - t0} ms`);
    expect(agentErrors(w)).toEqual([]);
  }, 180_000);

});
