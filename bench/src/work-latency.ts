/**
 * ManifestWork delivery latency through the conductor's `kube` route, end to end on loopback:
 *
 *   hub ManifestWork create (API call returned) → informer → broker → gRPC → sdk-go work agent
 *   (agentsim `work-added` line) → agent status → conductor → hub status (`Applied=True`, as a hub
 *   watch sees it).
 *
 * Each run starts everything fresh (kube-apiserver + etcd, the conductor = Broker + KubeWorkBackend
 * + gRPC server, one agentsim process for all clusters), creates the works at a bounded rate spread
 * round-robin over the cluster namespaces, waits (bounded) until every work was received and is
 * Applied, and tears everything down. It prints one JSON line per run, then a Markdown summary
 * (min / median / max over the runs of each percentile) and the machine facts.
 *
 * Run (after `pnpm build` at the repository root; peers built by `scripts/build-peers.sh`):
 *
 *   pnpm bench:work-latency [--runs 3 --works 1000 --clusters 100 --rate 100]
 *
 * Further flags: `--concurrency n` (create calls in flight, default 16), `--version v1.3|v1.2.0|v1.1.0`,
 * `--settle-timeout ms`, `--reuse-connections` (the conductor keeps its API server connections, see
 * {@link ConnectionReusingKubeConfig}), `--probe-connections` (cost of one API call with a fresh vs a
 * reused connection, on run 1's idle control plane), `--cpu-profile` (V8 profile of this process
 * during each measured window, written to `bench/dist/profiles/`). Results: `bench/RESULTS.md`.
 *
 * It is a measurement, not a test: nothing here asserts a time. Everything is bounded (counts,
 * per-run settle timeout, an overall deadline) and listens on loopback only.
 *
 * @packageDocumentation
 */
import { execFileSync } from "node:child_process";
import { Session } from "node:inspector/promises";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CoreV1Api, CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import * as ConductorApp from "@ocm-conductor/conductor";
import { DataTypes } from "@ocm-conductor/protocol";
import { Broker } from "@ocm-conductor/router";
import {
  agentSimBinary, defaultTestbinDir, startAgentSim, startControlPlane, type AgentSimEvent, type AgentSimHandle,
  type AgentSimVersion, type ControlPlane,
} from "@ocm-conductor/test-harness";
import { ConnectionReusingKubeConfig, KubeWorkBackend, MANIFEST_WORKS, ResilientInformer, type ManifestWork } from "@ocm-conductor/work-service";

/** Settings of one benchmark invocation. */
export interface BenchOptions {
  /** Independent runs (each on a fresh control plane, conductor and agent process). */
  runs: number;
  /** ManifestWorks created per run. */
  works: number;
  /** Simulated clusters (one namespace and one agent connection each). */
  clusters: number;
  /** Creates per second (paced; at most `concurrency` create calls in flight). */
  rate: number;
  /** Create calls in flight at most. */
  concurrency: number;
  /** sdk-go generation of the agents. */
  version: AgentSimVersion;
  /** Bound on waiting for every work to be received and Applied, per run, in ms. */
  settleTimeoutMs: number;
  /**
   * Give the conductor a {@link ConnectionReusingKubeConfig} (keep-alive connections to the API
   * server) instead of a plain KubeConfig, whose API clients open a new TLS connection per call.
   */
  reuseConnections: boolean;
  /** Before run 1's load: time sequential API reads on a fresh vs a reused connection. */
  probeConnections: boolean;
  /** CPU-profile this process (conductor + bench client) during each run's measured window. */
  cpuProfile: boolean;
}

/** Cost of one API call (a namespace GET on an idle control plane) with and without connection reuse. */
export interface ConnectionProbe {
  calls: number;
  /** client-node 1.4 as is: a new https.Agent, TCP connection and TLS handshake per call. */
  fresh: { p50Ms: number; nodeCpuMsPerCall: number; apiserverCpuMsPerCall: number };
  /** {@link ConnectionReusingKubeConfig}: one keep-alive connection. */
  reused: { p50Ms: number; nodeCpuMsPerCall: number; apiserverCpuMsPerCall: number };
}

