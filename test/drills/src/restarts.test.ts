/**
 * R4 conductor kill -9 mid-traffic (R1 and R3 are in restarts.extended.test.ts), run
 * against one `conductor serve --mode all` with both sources and sdk-go v1.3 and v1.1.0 agents.
 * Each drill ends in the convergence check (world.ts `converge`): every agent's cache equals the
 * hub's ManifestWorks plus the live Maestro resources of its cluster, every status landed, no spec
 * event unreconciled.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AgentSimHandle } from "@ocm-conductor/test-harness";
import type { ConductorChild } from "@ocm-conductor/test-harness";
import { Traffic } from "./traffic.js";
import { agentErrors, allSpec, converge, dump, log, prepareCluster, sleep, startAgents, startAll, startWorld, stopWorld, waitSubscribed, type World } from "./world.js";

let w: World;
let conductor: ConductorChild;
const pairs: Array<[AgentSimHandle, string]> = [];
const CLUSTERS = ["drill-r4-a", "drill-r4-b"];

beforeAll(async () => {
  const t0 = Date.now();
  w = await startWorld("kill9");
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

describe("conductor kill -9", () => {
  it("R4: conductor kill -9 mid-traffic (both sources) and restarted on the same ports; agents reconnect, resync and converge", async () => {
    const t0 = Date.now();
    const o = { clusters: CLUSTERS, prefix: "r4" };
    await Traffic.burst(w, o, 10);
    const during = new Traffic(w, { ...o, pauseMs: 30 });
    await sleep(1_000);
    await conductor.kill9();
    log("R4: conductor killed");
    await sleep(2_000);
    const restarted = await startAll(w, conductor.spec);
    conductor = restarted;
    log("R4: conductor ready again");
    await waitSubscribed(restarted, CLUSTERS);
    await sleep(1_000);
    await during.stop();
    await Traffic.burst(w, o, 10);
    const ms = await converge(w, pairs, 90_000);
    log(`R4: ${JSON.stringify(during.created)} created during, converged ${ms} ms after the last write; drill ${Date.now() - t0} ms`);
    expect(agentErrors(w)).toEqual([]);
  }, 180_000);
});
