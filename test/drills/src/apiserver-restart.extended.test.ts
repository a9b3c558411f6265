/**
 * R3 kube-apiserver restart mid-traffic (kube route; test/interop/src/kube-restart.test.ts does it
 * in-process, this is the binary),
 * against one `conductor serve --mode all` with both sources and sdk-go v1.3 and v1.1.0 agents.
 * Each drill ends in the convergence check (world.ts `converge`): every agent's cache equals the
 * hub's ManifestWorks plus the live Maestro resources of its cluster, every status landed, no spec
 * event unreconciled.
 */
import { describe, expect, it } from "vitest";
import { Traffic } from "./traffic.js";
import { agentErrors, converge, log, sleep, useTwoAgentDrill } from "./world.js";

const CLUSTERS: [string, string] = ["drill-r3-a", "drill-r3-b"];
const drill = useTwoAgentDrill("apiserver", CLUSTERS);

describe("kube-apiserver restart", () => {
  it("R3: kube-apiserver restarted (3 s down) mid-traffic; watches resume or relist, every work arrives and gets its status", async () => {
    const { w, pairs } = drill;
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