/** Where this process spent its CPU during a run's measured window. */
export interface ProfileSummary {
  /** The `.cpuprofile` file (open it in Chrome DevTools). */
  file: string;
  /** Busy (non-idle) sampled time, ms. */
  busyMs: number;
  /** Share of busy time under TLS connection setup (https `createConnection`: TCP connect, secure context, handshake). */
  tlsConnectShare: number;
  /** Share of busy time in the conductor's gRPC transport (connect-node / connect handlers). */
  grpcShare: number;
}

/** Percentiles of one latency series, in ms. */
export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

/** What one run measured. */
export interface RunResult {
  run: number;
  /** Create → agent `work-added`. */
  receipt: Percentiles;
  /** Create → the agent's Applied status publish returned OK (agentsim `status-published`), which includes the conductor's hub writes. */
  statusPublished: Percentiles;
  /** Create → `Applied=True` seen by a hub watch. */
  applied: Percentiles;
  /** Where the time goes: agent receipt → agent's local finalizer patch (`finalizer-added`). */
  agentFinalizer: Percentiles;
  /** `finalizer-added` → `status-published` (agent requeue + status publish, which waits for the conductor). */
  agentStatus: Percentiles;
  /** The conductor's `handle()` of each status event (finalizer + status writes to the hub). */
  conductorHandle: Percentiles;
  /** Wall time of the create phase (first create sent → last create returned), ms. */
  createPhaseMs: number;
  /** Achieved create rate, works/s. */
  createRate: number;
  /** CPU seconds used during the measured window (create phase until all Applied), per process. */
  cpuSeconds: Record<"node" | "kubeApiserver" | "etcd" | "agentsim", number>;
  /** Works that never arrived / never became Applied within the settle bound. */
  missing: { receipt: number; applied: number };
  /** sdk-go version agentsim reported (`ready` line). */
  agentSdk: string;
  probe?: ConnectionProbe;
  profile?: ProfileSummary;
}

const HERE = dirname(fileURLToPath(import.meta.url));

/** Finds the repository root (the directory with pnpm-workspace.yaml) above this file. */
function repoRoot(): string {
  for (let dir = HERE; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
  }
  throw new Error(`no pnpm-workspace.yaml above ${HERE}`);
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN };
}

