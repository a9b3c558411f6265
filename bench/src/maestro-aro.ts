/**
 * The Maestro ARO HCP workload shape (issue #9; anchors.md §1.1, Maestro's
 * `test/performance/README.md`, Test A) through the conductor's `maestro` route, for a
 * like-for-like comparison: 10 consumers × 600 resource bundles, per consumer 300 small bundles
 * (one ManagedCluster-like manifest, spec ≈ 0.75 KB; Maestro's row 3,127 B with its status) and
 * 300 large ones (two ManifestWork manifests, spec ≈ 30.8 KB; Maestro's row 49,899 B with status).
 * The padding is random base64, so PostgreSQL's TOAST compression cannot shrink it below real
 * manifests' size.
 *
 * Each run starts fresh: a harness PostgreSQL server and database, Maestro's schema, 10
 * `consumers` rows, the conductor in this process (Broker + MaestroWorkBackend for manifestbundles
 * + SpecDelivery + the app's `startGrpcServer`, composed as bench/src/maestro-delivery.ts composes
 * it; nothing is imported from it), and one agentsim process (sdk-go v1.3) with the 10 clusters,
 * auto-status on (Applied/Available, a small status, not Maestro's 18.8 KB one). A writer in a
 * worker thread (own postgres.js client and event loop) creates the 6,000 resources as Maestro's
 * `ResourceService.Create` does — three autocommits: `resources` row, `events` row, `pg_notify` —
 * with `--concurrency` (default 16) in flight and no pacing (as fast as it goes), or paced at
 * `--rate n` writes/s (Maestro's client reached 54/s average, 93/s max). Measured per run:
 *
 * - creation velocity (resources/s, first write start → last `pg_notify` returned);
 * - write start → agent receipt (`work-added`) p50 / p99 / max and the time until all 6,000 were
 *   received; status updates committed (`StatusUpdate` rows) and their rate;
 * - listing one consumer's 600 rows (the conductor's `list()`, i.e. the resync answer, 3 times)
 *   — Maestro's "list one consumer" is 3,279 ms via its REST API;
 * - a fresh agent resync of one consumer: `stop-cluster` + `start-cluster` (empty store) → all 600
 *   received again;
 * - the `resources` table size (`pg_total_relation_size`) — Maestro's is 65 MB at 6,000 rows.
 *
 *   pnpm bench:maestro-aro [-- --runs 3 --concurrency 16 --rate 0]
 *
 * One JSON line per run, then a Markdown summary (min / median / max over runs) and the machine
 * facts. A measurement, not a test: bounded (settle timeout), loopback only.
 *
 * @packageDocumentation
 */
import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import postgres, { type Sql } from "postgres";

