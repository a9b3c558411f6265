/**
 * S3: fuzzed Publish input against the real binary (`--mode all`: PostgreSQL + kube-apiserver).
 * `DRILL_S3_EVENTS` events (default 10,000 in CI; the documented command runs 100,000) from a seeded generator (`DRILL_S3_SEED`, default
 * 20261207; src/fuzz.ts) are published over two connect-node clients, 64 calls in flight. Checks:
 * the process stays up and ready, every answer is OK or a documented refusal code, the database is
 * unchanged (row count + md5 of every row of resources, status_events, events, consumers), the hub
 * objects are unchanged (uid → resourceVersion of ManifestWorks, ManagedClusters, CSRs, addons,
 * and leases / events in the drill's namespaces), and a normal spec event still gets through.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { eventually } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { ConductorChild } from "@ocm-conductor/test-harness";
import { FuzzGen } from "./fuzz.js";
import { Subscriber, ceClient } from "./grpc.js";
import { allSpec, dump, log, prepareCluster, startAll, startWorld, stopWorld, type World } from "./world.js";

let w: World;
let conductor: ConductorChild;
const N = Number(process.env.DRILL_S3_EVENTS ?? 10_000);
/** Every n-th event over 4 MiB; 0 in CI: two oversize messages on one connection kill it (README, finding 1). */
const HUGE_EVERY = Number(process.env.DRILL_S3_HUGE_EVERY ?? 0);
const SEED = Number(process.env.DRILL_S3_SEED ?? 20261207);
const CLUSTERS = ["drill-s3-c1", "drill-s3-c2"];
/** Answers a refused Publish may carry (protocol.md §5.5; apps/conductor/README.md: message size). */
const DOCUMENTED = new Set([Code.InvalidArgument, Code.FailedPrecondition, Code.ResourceExhausted]);

beforeAll(async () => {
  w = await startWorld("fuzz");
  conductor = await startAll(w, await allSpec(w, "all"));
}, 180_000);
afterAll(async () => {
  await stopWorld(w);
}, 120_000);
beforeEach((ctx) => {
  ctx.onTestFailed(() => dump(w));
});

async function dbSnapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of ["resources", "status_events", "events", "consumers"]) {
    const [row] = await w.sql.unsafe(`select count(*) as n, coalesce(md5(string_agg(row_to_json(t)::text, '|' order by t.id)), '') as sum from ${table} t`);
    out[table] = `${String(row!["n"])}:${String(row!["sum"])}`;
  }
  return out;
}

async function hubSnapshot(): Promise<Record<string, string>> {
  const kinds: Array<[string, string, string]> = [
    ["work.open-cluster-management.io", "v1", "manifestworks"],
    ["cluster.open-cluster-management.io", "v1", "managedclusters"],
    ["certificates.k8s.io", "v1", "certificatesigningrequests"],
    ["addon.open-cluster-management.io", "v1alpha1", "managedclusteraddons"],
  ];
  const out: Record<string, string> = {};
  const add = (key: string, items: Array<{ metadata: { uid: string; resourceVersion: string } }>) => {
    out[key] = items.map((i) => `${i.metadata.uid}@${i.metadata.resourceVersion}`).sort().join(",");
  };
  for (const [group, version, plural] of kinds) {
    add(plural, ((await w.hub.custom.listClusterCustomObject({ group, version, plural })) as { items: never[] }).items);
  }
  for (const ns of CLUSTERS) {
    add(`${ns}/leases`, ((await w.hub.custom.listNamespacedCustomObject({ group: "coordination.k8s.io", version: "v1", plural: "leases", namespace: ns })) as { items: never[] }).items);
    add(`${ns}/events`, ((await w.hub.custom.listNamespacedCustomObject({ group: "events.k8s.io", version: "v1", plural: "events", namespace: ns })) as { items: never[] }).items);
  }
  return out;
}

it(`S3: ${N} fuzzed Publish events (seed ${SEED}) change nothing and get only documented codes`, async () => {
  const resourceIds: string[] = [];
  const workUids: string[] = [];
  for (const c of CLUSTERS) {
    await prepareCluster(w, c);
    resourceIds.push(await w.maestro.create(c));
    workUids.push((await w.hub.createWork(c, "s3-work")).metadata.uid);
  }
  await eventually(async () => (await w.maestro.unreconciled(CLUSTERS[0]!)) + (await w.maestro.unreconciled(CLUSTERS[1]!)) === 0, 30_000, "the seed resources' events reconciled", 200);
  const dbBefore = await dbSnapshot();
  const hubBefore = await hubSnapshot();

  const gen = new FuzzGen(SEED, { clusters: CLUSTERS, resourceIds, workUids }, HUGE_EVERY);
  const clients = [ceClient(conductor.grpcUrl), ceClient(conductor.grpcUrl)];
  const codes = new Map<string, number>();
  const odd: string[] = [];
  let next = 0;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 64 }, async (_, worker) => {
    while (next < N) {
      const n = next++;
      const { event, defect } = gen.next(n);
      let code: Code | 0 = 0;
      try {
        await clients[worker % 2]!.publish({ event }, { timeoutMs: 30_000 });
      } catch (err) {
        code = ConnectError.from(err).code;
      }
      const name = code === 0 ? "OK" : Code[code];
      codes.set(name, (codes.get(name) ?? 0) + 1);
      if (code !== 0 && !DOCUMENTED.has(code) && odd.length < 20) odd.push(`#${n} (${defect}, type ${JSON.stringify(event.type.slice(0, 80))}): ${name}`);
      if (n % 20_000 === 0 && n > 0) log(`S3: ${n} sent, ${Date.now() - t0} ms`);
    }
  }));
  const ms = Date.now() - t0;
  log(`S3: ${N} events in ${ms} ms (${Math.round(N / (ms / 1000))}/s); codes ${JSON.stringify(Object.fromEntries(codes))}; defects ${JSON.stringify(Object.fromEntries(gen.defects))}`);

  expect(conductor.running, "the conductor process is alive").toBe(true);
  expect((await conductor.readyz()).status).toBe(200);
  expect(odd, "answers outside the documented refusal codes").toEqual([]);
  expect(await dbSnapshot(), "database rows unchanged").toEqual(dbBefore);
  expect(await hubSnapshot(), "hub objects unchanged").toEqual(hubBefore);

  // Still serving: a new resource reaches a subscriber.
  const sub = new Subscriber(ceClient(conductor.grpcUrl), CLUSTERS[0]!);
  await eventually(async () => (await conductor.subscribers()).some((s) => s.clusterName === CLUSTERS[0]), 10_000, "subscriber", 100);
  const id = await w.maestro.create(CLUSTERS[0]!);
  await eventually(() => sub.received.some((r) => r.event.extensions["resourceid"] === id), 10_000, "a new resource after the fuzzing", 100);
  sub.close();
}, 290_000);
