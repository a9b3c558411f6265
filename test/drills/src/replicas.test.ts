/**
 * R5: two conductor replicas (`--mode all`, the same PostgreSQL and kube-apiserver), agents split
 * across them behind TCP forwarders (a stand-in for the Service in front of the replicas: agentsim
 * takes one server address). Replica A is killed with -9 mid-traffic and its forwarder now points
 * at B, so A's agents reconnect — through the same address — to the survivor, resync and converge.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { AgentSimHandle } from "@ocm-conductor/test-harness";
import { Traffic } from "./traffic.js";
import { Proxy, agentErrors, allSpec, converge, dump, log, prepareCluster, sleep, startAgents, startAll, startWorld, stopWorld, waitSubscribed, type World } from "./world.js";

let w: World;

beforeAll(async () => {
  w = await startWorld("replicas");
}, 180_000);
afterAll(async () => {
  await stopWorld(w);
}, 120_000);
beforeEach((ctx) => {
  ctx.onTestFailed(() => dump(w));
});

it("R5: replica A killed -9 mid-traffic; its agents reconnect to replica B and every agent converges", async () => {
  const t0 = Date.now();
  const [a, b] = await Promise.all([allSpec(w, "replica-a"), allSpec(w, "replica-b")]);
  const ra = await startAll(w, a);
  const rb = await startAll(w, b);
  const toA = new Proxy(a.grpcPort);
  const toB = new Proxy(b.grpcPort);
  w.proxies.push(toA, toB);
  await Promise.all([toA.listen(), toB.listen()]);
  const onA = ["drill-r5-a1", "drill-r5-a2"];
  const onB = ["drill-r5-b1"];
  for (const c of [...onA, ...onB]) await prepareCluster(w, c);
  const agentA1 = await startAgents(w, "v1.3", [onA[0]!], toA.port, ra);
  const agentA2 = await startAgents(w, "v1.2.0", [onA[1]!], toA.port, ra);
  const agentB = await startAgents(w, "v1.3", onB, toB.port, rb);
  const pairs: Array<[AgentSimHandle, string]> = [[agentA1, onA[0]!], [agentA2, onA[1]!], [agentB, onB[0]!]];
  expect((await rb.subscribers()).map((s) => s.clusterName).filter((c) => onA.includes(c))).toEqual([]);

  const o = { clusters: [...onA, ...onB], prefix: "r5" };
  await Traffic.burst(w, o, 5);
  const during = new Traffic(w, { ...o, pauseMs: 30 });
  await sleep(1_000);
  toA.target = b.grpcPort; // new connections through A's address now reach B
  await ra.kill9();
  log("R5: replica A killed");
  await waitSubscribed(rb, [...onA, ...onB], 60_000);
  log("R5: A's agents are on replica B");
  await sleep(1_000);
  await during.stop();
  await Traffic.burst(w, o, 5);
  const ms = await converge(w, pairs, 90_000);
  log(`R5: ${JSON.stringify(during.created)} created during, converged ${ms} ms after the last write; drill ${Date.now() - t0} ms`);
  expect(agentErrors(w)).toEqual([]);
}, 240_000);