const SOURCE_CLIENT = "mw-client-example";
const MB_TYPE = "io.open-cluster-management.works.v1alpha1.manifestbundles";
const CONSUMERS = 10;
const PER_CONSUMER = 600;
const clusterName = (i: number): string => `aro-${String(i).padStart(2, "0")}`;
const nowMs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Spec of a bundle: small (ManagedCluster-like, ≈ 0.75 KB) or large (two ManifestWorks, ≈ 30.8 KB). */
function bundle(i: number, large: boolean): Record<string, unknown> {
  if (!large) {
    return {
      manifests: [{
        apiVersion: "cluster.open-cluster-management.io/v1", kind: "ManagedCluster",
        metadata: { name: `mc-${i}`, labels: { "cloud": "Azure", "vendor": "OpenShift", "bench/index": String(i) } },
        spec: { hubAcceptsClient: true, leaseDurationSeconds: 60, managedClusterClientConfigs: [{ url: "https://api.example.com:6443", caBundle: randomBytes(315).toString("base64") }] },
      }],
      deleteOption: { propagationPolicy: "Foreground" },
    };
  }
  const mw = (k: number): Record<string, unknown> => ({
    apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork",
    metadata: { name: `mw-${i}-${k}`, namespace: "local-cluster" },
    spec: { workload: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${i}-${k}`, namespace: "default" }, data: { blob: randomBytes(11_250).toString("base64") } }] } },
  });
  return { manifests: [mw(0), mw(1)], deleteOption: { propagationPolicy: "Foreground" } };
}

function payload(id: string, cluster: string, i: number, large: boolean): Record<string, unknown> {
  return {
    specversion: "1.0", id: randomUUID(), source: SOURCE_CLIENT, type: `${MB_TYPE}.spec.create_request`, time: new Date().toISOString(),
    datacontenttype: "application/json", resourceid: id, resourceversion: 0, clustername: cluster,
    metadata: { uid: id, name: id, namespace: cluster, labels: {}, resourceVersion: "0" }, logtracing: "{}", originalsource: "",
    data: bundle(i, large),
  };
}

interface WriterJob { url: string; concurrency: number; rate: number; items: Array<{ id: string; cluster: string; i: number; large: boolean }> }

/** The writer (worker thread): three autocommits per resource, `concurrency` in flight; posts per-resource start times. */
async function writer(job: WriterJob): Promise<void> {
  const sql: Sql = postgres(job.url, { max: job.concurrency, onnotice: () => {} });
  const starts: Array<[string, number]> = [];
  let next = 0;
  const t0 = nowMs();
  await Promise.all(Array.from({ length: job.concurrency }, async () => {
    while (next < job.items.length) {
      const k = next++;
      const it = job.items[k]!;
      if (job.rate > 0) {
        const due = t0 + (k * 1000) / job.rate;
        if (due > nowMs()) await sleep(due - nowMs());
      }
      starts.push([it.id, nowMs()]);
      await sql`insert into resources (id, created_at, updated_at, deleted_at, version, source, consumer_name, type, payload, status, name)
        values (${it.id}, now(), now(), null, 1, ${SOURCE_CLIENT}, ${it.cluster}, '', ${sql.json(payload(it.id, it.cluster, it.i, it.large) as never)}, 'null'::jsonb, ${it.id})`;
      const eventId = randomUUID();
      await sql`insert into events (id, created_at, updated_at, deleted_at, source, source_id, event_type, reconciled_date)
        values (${eventId}, now(), now(), null, 'Resources', ${it.id}, 'Create', null)`;
      await sql`select pg_notify('events', ${eventId})`;
    }
  }));
  const t1 = nowMs();
  await sql.end({ timeout: 5 });
  parentPort!.postMessage({ starts, writePhaseMs: t1 - t0 });
}

if (!isMainThread) {
  await writer(workerData as WriterJob);
} else {
  await main();
}

async function main(): Promise<void> {
  const [{ startGrpcServer, defaultConfig }, { MaestroWorkBackend, SpecDelivery, ensureSchema }, { Broker }, harness] = await Promise.all([
    import("@ocm-conductor/conductor"), import("@ocm-conductor/db-service"), import("@ocm-conductor/router"), import("@ocm-conductor/test-harness"),
  ]);
  type Logger = import("@ocm-conductor/router").Logger;
  const { values: args } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== "--"), // pnpm may pass the "--" through
    options: {
      runs: { type: "string", default: "3" },
      concurrency: { type: "string", default: "16" },
      rate: { type: "string", default: "0" },
      "settle-timeout": { type: "string", default: "120000" },
    },
  });
  const RUNS = Number(args.runs);
  const CONC = Number(args.concurrency);
  const RATE = Number(args.rate);
  const SETTLE = Number(args["settle-timeout"]);
  const TOTAL = CONSUMERS * PER_CONSUMER;
  const pct = (xs: number[], p: number): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
  };
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  const parseAgentTime = (t: string): number => {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(t)!;
    return Date.parse(`${m[1]}Z`) + Number((m[2] ?? "").padEnd(9, "0").slice(0, 6)) / 1000;
  };
  const cpuSeconds = (pid: number | undefined): number => {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
      return (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      return NaN;
    }
  };

  async function run(n: number): Promise<Record<string, unknown>> {
    const teardown: Array<() => Promise<unknown>> = [];
    try {
      const pg = await harness.startPostgres();
      teardown.push(() => pg.stop());
      const url = await harness.createDatabase(pg, "maestro");
      const sql = postgres(url, { max: 2, onnotice: () => {} });
      teardown.push(() => sql.end({ timeout: 5 }));
      await ensureSchema(sql);
      const clusters = Array.from({ length: CONSUMERS }, (_, i) => clusterName(i));
      for (const c of clusters) await sql`insert into consumers (id, created_at, updated_at, deleted_at, name, labels) values (${randomUUID()}, now(), now(), null, ${c}, null)`;

      let warnings = 0;
      const logger: Logger = {
        debug() {},
        info() {},
        warn: (m, f) => void (warnings++ < 5 && console.error(`conductor warn: ${m} ${JSON.stringify(f ?? {})}`)),
        error: (m, f) => void (warnings++ < 5 && console.error(`conductor error: ${m} ${JSON.stringify(f ?? {})}`)),
      };
      const conductorSql = postgres(url, { max: 10, onnotice: () => {} });
      teardown.push(() => conductorSql.end({ timeout: 5 }));
      const broker = new Broker({ logger });
      const backend = new MaestroWorkBackend({ sql: conductorSql, logger });
      broker.registerBackend(MB_TYPE, backend);
      const delivery = new SpecDelivery({ sql: conductorSql, logger, sink: broker.sink });
      await delivery.start();
      teardown.push(() => delivery.stop());
      const server = await startGrpcServer({ config: { ...defaultConfig().grpc, host: "127.0.0.1", port: 0 }, broker });
      teardown.push(() => server.close(1000));
      const agents = await harness.startAgentSim({ version: "v1.3", server: `127.0.0.1:${server.port}`, clusters, duration: `${Math.ceil(SETTLE / 1000) + 240}s` });
      teardown.push(() => agents.stop(10_000));
      const t0s = nowMs();
      while (broker.subscribedClusters().length < CONSUMERS && nowMs() - t0s < 30_000) await sleep(50);
      await sleep(1_000);

      // Round-robin over consumers; small and large alternate.
      const items = Array.from({ length: TOTAL }, (_, i) => ({ id: randomUUID(), cluster: clusterName(i % CONSUMERS), i, large: Math.floor(i / CONSUMERS) % 2 === 1 }));
      const cpuNode0 = process.cpuUsage();
      const cpuAgent0 = cpuSeconds(agents.pid);
      const tWrite = nowMs();
      const worker = new Worker(new URL(import.meta.url), { workerData: { url, concurrency: CONC, rate: RATE, items } satisfies WriterJob });
      const written = await new Promise<{ starts: Array<[string, number]>; writePhaseMs: number }>((resolve, reject) => {
        worker.once("message", resolve);
        worker.once("error", reject);
      });
      const start = new Map(written.starts);
      const received = new Map<string, number>();
      let scanned = 0;
      const scan = (): void => {
        for (; scanned < agents.events.length; scanned++) {
          const e = agents.events[scanned]!;
          if (e.event === "work-added" && typeof e.uid === "string" && start.has(e.uid) && !received.has(e.uid)) received.set(e.uid, parseAgentTime(e.t));
        }
      };
      let statusRows = 0;
      while (nowMs() - tWrite < SETTLE) {
        scan();
        if (received.size >= TOTAL) {
          const [row] = await sql<Array<{ n: number }>>`select count(distinct resource_id)::int as n from status_events where status_event_type = 'StatusUpdate'`;
          statusRows = row?.n ?? 0;
          if (statusRows >= TOTAL) break;
        }
        await sleep(200);
      }
      const [span] = await sql<Array<{ rows: number; ms: number }>>`
        select count(*)::int as rows, (extract(epoch from max(created_at) - min(created_at)) * 1000)::float8 as ms
        from status_events where status_event_type = 'StatusUpdate'`;
      const cpuNode = process.cpuUsage(cpuNode0);
      const cpuAgent = cpuSeconds(agents.pid) - cpuAgent0;
      const lat = [...received].map(([id, t]) => t - start.get(id)!);
      const allReceivedMs = Math.max(...received.values()) - tWrite;

      // List one consumer (600 rows) as the resync answer, 3 times.
      const listMs: number[] = [];
      for (let k = 0; k < 3; k++) {
        const t = nowMs();
        const evs = await backend.list({ clusterName: clusters[0]! } as never);
        listMs.push(r1(nowMs() - t));
        if ((evs as unknown[]).length !== PER_CONSUMER) console.error(`list returned ${(evs as unknown[]).length}`);
      }
      // Fresh agent resync of one consumer.
      const c0 = clusters[1]!;
      await agents.command({ cmd: "stop-cluster", cluster: c0 });
      const mark = agents.events.length;
      const tResync = nowMs();
      await agents.command({ cmd: "start-cluster", cluster: c0 });
      const got = new Set<string>();
      let tLast = NaN;
      for (let i = mark; nowMs() - tResync < 60_000 && got.size < PER_CONSUMER; ) {
        for (; i < agents.events.length; i++) {
          const e = agents.events[i]!;
          if (e.event === "work-added" && e.cluster === c0 && typeof e.uid === "string" && !got.has(e.uid)) {
            got.add(e.uid);
            tLast = parseAgentTime(e.t);
          }
        }
        if (got.size < PER_CONSUMER) await sleep(20);
      }
      const [size] = await sql<Array<{ bytes: string; avg: number }>>`select pg_total_relation_size('resources')::text as bytes, avg(pg_column_size(payload))::float8 as avg from resources`;
      return {
        run: n,
        writeRate: r1(TOTAL / (written.writePhaseMs / 1000)),
        writePhaseMs: r1(written.writePhaseMs),
        received: received.size,
        receiptMs: { p50: r1(pct(lat, 50)), p99: r1(pct(lat, 99)), max: r1(Math.max(...lat)) },
        allReceivedMs: r1(allReceivedMs),
        statusResources: statusRows,
        statusRows: span?.rows ?? 0,
        statusPerSecond: r1(((span?.rows ?? 0) / (span?.ms ?? NaN)) * 1000),
        listOneConsumerMs: listMs,
        resyncOneConsumerMs: r1(tLast - tResync),
        resyncReceived: got.size,
        tableMB: r1(Number(size?.bytes ?? NaN) / 2 ** 20),
        avgPayloadBytes: Math.round(size?.avg ?? NaN),
        cpuSeconds: { node: r1((cpuNode.user + cpuNode.system) / 1e6), agentsim: r1(cpuAgent) },
        warnings,
        load: loadavg().map((x) => Math.round(x * 100) / 100),
      };
    } finally {
      while (teardown.length > 0) await teardown.pop()!().catch((err: unknown) => console.error(`teardown: ${String(err)}`));
    }
  }

  const results: Array<Record<string, any>> = [];
  for (let i = 1; i <= RUNS; i++) {
    const r = await run(i);
    console.log(JSON.stringify(r));
    results.push(r);
  }
  const sp = (f: (r: Record<string, any>) => number): string => {
    const s = results.map(f).sort((a, b) => a - b);
    return `${s[0]} / ${s[Math.floor((s.length - 1) / 2)]} / ${s[s.length - 1]}`;
  };
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    // not a checkout
  }
  console.log(`\n| ARO shape: 10 consumers × 600 bundles (300 small + 300 large), ${CONC} writes in flight, ${RATE > 0 ? `paced at ${RATE}/s` : "unpaced"}, ${RUNS} runs | min / median / max | Maestro (ARO HCP, Event Grid) |`);
  console.log("|---|---|---|");
  console.log(`| creation velocity, resources/s | ${sp((r) => r.writeRate)} | avg 54, max 93 |`);
  console.log(`| write start → agent receipt p50 ms | ${sp((r) => r.receiptMs.p50)} | — |`);
  console.log(`| write start → agent receipt p99 ms | ${sp((r) => r.receiptMs.p99)} | — |`);
  console.log(`| first write → all 6,000 received ms | ${sp((r) => r.allReceivedMs)} | — |`);
  console.log(`| status updates committed per s (StatusUpdate rows, first→last) | ${sp((r) => r.statusPerSecond)} | avg 2, max 15 |`);
  console.log(`| list one consumer (600 rows, conductor list()) ms | ${sp((r) => r.listOneConsumerMs[1])} (2nd of 3 calls) | 3,279 (REST list) |`);
  console.log(`| fresh agent resync of one consumer (600) ms | ${sp((r) => r.resyncOneConsumerMs)} | — |`);
  console.log(`| resources table size MB | ${sp((r) => r.tableMB)} | 65 |`);
  console.log(`| CPU s node (conductor + writer thread) / agentsim | ${sp((r) => r.cpuSeconds.node)} / ${sp((r) => r.cpuSeconds.agentsim)} | — |`);
  console.log(`| load average at run end | ${results.map((r) => r.load.join(" ")).join("; ")} | |`);
  console.log(`\n${new Date().toISOString()}, commit ${commit}, ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${r1(totalmem() / 2 ** 30)} GiB, Node ${process.version}`);
  process.exit(0);
}
