/**
 * P1 and P7 (issue #9): concurrent subscribed clusters per conductor process, and the reconnect
 * wave after a conductor `kill -9`, on loopback.
 *
 * For each cluster count N (`--clusters 1000,5000,10000`), fresh:
 *
 * 1. a harness PostgreSQL server and database (Maestro's database; external to the conductor, as
 *    in production, so that killing the conductor leaves it alone);
 * 2. the real `conductor` binary as a **child process** (`node apps/conductor/bin/conductor.js
 *    serve --mode all --grpc-port P --admin-port A`, `DATABASE_URL` set, heartbeats at the default
 *    10 s, `--log-level warn`), so that its RSS is its own (`/proc/<pid>/status` VmRSS and VmHWM);
 * 3. ⌈N / `--per-agentsim`⌉ agentsim processes (sdk-go v1.3 work agents, one gRPC connection and one
 *    manifestbundles Subscribe stream per cluster, `--server-healthiness-timeout 25s`: an agent that
 *    sees no heartbeat for 25 s reconnects, which shows up as a new stream id).
 *
 * Measured: agents spawned → all N clusters subscribed (polling `/debug/subscribers?format=json`
 * every 2 s), then over a `--hold` window (default 30 s) sampled every 5 s: conductor RSS (and
 * RSS − the idle RSS before the agents, ÷ N = per stream), the largest heartbeat age across streams
 * (sample time − `lastHeartbeat`; on time means ≤ interval + sampling slack), streams that were
 * replaced (resubscriptions), conductor CPU. With `--restart` (P7) it then kills the conductor with
 * SIGKILL, starts it again on the same ports, and times kill → all N clusters subscribed again
 * (new stream ids) — the agents reconnect after sdk-go's reconnect delay (agentsim's constant
 * `--reconnect-delay`, default 2 s). The clusters hold no resources, so their resync answers are
 * empty: this is the connection + subscribe + resync-request wave, not a data resync.
 *
 *   pnpm bench:subscriber-scale [-- --clusters 1000,5000,10000 --per-agentsim 2500 --hold 30 --restart]
 *
 * `--cpu-prof DIR` runs the conductor child with `node --cpu-prof --cpu-prof-dir=DIR` (a V8 profile
 * written when it exits cleanly; the instance killed by `--restart` writes none).
 *
 * One JSON line per N, then a Markdown table and the machine facts. A measurement, not a test;
 * bounded (per-phase timeouts, agentsim `--duration`), loopback only. Only processes it started
 * are signalled (by pid / process group).
 *
 * @packageDocumentation
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createDatabase, startAgentSim, startPostgres, type AgentSimHandle, type AgentSimVersion } from "@ocm-conductor/test-harness";

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"), // pnpm may pass the "--" through
  options: {
    clusters: { type: "string", default: "1000,5000,10000" },
    "per-agentsim": { type: "string", default: "2500" },
    hold: { type: "string", default: "30" },
    restart: { type: "boolean", default: false },
    version: { type: "string", default: "v1.3" },
    "subscribe-timeout": { type: "string", default: "240" },
    "healthiness-timeout": { type: "string", default: "25s" },
    "cpu-prof": { type: "string" },
  },
});
const COUNTS = args.clusters.split(",").map(Number);
const PER = Number(args["per-agentsim"]);
const HOLD_S = Number(args.hold);
const VERSION = args.version as AgentSimVersion;
const SUB_TIMEOUT_MS = Number(args["subscribe-timeout"]) * 1000;
const MANIFESTBUNDLES = "io.open-cluster-management.works.v1alpha1.manifestbundles";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..");
const CONDUCTOR_BIN = join(ROOT, "apps", "conductor", "bin", "conductor.js");

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const r1 = (x: number): number => Math.round(x * 10) / 10;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function procStatus(pid: number): { rssMiB: number; hwmMiB: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? NaN);
    return { rssMiB: r1(kb("VmRSS") / 1024), hwmMiB: r1(kb("VmHWM") / 1024) };
  } catch {
    return { rssMiB: NaN, hwmMiB: NaN };
  }
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

interface Stream {
  id: string;
  clusterName: string;
  dataType: string;
  since: string;
  lastHeartbeat: string | null;
}

class Conductor {
  child!: ChildProcess;
  stderrTail: string[] = [];
  constructor(readonly grpcPort: number, readonly adminPort: number, readonly databaseUrl: string, readonly dataDir: string) {}

  async start(): Promise<void> {
    const prof = args["cpu-prof"] === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${args["cpu-prof"]}`];
    this.child = spawn(process.execPath, [...prof, CONDUCTOR_BIN, "serve", "--mode", "all", "--grpc-port", String(this.grpcPort),
      "--admin-port", String(this.adminPort), "--data-dir", this.dataDir, "--log-level", "warn"], {
      cwd: ROOT, detached: true, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, DATABASE_URL: this.databaseUrl },
    });
    this.child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      this.stderrTail.push(d);
      if (this.stderrTail.length > 20) this.stderrTail.shift();
    });
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`http://127.0.0.1:${this.adminPort}/readyz`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (this.child.exitCode !== null) break;
      await sleep(200);
    }
    throw new Error(`conductor not ready: ${this.stderrTail.join("").slice(-2000)}`);
  }

  get pid(): number {
    return this.child.pid!;
  }

  async streams(): Promise<Stream[]> {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}/debug/subscribers?format=json`, { signal: AbortSignal.timeout(15_000) });
    return ((await res.json()) as { streams: Stream[] }).streams.filter((s) => s.dataType === MANIFESTBUNDLES);
  }

  kill(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      // gone
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.kill("SIGTERM");
    await Promise.race([exited, sleep(10_000)]);
    this.kill("SIGKILL");
  }
}

/** Polls until `n` clusters have a manifestbundles stream (optionally only streams not in `old`). */
async function waitSubscribed(c: Conductor, n: number, timeoutMs: number, old?: Set<string>): Promise<{ ms: number; reached: number }> {
  const t0 = performance.now();
  let reached = 0;
  while (performance.now() - t0 < timeoutMs) {
    try {
      const streams = await c.streams();
      reached = new Set(streams.filter((s) => old === undefined || !old.has(s.id)).map((s) => s.clusterName)).size;
      if (reached >= n) return { ms: r1(performance.now() - t0), reached };
    } catch {
      // the conductor is (re)starting
    }
    await sleep(2_000);
  }
  return { ms: NaN, reached };
}

