/**
 * P4 (issue #9): resync time for one cluster holding many resources, `maestro` route, on loopback.
 *
 * Each run starts fresh: a harness PostgreSQL server and database, Maestro's schema
 * (`ensureSchema`), one `consumers` row (`cluster1`), then `--resources` (default 10,000)
 * `resources` rows for `cluster1` inserted in bulk with one SQL statement, shaped as Maestro stores
 * them (maestro-db.md §3; the same row and payload as bench/src/maestro-delivery.ts: version 1,
 * source `mw-client-example`, `payload` = the source's CloudEvent in JSON with a ManifestBundle of
 * one ConfigMap, `status` jsonb `null`). The resources are already delivered in Maestro's eyes, so
 * there are no unreconciled `events` rows (nothing is pushed live; everything reaches the agent
 * through the resync). Then the conductor in this process, composed as maestro-delivery composes
 * it (Broker + MaestroWorkBackend for manifestbundles + SpecDelivery + the app's
 * `startGrpcServer`), and one agentsim (sdk-go, default v1.3) with `cluster1` and an empty store:
 * it connects, subscribes and sends `spec.resync_request` with no versions, and the conductor
 * answers with every resource. Measured per run:
 *
 * - **agent start → all received**: just before agentsim is spawned → the last of the
 *   `--resources` distinct `work-added` lines (agentsim's `t`, same machine clock);
 * - **subscribed → all received**: the broker registered the cluster's stream (polled every 5 ms)
 *   → the last `work-added`;
 * - subscribed → the conductor's stream has sent every event (broker `streams()`: `sent` ≥ resources,
 *   nothing queued; handed to the gRPC transport, not necessarily read by the agent);
 * - agent start → first `work-added`, the conductor's `list()` duration (timed in process), and
 *   CPU seconds of this process and agentsim in the window.
 *
 * agentsim runs with `--auto-status=false` by default, so the agent does not publish 10,000
 * statuses during the resync (`--auto-status` turns them on: then the status write-back competes).
 *
 *   pnpm bench:resync-time [-- --runs 3 --resources 10000 --queue-capacity 1024 --auto-status]
 *
 * `--queue-capacity n` is the broker's per-stream queue (`broker_config.queue_capacity`, default
 * 1,024): the resync answer is queued at once, so a list longer than the queue ends the stream as
 * too slow (the agent reconnects and tries again until the settle timeout).
 *
 * It prints one JSON line per run, then a Markdown summary (min / median / max over runs) and
 * the machine facts. A measurement, not a test: bounded (settle timeout per run), loopback only.
 *
 * @packageDocumentation
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { parseArgs } from "node:util";
import * as ConductorApp from "@ocm-conductor/conductor";
import { MaestroWorkBackend, SpecDelivery, ensureSchema } from "@ocm-conductor/db-service";
import { DataTypes } from "@ocm-conductor/protocol";
import { Broker, type Logger } from "@ocm-conductor/router";
import { createDatabase, startAgentSim, startPostgres, type AgentSimHandle, type AgentSimVersion } from "@ocm-conductor/test-harness";
import postgres from "postgres";

const app = ConductorApp;

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"), // pnpm may pass the "--" through
  options: {
    runs: { type: "string", default: "3" },
    resources: { type: "string", default: "10000" },
    version: { type: "string", default: "v1.3" },
    "auto-status": { type: "boolean", default: false },
    "settle-timeout": { type: "string", default: "60000" },
    "queue-capacity": { type: "string", default: "1024" },
  },
});
const RUNS = Number(args.runs);
const RESOURCES = Number(args.resources);
const VERSION = args.version as AgentSimVersion;
const SETTLE_MS = Number(args["settle-timeout"]);
const QUEUE = Number(args["queue-capacity"]);
const CLUSTER = "cluster1";
const SOURCE_CLIENT = "mw-client-example";

const nowMs = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
function parseAgentTime(t: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(t);
  if (!m) throw new Error(`unexpected agentsim time ${t}`);
  return Date.parse(`${m[1]}Z`) + Number((m[2] ?? "").padEnd(9, "0").slice(0, 6)) / 1000;
}
function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}
const r1 = (x: number): number => Math.round(x * 10) / 10;

interface RunResult {
  run: number;
  resources: number;
  received: number;
  startToAllMs: number;
  subscribedToAllMs: number;
  startToSubscribedMs: number;
  startToFirstMs: number;
  subscribedToSentAllMs: number;
  listMs: number[];
  cpuSeconds: { node: number; agentsim: number };
  load1: number;
  settled: boolean;
  overflows: number;
}

async function run(n: number): Promise<RunResult> {
  const teardown: Array<() => Promise<unknown>> = [];
  try {
    const pg = await startPostgres();
    teardown.push(() => pg.stop());
    const url = await createDatabase(pg, "maestro");
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    teardown.push(() => sql.end({ timeout: 5 }));
    await ensureSchema(sql);
    await sql`insert into consumers (id, created_at, updated_at, deleted_at, name, labels) values (${randomUUID()}, now(), now(), null, ${CLUSTER}, null)`;
    // Bulk insert, one statement: rows as Maestro's ResourceService.Create leaves them (payload as in maestro-delivery.ts).
    await sql`
      insert into resources (id, created_at, updated_at, deleted_at, version, source, consumer_name, type, payload, status, name)
      select id, now(), now(), null, 1, ${SOURCE_CLIENT}, ${CLUSTER}, '',
        jsonb_build_object(
          'specversion', '1.0', 'id', gen_random_uuid()::text, 'source', ${SOURCE_CLIENT}::text,
          'type', ${`${DataTypes.manifestBundles}.spec.create_request`}::text, 'time', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
          'datacontenttype', 'application/json', 'resourceid', id, 'resourceversion', 0, 'clustername', ${CLUSTER}::text,
          'metadata', jsonb_build_object('uid', id, 'name', id, 'namespace', ${CLUSTER}::text, 'labels', '{}'::jsonb, 'resourceVersion', '0'),
          'logtracing', '{}', 'originalsource', '',
          'data', jsonb_build_object(
            'manifests', jsonb_build_array(jsonb_build_object('apiVersion', 'v1', 'kind', 'ConfigMap',
              'metadata', jsonb_build_object('name', 'cm-' || i, 'namespace', 'default'), 'data', jsonb_build_object('i', i::text))),
            'deleteOption', jsonb_build_object('propagationPolicy', 'Foreground'))),
        'null'::jsonb, id
      from (select i, gen_random_uuid()::text as id from generate_series(1, ${RESOURCES}::int) as i) as g`;
    await sql`analyze resources`;

    let warnings = 0;
    let overflows = 0;
    const logger: Logger = {
      debug() {},
      info() {},
      warn: (m, f) => void (m.includes("slow subscriber") && overflows++, warnings++ < 5 && console.error(`conductor warn: ${m} ${JSON.stringify(f ?? {})}`)),
      error: (m, f) => void (warnings++ < 5 && console.error(`conductor error: ${m} ${JSON.stringify(f ?? {})}`)),
    };
    const conductorSql = postgres(url, { max: 10, onnotice: () => {} });
    teardown.push(() => conductorSql.end({ timeout: 5 }));
    const broker = new Broker({ logger, queueCapacity: QUEUE });
    const backend = new MaestroWorkBackend({ sql: conductorSql, logger });
    const listMs: number[] = [];
    const list = backend.list.bind(backend);
    backend.list = async (o) => {
      const t0 = nowMs();
      try {
        return await list(o);
      } finally {
        listMs.push(r1(nowMs() - t0));
      }
    };
    broker.registerBackend(DataTypes.manifestBundles, backend);
    const delivery = new SpecDelivery({ sql: conductorSql, logger, sink: broker.sink });
    await delivery.start();
    teardown.push(() => delivery.stop());
    const server = await app.startGrpcServer({ config: { ...app.defaultConfig().grpc, host: "127.0.0.1", port: 0 }, broker });
    teardown.push(() => server.close(1000));
    await sleep(500);

    const cpu0 = process.cpuUsage();
    const tStart = nowMs();
    let tSubscribed = NaN;
    let tSentAll = NaN;
    let subscribedPoll = true;
    void (async () => {
      while (subscribedPoll && Number.isNaN(tSentAll)) {
        if (Number.isNaN(tSubscribed) && broker.subscribedClusters().includes(CLUSTER)) tSubscribed = nowMs();
        const st = broker.streams().find((x) => x.clusterName === CLUSTER);
        if (st !== undefined && st.sent >= RESOURCES && st.queued === 0) tSentAll = nowMs();
        await sleep(5);
      }
    })();
    const agents: AgentSimHandle = await startAgentSim({
      version: VERSION, server: `127.0.0.1:${server.port}`, clusters: [CLUSTER], duration: `${Math.ceil(SETTLE_MS / 1000) + 60}s`,
      extraArgs: [`--auto-status=${args["auto-status"] ? "true" : "false"}`],
    });
    teardown.push(() => agents.stop(10_000));
    const pid: number | undefined = agents.pid;
    const received = new Map<string, number>();
    let scanned = 0;
    const deadline = tStart + SETTLE_MS;
    while (received.size < RESOURCES && nowMs() < deadline) {
      for (; scanned < agents.events.length; scanned++) {
        const e = agents.events[scanned]!;
        if (e.event === "work-added" && typeof e.uid === "string" && !received.has(e.uid)) received.set(e.uid, parseAgentTime(e.t));
        if (e.event === "error" && warnings++ < 5) console.error(`agentsim error: ${JSON.stringify(e)}`);
      }
      if (received.size < RESOURCES) await sleep(20);
    }
    subscribedPoll = false;
    const cpu = process.cpuUsage(cpu0);
    const times = [...received.values()];
    const last = Math.max(...times);
    const first = Math.min(...times);
    return {
      run: n,
      resources: RESOURCES,
      received: received.size,
      startToAllMs: r1(last - tStart),
      subscribedToAllMs: r1(last - tSubscribed),
      startToSubscribedMs: r1(tSubscribed - tStart),
      startToFirstMs: r1(first - tStart),
      subscribedToSentAllMs: r1(tSentAll - tSubscribed),
      listMs,
      cpuSeconds: { node: r1((cpu.user + cpu.system) / 1e6 * 10) / 10, agentsim: pid === undefined ? NaN : cpuSeconds(pid) },
      load1: loadavg()[0]!,
      settled: received.size === RESOURCES,
      overflows,
    };
  } finally {
    while (teardown.length > 0) await teardown.pop()!().catch((err: unknown) => console.error(`teardown: ${String(err)}`));
  }
}

function spread(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number): string => (Number.isFinite(x) ? String(Math.round(x * 10) / 10) : "–");
  return `${f(s[0]!)} / ${f(s[Math.floor((s.length - 1) / 2)]!)} / ${f(s[s.length - 1]!)}`;
}

function machine(): string {
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    // not a checkout
  }
  return `${new Date().toISOString()}, commit ${commit}, ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30 * 10) / 10} GiB, Node ${process.version}, load ${loadavg().map((x) => x.toFixed(2)).join(" ")}`;
}

const results: RunResult[] = [];
for (let i = 1; i <= RUNS; i++) {
  const res = await run(i);
  console.log(JSON.stringify(res));
  results.push(res);
}
console.log(`\n| ${RESOURCES.toLocaleString("en")} resources, 1 cluster, agentsim ${VERSION}, auto-status ${args["auto-status"] ? "on" : "off"}, broker queue_capacity ${QUEUE} (${RUNS} runs) | min / median / max |`);
console.log("|---|---|");
console.log(`| **agent start → all received** ms | ${spread(results.map((r) => r.startToAllMs))} |`);
console.log(`| subscribed → all received ms | ${spread(results.map((r) => r.subscribedToAllMs))} |`);
console.log(`| agent start → subscribed ms | ${spread(results.map((r) => r.startToSubscribedMs))} |`);
console.log(`| subscribed → conductor's stream queue drained (all ${RESOURCES} handed to gRPC) ms | ${spread(results.map((r) => r.subscribedToSentAllMs))} |`);
console.log(`| agent start → first received ms | ${spread(results.map((r) => r.startToFirstMs))} |`);
console.log(`| conductor list() ms (first call) | ${spread(results.map((r) => r.listMs[0] ?? NaN))} |`);
console.log(`| CPU s: node (conductor) / agentsim | ${spread(results.map((r) => r.cpuSeconds.node))} / ${spread(results.map((r) => r.cpuSeconds.agentsim))} |`);
console.log(`| load average (1 min) at the end of each run | ${results.map((r) => r.load1.toFixed(2)).join(", ")} |`);
console.log(`\nreceived: ${results.map((r) => r.received).join(", ")}; streams ended as too slow: ${results.map((r) => r.overflows).join(", ")}; ${machine()}`);
process.exit(0);