/** Wall-clock now in ms with sub-ms resolution (same clock as agentsim's RFC 3339 `t`). */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Parses agentsim's `t` (RFC 3339, nanoseconds, UTC) to ms since the epoch, keeping the microseconds. */
function parseAgentTime(t: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(t);
  if (!m) throw new Error(`unexpected agentsim time ${t}`);
  const frac = (m[2] ?? "").padEnd(9, "0");
  return Date.parse(`${m[1]}Z`) + Number(frac.slice(0, 6)) / 1000;
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** Times `calls` sequential namespace GETs through a plain KubeConfig and through a connection-reusing one. */
async function probeConnections(cp: ControlPlane, calls: number): Promise<ConnectionProbe> {
  const measure = async (kc: KubeConfig): Promise<ConnectionProbe["fresh"]> => {
    const core = kc.makeApiClient(CoreV1Api);
    await core.readNamespace({ name: "default" }); // warm-up (and the first connection of the reusing one)
    const times: number[] = [];
    const cpu0 = process.cpuUsage();
    const api0 = procCpuSeconds(cp.pids.kubeApiserver);
    for (let i = 0; i < calls; i++) {
      const t0 = nowMs();
      await core.readNamespace({ name: "default" });
      times.push(nowMs() - t0);
    }
    const cpu = process.cpuUsage(cpu0);
    const round = (x: number): number => Math.round(x * 100) / 100;
    return {
      p50Ms: round(percentile(times.sort((a, b) => a - b), 50)),
      nodeCpuMsPerCall: round((cpu.user + cpu.system) / 1000 / calls),
      apiserverCpuMsPerCall: round(((procCpuSeconds(cp.pids.kubeApiserver) - api0) * 1000) / calls),
    };
  };
  const fresh = await measure(cp.kubeConfig);
  const reusing = ConnectionReusingKubeConfig.fromFile(cp.kubeconfigPath);
  try {
    return { calls, fresh, reused: await measure(reusing) };
  } finally {
    reusing.destroy();
  }
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

const TLS_SETUP = new Set(["onConnectSecure", "ssl.onhandshakedone", "TLSSocket._finishInit", "TLSSocket._start", "onnewsessionclient", "onocspresponse"]);

/** Summarises a V8 CPU profile: busy time, and the shares under TLS connection setup and the gRPC transport. */
function summariseProfile(profile: { nodes: CpuProfileNode[]; samples: number[]; timeDeltas: number[] }, file: string): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  let busy = 0;
  let tls = 0;
  let grpc = 0;
  for (const [id, us] of self) {
    const leaf = byId.get(id)!;
    if (leaf.callFrame.functionName === "(idle)") continue;
    busy += us;
    let inTls = false;
    let inGrpc = false;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      // Connection setup: the synchronous part (secure context with the CA bundle parsed again,
      // socket) runs under https createConnection; the handshake's completion runs from the TLS
      // socket's callbacks (peer certificate checks and so on).
      if ((f.url === "node:https" && f.functionName === "createConnection") || (f.url === "node:_tls_wrap" && TLS_SETUP.has(f.functionName))) inTls = true;
      if (/@connectrpc\+connect/.test(f.url)) inGrpc = true;
    }
    if (inTls) tls += us;
    if (inGrpc) grpc += us;
  }
  const share = (x: number): number => Math.round((x / Math.max(1, busy)) * 1000) / 10;
  return { file, busyMs: Math.round(busy / 1000), tlsConnectShare: share(tls), grpcShare: share(grpc) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `check` is true or `timeoutMs` passes; returns whether it became true. */
async function waitUntil(check: () => boolean, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}

const clusterName = (i: number): string => `bench-${String(i).padStart(3, "0")}`;

/** One run: fresh peers, paced creates, wait for receipt and Applied, tear down. */
async function runOnce(run: number, o: BenchOptions, app: typeof ConductorApp): Promise<RunResult> {
  const teardown: Array<() => Promise<unknown>> = [];
  try {
    const cp: ControlPlane = await startControlPlane();
    teardown.push(() => cp.stop());
    // The bench's own client is not under test: keep its connections.
    const benchKc = ConnectionReusingKubeConfig.fromFile(cp.kubeconfigPath);
    teardown.push(async () => benchKc.destroy());
    const api = benchKc.makeApiClient(CustomObjectsApi);
    const core = benchKc.makeApiClient(CoreV1Api);
    const clusters = Array.from({ length: o.clusters }, (_, i) => clusterName(i));
    for (const name of clusters) await core.createNamespace({ body: { metadata: { name } } });
    const probe = run === 1 && o.probeConnections ? await probeConnections(cp, 200) : undefined;

    // The conductor, as the interop suite runs it.
    const broker = new Broker();
    const conductorKc = o.reuseConnections ? ConnectionReusingKubeConfig.fromFile(cp.kubeconfigPath) : cp.kubeConfig;
    if (conductorKc instanceof ConnectionReusingKubeConfig) teardown.push(async () => conductorKc.destroy());
    const works = new KubeWorkBackend({ kubeConfig: conductorKc });
    // Time the conductor's status handling (the hub writes it makes per agent status event).
    const handleMs: number[] = [];
    const handle = works.handle.bind(works);
    works.handle = async (event, context) => {
      const t0 = nowMs();
      try {
        return await handle(event, context);
      } finally {
        handleMs.push(nowMs() - t0);
      }
    };
    broker.registerBackend(DataTypes.manifestBundles, works);
    await works.start();
    teardown.push(() => works.stop());
    const server = await app.startGrpcServer({ config: { ...app.defaultConfig().grpc, host: "127.0.0.1", port: 0 }, broker });
    teardown.push(() => server.close(1000));

    // The hub's view of Applied, through its own watch (as a hub controller would see it).
    const created = new Map<string, number>(); // uid → create returned (ms)
    const appliedAt = new Map<string, number>();
    const onChange = (w: ManifestWork): void => {
      if (appliedAt.has(w.metadata.uid)) return;
      if (w.status?.conditions?.some((c) => c.type === "Applied" && c.status === "True")) appliedAt.set(w.metadata.uid, nowMs());
    };
    const hubWatch = new ResilientInformer<ManifestWork>(benchKc, {
      name: "bench-applied",
      path: `/apis/${MANIFEST_WORKS.group}/${MANIFEST_WORKS.version}/${MANIFEST_WORKS.plural}`,
      list: () => api.listClusterCustomObject({ ...MANIFEST_WORKS }) as never,
      onAdd: onChange,
      onUpdate: onChange,
      resyncMs: 0,
    });
    await hubWatch.start();
    teardown.push(() => hubWatch.stop());

    const agents: AgentSimHandle = await startAgentSim({
      version: o.version, server: `127.0.0.1:${server.port}`, clusters, duration: "15m", startTimeoutMs: 120_000,
    });
    teardown.push(() => agents.stop(10_000));
    const subscribed = await waitUntil(() => broker.subscribedClusters().length >= o.clusters, 60_000);
    if (!subscribed) throw new Error(`only ${broker.subscribedClusters().length} of ${o.clusters} agents subscribed within 60 s`);
    const received = new Map<string, number>(); // uid → agent work-added time (ms)
    const finalized = new Map<string, number>(); // uid → agent finalizer-added time (ms)
    const published = new Map<string, number>(); // uid → agent status-published (Applied) time (ms)
    let scanned = 0;
    const scan = (): void => {
      for (; scanned < agents.events.length; scanned++) {
        const e: AgentSimEvent = agents.events[scanned]!;
        if (typeof e.uid !== "string") continue;
        if (e.event === "work-added" && !received.has(e.uid)) received.set(e.uid, parseAgentTime(e.t));
        if (e.event === "finalizer-added" && !finalized.has(e.uid)) finalized.set(e.uid, parseAgentTime(e.t));
        if (e.event === "status-published" && !published.has(e.uid)) published.set(e.uid, parseAgentTime(e.t));
      }
    };

    // Paced creates: work i is sent at start + i / rate, with at most `concurrency` calls in flight.
    const pids = cp.pids;
    const session = o.cpuProfile ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.start");
    }
    const cpu0 = { node: process.cpuUsage(), kubeApiserver: procCpuSeconds(pids.kubeApiserver), etcd: procCpuSeconds(pids.etcd), agentsim: procCpuSeconds(agents.pid) };
    const start = nowMs();
    let inFlight = 0;
    let failures = 0;
    const pending: Array<Promise<void>> = [];
    for (let i = 0; i < o.works; i++) {
      const due = start + (i * 1000) / o.rate;
      while (nowMs() < due || inFlight >= o.concurrency) await sleep(Math.max(1, Math.min(10, due - nowMs())));
      const namespace = clusters[i % clusters.length]!;
      inFlight++;
      pending.push((async () => {
        try {
          const w = (await api.createNamespacedCustomObject({
            ...MANIFEST_WORKS, namespace,
            body: {
              apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork",
              metadata: { name: `work-${String(i).padStart(5, "0")}`, namespace },
              spec: { workload: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${i}`, namespace: "default" }, data: { i: String(i) } }] } },
            },
          })) as ManifestWork;
          created.set(w.metadata.uid, nowMs());
        } catch (err) {
          failures++;
          console.error(`create ${namespace}/work-${i} failed: ${(err as Error).message}`);
        } finally {
          inFlight--;
        }
      })());
    }
    await Promise.all(pending);
    const createPhaseMs = nowMs() - start;
    if (failures > 0) throw new Error(`${failures} creates failed`);

    await waitUntil(() => {
      scan();
      return [...created.keys()].every((uid) => received.has(uid) && appliedAt.has(uid));
    }, o.settleTimeoutMs, 100);
    scan();
    let profile: ProfileSummary | undefined;
    if (session) {
      const { profile: p } = await session.post("Profiler.stop");
      session.disconnect();
      const dir = join(HERE, "profiles");
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `work-latency-run${run}-${Date.now()}.cpuprofile`);
      writeFileSync(file, JSON.stringify(p));
      profile = summariseProfile(p as never, file);
    }
    const cpu = {
      node: (() => {
        const u = process.cpuUsage(cpu0.node);
        return (u.user + u.system) / 1e6;
      })(),
      kubeApiserver: procCpuSeconds(pids.kubeApiserver) - cpu0.kubeApiserver,
      etcd: procCpuSeconds(pids.etcd) - cpu0.etcd,
      agentsim: procCpuSeconds(agents.pid) - cpu0.agentsim,
    };
    const receiptMs: number[] = [];
    const publishedMs: number[] = [];
    const appliedMs: number[] = [];
    const agentFinalizerMs: number[] = [];
    const agentStatusMs: number[] = [];
    for (const [uid, t] of created) {
      const r = received.get(uid);
      const f = finalized.get(uid);
      const p = published.get(uid);
      const a = appliedAt.get(uid);
      if (r !== undefined) receiptMs.push(r - t);
      if (p !== undefined) publishedMs.push(p - t);
      if (a !== undefined) appliedMs.push(a - t);
      if (r !== undefined && f !== undefined) agentFinalizerMs.push(f - r);
      if (f !== undefined && p !== undefined) agentStatusMs.push(p - f);
    }
    const round = (x: number): number => Math.round(x * 100) / 100;
    return {
      run,
      receipt: percentiles(receiptMs),
      statusPublished: percentiles(publishedMs),
      applied: percentiles(appliedMs),
      agentFinalizer: percentiles(agentFinalizerMs),
      agentStatus: percentiles(agentStatusMs),
      conductorHandle: percentiles(handleMs),
      createPhaseMs: Math.round(createPhaseMs),
      createRate: round((o.works * 1000) / createPhaseMs),
      cpuSeconds: { node: round(cpu.node), kubeApiserver: round(cpu.kubeApiserver), etcd: round(cpu.etcd), agentsim: round(cpu.agentsim) },
      missing: { receipt: created.size - receiptMs.length, applied: created.size - appliedMs.length },
      agentSdk: String(agents.ready?.sdk ?? o.version),
      ...(probe === undefined ? {} : { probe }),
      ...(profile === undefined ? {} : { profile }),
    };
  } finally {
    for (const step of teardown.reverse()) {
      await step().catch((err: unknown) => console.error(`teardown step failed: ${String(err)}`));
    }
  }
}

/** Facts about the machine and the build, for the results table. */
function machineFacts(version: AgentSimVersion, agentSdk: string | undefined): Record<string, string> {
  const run = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return "unknown";
    }
  };
  const root = repoRoot();
  const dirty = run("git", ["-C", root, "status", "--porcelain", "--untracked-files=no"]) !== "";
  const apiserver = join(defaultTestbinDir(), "bin", "kube-apiserver");
  return {
    date: new Date().toISOString(),
    commit: `${run("git", ["-C", root, "rev-parse", "--short", "HEAD"])}${dirty ? " (with uncommitted changes)" : ""}`,
    nproc: String(availableParallelism()),
    cpu: cpus()[0]?.model ?? "unknown",
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    go: run("go", ["env", "GOVERSION"]),
    "kube-apiserver": `${run(apiserver, ["--version"])} (built with ${run("go", ["version", apiserver]).split(": ").pop()})`,
    agentsim: `sdk-go ${agentSdk ?? version}`,
  };
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: "string", default: "3" },
      works: { type: "string", default: "1000" },
      clusters: { type: "string", default: "100" },
      rate: { type: "string", default: "100" },
      concurrency: { type: "string", default: "16" },
      version: { type: "string", default: "v1.3" },
      "settle-timeout": { type: "string", default: "180000" },
      "reuse-connections": { type: "boolean", default: false },
      "probe-connections": { type: "boolean", default: false },
      "cpu-profile": { type: "boolean", default: false },
    },
    allowPositionals: false,
  });
  const int = (name: string, v: string | undefined, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer in [1, ${max}], got ${v}`);
    return n;
  };
  return {
    runs: int("runs", values.runs, 10),
    works: int("works", values.works, 10_000),
    clusters: int("clusters", values.clusters, 500),
    rate: int("rate", values.rate, 2_000),
    concurrency: int("concurrency", values.concurrency, 256),
    version: values.version as AgentSimVersion,
    settleTimeoutMs: int("settle-timeout", values["settle-timeout"], 600_000),
    reuseConnections: values["reuse-connections"] ?? false,
    probeConnections: values["probe-connections"] ?? false,
    cpuProfile: values["cpu-profile"] ?? false,
  };
}

/** min / median / max of a list of numbers. */
function spread(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(1));
  return `${f(s[0])} / ${f(s[Math.floor((s.length - 1) / 2)])} / ${f(s[s.length - 1])}`;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2).filter((a) => a !== "--")); // pnpm may pass the "--" through
  await agentSimBinary(o.version); // fail early with the build hint
  const app = ConductorApp;
  // Bound the whole invocation: runs × (start + creates + settle + teardown).
  const budgetMs = o.runs * (120_000 + (o.works / o.rate) * 1000 + o.settleTimeoutMs);
  const guard = setTimeout(() => {
    console.error(`benchmark exceeded its ${Math.round(budgetMs / 1000)} s bound; exiting (exit hooks end the peers)`);
    process.exit(2);
  }, budgetMs);
  guard.unref();

  console.error(`work-latency: ${o.runs} runs × ${o.works} works over ${o.clusters} clusters at ${o.rate}/s (≤ ${o.concurrency} in flight), ` +
    `agentsim ${o.version}, conductor API connections ${o.reuseConnections ? "reused (keep-alive)" : "as client-node 1.4 makes them (one per call)"}`);
  const results: RunResult[] = [];
  for (let run = 1; run <= o.runs; run++) {
    const r = await runOnce(run, o, app);
    results.push(r);
    console.log(JSON.stringify(r));
  }
  const facts = machineFacts(o.version, results[0]?.agentSdk);
  const rows = [
    ["create → agent receipt", (r: RunResult) => r.receipt],
    ["create → agent's Applied status publish returned", (r: RunResult) => r.statusPublished],
    ["create → Applied on the hub", (r: RunResult) => r.applied],
    ["breakdown: agent receipt → agent's finalizer patch (agent-local)", (r: RunResult) => r.agentFinalizer],
    ["breakdown: agent's finalizer patch → status publish returned", (r: RunResult) => r.agentStatus],
    ["breakdown: conductor handle() of a status event", (r: RunResult) => r.conductorHandle],
  ] as const;
  const lines = [
    "",
    `conductor API connections: ${o.reuseConnections ? "reused (--reuse-connections)" : "one per call (client-node 1.4 default)"}`,
    "",
    `| latency (ms), min / median / max over ${results.length} runs | p50 | p99 | max |`,
    "|---|---|---|---|",
    ...rows.map(([label, pick]) => `| ${label} | ${spread(results.map((r) => pick(r).p50))} | ${spread(results.map((r) => pick(r).p99))} | ${spread(results.map((r) => pick(r).max))} |`),
    "",
    `create phase: ${spread(results.map((r) => r.createPhaseMs))} ms (achieved ${spread(results.map((r) => r.createRate))} works/s); ` +
      `missing receipts ${results.map((r) => r.missing.receipt).join("/")}, missing Applied ${results.map((r) => r.missing.applied).join("/")}`,
    `CPU seconds in the measured window (min / median / max): node (conductor + bench client) ${spread(results.map((r) => r.cpuSeconds.node))}, ` +
      `kube-apiserver ${spread(results.map((r) => r.cpuSeconds.kubeApiserver))}, etcd ${spread(results.map((r) => r.cpuSeconds.etcd))}, ` +
      `agentsim ${spread(results.map((r) => r.cpuSeconds.agentsim))}`,
    ...results.flatMap((r) => (r.probe === undefined ? [] : [
      `connection probe (${r.probe.calls} sequential GETs, idle control plane): fresh connection per call p50 ${r.probe.fresh.p50Ms} ms, ` +
        `${r.probe.fresh.nodeCpuMsPerCall} ms node CPU + ${r.probe.fresh.apiserverCpuMsPerCall} ms apiserver CPU per call; ` +
        `reused connection p50 ${r.probe.reused.p50Ms} ms, ${r.probe.reused.nodeCpuMsPerCall} ms + ${r.probe.reused.apiserverCpuMsPerCall} ms`,
    ])),
    ...results.flatMap((r) => (r.profile === undefined ? [] : [
      `run ${r.run} CPU profile: ${r.profile.busyMs} ms busy; TLS connection setup ${r.profile.tlsConnectShare} %, gRPC transport ${r.profile.grpcShare} % (${r.profile.file})`,
    ])),
    "",
    ...Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`),
  ];
  console.log(lines.join("\n"));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack ?? err.message : String(err));
    process.exit(1);
  },
);
