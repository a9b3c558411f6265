/**
 * R4 conductor kill -9 mid-traffic, run
 * against one `conductor serve --mode all` with both sources and sdk-go v1.3 and v1.1.0 agents.
 * Each drill ends in the convergence check (world.ts `converge`): every agent's cache equals the
 * hub's ManifestWorks plus the live Maestro resources of its cluster, every status landed, no spec
 * event unreconciled.
 */
import { describe, expect, it } from "vitest";
import { Traffic } from "./traffic.js";
import { agentErrors, converge, log, sleep, startAll, useTwoAgentDrill, waitSubscribed } from "./world.js";

const CLUSTERS: [string, string] = ["drill-r4-a", "drill-r4-b"];
const drill = useTwoAgentDrill("kill9", CLUSTERS);

describe("conductor kill -9", () => {
  it("R4: conductor kill -9 mid-traffic (both sources) and restarted on the same ports; agents reconnect, resync and converge", async () => {
    const { w, pairs } = drill;
    let { conductor } = drill;
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
    drill.conductor = restarted;
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
