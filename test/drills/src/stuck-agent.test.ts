/**
 * R6: one agent that never reads. A raw HTTP/2 Subscribe for cluster `drill-stuck` that is never
 * read (its HTTP/2 window fills, then its conductor queue) while reading subscribers of two other
 * clusters receive 1,000 Maestro spec events. The reading ones get every event (write-to-receive
 * p99 recorded with and without the stuck stream), the stuck stream is ended and gone from
 * /debug/subscribers. Queue capacity 256 (`broker_config.queue_capacity`) so the stuck queue
 * overflows after a few MB instead of 1,024 bulky events.
 */
import { randomUUID } from "node:crypto";
import { eventually } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { ConductorChild } from "@ocm-conductor/test-harness";
import { Subscriber, ceClient, openStuckStream } from "./grpc.js";
import { allSpec, dump, log, percentile, startAll, startWorld, stopWorld, waitSubscribed, type World } from "./world.js";

let w: World;
let conductor: ConductorChild;
const HEALTHY = ["drill-r6-h0", "drill-r6-h1"];
const EVENTS = 1_000;

beforeAll(async () => {
  w = await startWorld("stuck");
  conductor = await startAll(w, await allSpec(w, "all", "broker_config:\n  queue_capacity: 256\n"));
  for (const c of [...HEALTHY, "drill-stuck"]) await w.maestro.ensureConsumer(c);
}, 180_000);
afterAll(async () => {
  await stopWorld(w);
}, 120_000);
beforeEach((ctx) => {
  ctx.onTestFailed(() => dump(w));
});

/** Writes `EVENTS` creates round-robin over the healthy clusters (8 writers), plus `stuckEvents` 16 KiB ones for the stuck cluster; returns write start times. */
async function write(stuckEvents: number): Promise<Map<string, number>> {
  const jobs: Array<[string, number]> = [];
  for (let i = 0; i < EVENTS; i++) {
    jobs.push([HEALTHY[i % HEALTHY.length]!, 0]);
    if (i < stuckEvents) jobs.push(["drill-stuck", 16_384]);
  }
  const started = new Map<string, number>();
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < jobs.length) {
      const [cluster, pad] = jobs[next++]!;
      const id = randomUUID();
      if (cluster !== "drill-stuck") started.set(id, Date.now());
      await w.maestro.create(cluster, id, pad);
    }
  }));
  return started;
}

async function phase(withStuck: boolean): Promise<{ p50: number; p99: number; max: number; ms: number; stuck?: { rstCode: number; grpcStatus: string | undefined } }> {
  const client = ceClient(conductor.grpcUrl);
  const subs = HEALTHY.map((c) => new Subscriber(client, c));
  const stuck = withStuck ? openStuckStream(conductor.grpcUrl, "drill-stuck") : undefined;
  try {
    await waitSubscribed(conductor, withStuck ? [...HEALTHY, "drill-stuck"] : HEALTHY);
    const t0 = Date.now();
    const started = await write(withStuck ? 400 : 0);
    const arrived = new Map<string, number>();
    await eventually(() => {
      for (const s of subs) for (const r of s.received) {
        const id = r.event.extensions["resourceid"];
        if (typeof id === "string" && started.has(id) && !arrived.has(id)) arrived.set(id, r.at);
      }
      return arrived.size === started.size;
    }, 60_000, `all ${started.size} events on the reading subscribers (${arrived.size} so far)`, 100);
    const ms = Date.now() - t0;
    const lat = [...arrived].map(([id, at]) => at - started.get(id)!);
    const res = { p50: percentile(lat, 50), p99: percentile(lat, 99), max: Math.max(...lat), ms };
    if (!stuck) return res;
    const end = await Promise.race([stuck.ended, new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000))]);
    expect(end, "the stuck stream is ended by the conductor").toBeDefined();
    await eventually(async () => !(await conductor.subscribers()).some((s) => s.clusterName === "drill-stuck"), 10_000, "drill-stuck gone from /debug/subscribers", 100);
    const live = (await conductor.subscribers()).map((s) => s.clusterName);
    expect(live).toEqual(expect.arrayContaining(HEALTHY));
    return { ...res, stuck: { rstCode: end!.rstCode, grpcStatus: end!.grpcStatus } };
  } finally {
    for (const s of subs) s.close();
    stuck?.session.destroy();
  }
}

it("R6: reading subscribers get all 1,000 events while one never reads; the stuck stream is ended", async () => {
  const base = await phase(false);
  log(`R6 baseline (no stuck stream): ${EVENTS} events in ${base.ms} ms, latency p50 ${base.p50} ms, p99 ${base.p99} ms, max ${base.max} ms`);
  const stuck = await phase(true);
  log(`R6 with a stuck stream (+400 × 16 KiB events for it): ${EVENTS} events in ${stuck.ms} ms, latency p50 ${stuck.p50} ms, p99 ${stuck.p99} ms, max ${stuck.max} ms; stuck stream ended with ${JSON.stringify(stuck.stuck)}`);
  // ENHANCE_YOUR_CALM (11) when not even trailers can reach it, else Unavailable (14) trailers.
  expect(stuck.stuck!.rstCode === 11 || stuck.stuck!.grpcStatus === "14").toBe(true);
}, 180_000);