interface Result {
  clusters: number;
  agentsims: number;
  subscribedMs: number;
  reached: number;
  idleRssMiB: number;
  rssMiB: { min: number; median: number; max: number };
  hwmMiB: number;
  perStreamKiB: number;
  heartbeatAgeMaxS: number;
  streamsWithoutHeartbeat: number;
  resubscriptions: number;
  conductorCpuSecondsHold: number;
  conductorCpuSecondsSubscribe: number;
  agentsimRssMiB: number;
  agentsimCpuSeconds: number;
  load: number[];
  restart?: { killToAllSubscribedMs: number; reached: number; rssAfterMiB: number; conductorCpuSeconds: number; load: number[]; missing?: string[] };
}

async function runCount(n: number): Promise<Result> {
  const teardown: Array<() => Promise<unknown>> = [];
  try {
    const pg = await startPostgres();
    teardown.push(() => pg.stop());
    const url = await createDatabase(pg, "maestro");
    const dataDir = mkdtempSync(join(tmpdir(), "subscriber-scale-"));
    teardown.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const conductor = new Conductor(await freePort(), await freePort(), url, join(dataDir, "pg"));
    await conductor.start();
    teardown.push(() => conductor.stop());
    await sleep(2_000);
    const idle = procStatus(conductor.pid);
    const cpuStart = cpuSeconds(conductor.pid);

    const names = Array.from({ length: n }, (_, i) => `scale-${String(i).padStart(5, "0")}`);
    const groups: string[][] = [];
    for (let i = 0; i < n; i += PER) groups.push(names.slice(i, i + PER));
    const duration = `${Math.ceil(SUB_TIMEOUT_MS / 1000 + HOLD_S + 240)}s`;
    const agentsP = groups.map((clusters) =>
      startAgentSim({
        version: VERSION, server: `127.0.0.1:${conductor.grpcPort}`, clusters, duration,
        serverHealthinessTimeout: args["healthiness-timeout"], startTimeoutMs: SUB_TIMEOUT_MS,
      }).then((a) => {
        teardown.push(() => a.stop(20_000));
        return a;
      }),
    );
    const sub = await waitSubscribed(conductor, n, SUB_TIMEOUT_MS);
    const agents: AgentSimHandle[] = await Promise.all(agentsP);
    const cpuSubscribed = cpuSeconds(conductor.pid);
    console.error(`N=${n}: ${sub.reached} subscribed in ${sub.ms} ms; holding ${HOLD_S} s`);

    // Steady state: sample RSS and heartbeat ages.
    const seenIds = new Set<string>();
    const rss: number[] = [];
    let heartbeatAgeMax = 0;
    let withoutHeartbeat = 0;
    const holdStart = performance.now();
    while (performance.now() - holdStart < HOLD_S * 1000) {
      await sleep(5_000);
      rss.push(procStatus(conductor.pid).rssMiB);
      const at = Date.now();
      const streams = await conductor.streams();
      for (const s of streams) {
        seenIds.add(s.id);
        // A stream younger than one interval may not have had its first heartbeat yet.
        const ref = s.lastHeartbeat ?? (at - Date.parse(s.since) > 11_000 ? s.since : null);
        if (s.lastHeartbeat === null && ref !== null) withoutHeartbeat++;
        if (ref !== null) heartbeatAgeMax = Math.max(heartbeatAgeMax, (at - Date.parse(ref)) / 1000);
      }
    }
    const cpuHoldEnd = cpuSeconds(conductor.pid);
    const sorted = [...rss].sort((a, b) => a - b);
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    const result: Result = {
      clusters: n,
      agentsims: groups.length,
      subscribedMs: sub.ms,
      reached: sub.reached,
      idleRssMiB: idle.rssMiB,
      rssMiB: { min: sorted[0]!, median, max: sorted[sorted.length - 1]! },
      hwmMiB: procStatus(conductor.pid).hwmMiB,
      perStreamKiB: r1(((median - idle.rssMiB) * 1024) / n),
      heartbeatAgeMaxS: r1(heartbeatAgeMax),
      streamsWithoutHeartbeat: withoutHeartbeat,
      resubscriptions: seenIds.size - n,
      conductorCpuSecondsSubscribe: r1(cpuSubscribed - cpuStart),
      conductorCpuSecondsHold: r1(cpuHoldEnd - cpuSubscribed),
      agentsimRssMiB: r1(agents.reduce((a, x) => a + (x.pid === undefined ? 0 : procStatus(x.pid).rssMiB), 0)),
      agentsimCpuSeconds: r1(agents.reduce((a, x) => a + (x.pid === undefined ? 0 : cpuSeconds(x.pid)), 0)),
      load: loadavg().map((x) => Math.round(x * 100) / 100),
    };

    if (args.restart) {
      const old = new Set((await conductor.streams()).map((s) => s.id));
      const exited = new Promise((r) => conductor.child.once("exit", r));
      const tKill = performance.now();
      conductor.kill("SIGKILL");
      await exited;
      await conductor.start();
      const cpu0 = cpuSeconds(conductor.pid);
      const again = await waitSubscribed(conductor, n, SUB_TIMEOUT_MS, old);
      result.restart = {
        killToAllSubscribedMs: r1(performance.now() - tKill),
        reached: again.reached,
        rssAfterMiB: procStatus(conductor.pid).rssMiB,
        conductorCpuSeconds: r1(cpuSeconds(conductor.pid) - cpu0),
        load: loadavg().map((x) => Math.round(x * 100) / 100),
      };
      if (Number.isNaN(again.ms)) {
        result.restart.killToAllSubscribedMs = NaN;
        // Which clusters did not come back, and what their agents last said.
        const have = new Set((await conductor.streams().catch(() => [])).filter((s) => !old.has(s.id)).map((s) => s.clusterName));
        const missing = names.filter((c) => !have.has(c));
        result.restart.missing = missing.slice(0, 50);
        for (const c of missing.slice(0, 5)) {
          const lines = agents.flatMap((a) => a.events.filter((e) => e.cluster === c || (typeof e.message === "string" && e.message.includes(c))));
          console.error(`not resubscribed: ${c}: ${lines.slice(-5).map((e) => JSON.stringify(e)).join(" ")}`);
        }
        for (const a of agents) {
          const tail = a.stderr.filter((l) => missing.slice(0, 5).some((c) => l.includes(c))).slice(-5);
          if (tail.length > 0) console.error(`agentsim stderr: ${tail.join("\n")}`);
        }
      }
    }
    return result;
  } finally {
    while (teardown.length > 0) await teardown.pop()!().catch((err: unknown) => console.error(`teardown: ${String(err)}`));
  }
}

function machine(): string {
  let commit = "unknown";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8", cwd: ROOT }).trim();
  } catch {
    // not a checkout
  }
  return `${new Date().toISOString()}, commit ${commit}, ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${r1(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

const results: Result[] = [];
for (const n of COUNTS) {
  const res = await runCount(n);
  console.log(JSON.stringify(res));
  results.push(res);
}
console.log("\n| clusters (agentsim processes) | all subscribed after s | conductor RSS MiB min/median/max (idle before agents) | RSS per stream KiB | max heartbeat age s | resubscriptions | conductor CPU s: subscribe / hold | agentsim RSS MiB total | load (1/5/15) |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of results) {
  console.log(`| ${r.reached}/${r.clusters} (${r.agentsims}) | ${r1(r.subscribedMs / 1000)} | ${r.rssMiB.min} / ${r.rssMiB.median} / ${r.rssMiB.max} (${r.idleRssMiB}) | ${r.perStreamKiB} | ${r.heartbeatAgeMaxS} | ${r.resubscriptions} | ${r.conductorCpuSecondsSubscribe} / ${r.conductorCpuSecondsHold} | ${r.agentsimRssMiB} | ${r.load.join(" ")} |`);
}
if (args.restart) {
  console.log("\n| clusters | kill -9 → all resubscribed s | RSS after MiB | conductor CPU s | load |");
  console.log("|---|---|---|---|---|");
  for (const r of results) console.log(`| ${r.restart!.reached}/${r.clusters} | ${r1(r.restart!.killToAllSubscribedMs / 1000)} | ${r.restart!.rssAfterMiB} | ${r.restart!.conductorCpuSeconds} | ${r.restart!.load.join(" ")} |`);
}
console.log(`\n${machine()}; hold ${HOLD_S} s, heartbeat interval 10 s, agent healthiness timeout ${args["healthiness-timeout"]}`);
process.exit(0);
