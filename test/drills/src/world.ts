/**
 * What every drill starts: a control plane (kube-apiserver + etcd with the OCM CRDs), a PostgreSQL
 * server on a fixed port and a persistent data directory (so it can be restarted mid-traffic), the
 * real conductor binary (`serve --mode all`, both sources), sdk-go agents from agentsim, and the
 * convergence check every drill ends with.
 */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createDatabase,
  eventually,
  getFreePort,
  startAgentSim,
  startControlPlane,
  startPostgres,
  type AgentSimHandle,
  type AgentSimVersion,
  type ControlPlane,
  type PostgresServer,
} from "@ocm-conductor/test-harness";
import type { Sql } from "postgres";
import { ConductorChild, Hub, hasCondition, startConductor, type ConductorSpec } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { Maestro, connect } from "./maestro.js";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface World {
  cp: ControlPlane;
  pg: PostgresServer;
  pgDir: string;
  databaseUrl: string;
  sql: Sql;
  maestro: Maestro;
  hub: Hub;
  conductors: ConductorChild[];
  agents: AgentSimHandle[];
  proxies: Proxy[];
}

export async function startWorld(name: string): Promise<World> {
  const pgDir = await mkdtemp(join(tmpdir(), `drills-${name}-`));
  await chmod(pgDir, 0o777); // as root the harness runs PostgreSQL as the postgres user
  const pgPort = await getFreePort("127.0.0.1");
  const [cp, pg] = await Promise.all([startControlPlane(), startPostgres({ dataDir: join(pgDir, "data"), port: pgPort })]);
  const databaseUrl = await createDatabase(pg, `drills_${name.replaceAll("-", "_")}`);
  const sql = connect(databaseUrl);
  return { cp, pg, pgDir, databaseUrl, sql, maestro: new Maestro(sql), hub: new Hub(cp.kubeConfig), conductors: [], agents: [], proxies: [] };
}

export async function stopWorld(w: World | undefined): Promise<void> {
  if (!w) return;
  for (const a of w.agents) await a.stop(2_000).catch(() => undefined);
  for (const p of w.proxies) p.close();
  for (const c of w.conductors) await c.stop(5_000).catch(() => undefined);
  await w.sql.end({ timeout: 1 }).catch(() => undefined);
  await w.pg.stop().catch(() => undefined);
  await w.cp.stop().catch(() => undefined);
  await rm(w.pgDir, { recursive: true, force: true }).catch(() => undefined);
}

/** A conductor spec for `serve --mode all` on both sources, with fresh ports. */
export async function allSpec(w: World, name: string, serverConfig?: string): Promise<ConductorSpec> {
  const port = () => getFreePort("127.0.0.1");
  const spec: ConductorSpec = { name, mode: "all", grpcPort: await port(), adminPort: await port(), kubeconfig: w.cp.kubeconfigPath, databaseUrl: w.databaseUrl };
  if (serverConfig !== undefined) {
    const file = join(w.pgDir, `${name}-server-config.yaml`);
    await writeFile(file, serverConfig);
    spec.extraArgs = ["--server-config", file];
  }
  return spec;
}

export async function startAll(w: World, spec: ConductorSpec): Promise<ConductorChild> {
  const c = await startConductor(spec, 90_000);
  w.conductors.push(c);
  return c;
}

/** Namespace on the hub and Maestro consumer row, so the cluster gets both sources. */
export async function prepareCluster(w: World, cluster: string): Promise<void> {
  await w.hub.createNamespace(cluster).catch((err: { code?: number }) => {
    if (err.code !== 409) throw err;
  });
  await w.maestro.ensureConsumer(cluster);
}

/** One agentsim process serving `clusters` against `grpcPort`, waiting until each is subscribed on `conductor`. */
export async function startAgents(w: World, version: AgentSimVersion, clusters: string[], grpcPort: number, conductor: ConductorChild): Promise<AgentSimHandle> {
  // --max-retries: the klusterlet's work controller requeues a failed status patch forever (rate
  // limited); agentsim's default of 10 tries would give up during an outage longer than ~15 s.
  const agent = await startAgentSim({ version, server: `127.0.0.1:${grpcPort}`, clusters, reconnectDelay: "1s", duration: "10m",
    extraArgs: ["--max-retries=100000", ...(process.env.DRILL_AGENT_VERBOSITY ? [`--v=${process.env.DRILL_AGENT_VERBOSITY}`] : [])] });
  w.agents.push(agent);
  await waitSubscribed(conductor, clusters);
  return agent;
}

export async function waitSubscribed(conductor: ConductorChild, clusters: string[], timeoutMs = 60_000): Promise<void> {
  await eventually(async () => {
    const subs = await conductor.subscribers().catch(() => []);
    return clusters.every((c) => subs.some((s) => s.clusterName === c));
  }, timeoutMs, `${clusters.join(",")} to subscribe on ${conductor.spec.name}`, 200);
}

/** Creates a ManifestWork, retrying while the API server is away (409 = an earlier attempt landed). */
export async function createWorkRetrying(w: World, cluster: string, name: string, retryForMs = 90_000): Promise<void> {
  const deadline = Date.now() + retryForMs;
  for (;;) {
    try {
      await w.hub.createWork(cluster, name);
      return;
    } catch (err) {
      if ((err as { code?: number }).code === 409) return;
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

interface AgentWork { name: string; uid: string; generation: number; deleting: boolean }

/** The agent's cache of one cluster (`list`). */
export async function agentWorks(agent: AgentSimHandle, cluster: string): Promise<AgentWork[]> {
  const reply = await agent.command({ cmd: "list", cluster });
  if (reply.ok !== true) throw new Error(`list ${cluster}: ${String(reply.error)}`);
  return (reply.works as AgentWork[] | undefined) ?? [];
}

export interface Divergence { cluster: string; missingOnAgent: string[]; extraOnAgent: string[]; staleGeneration: string[]; kubeWithoutStatus: string[]; maestroWithoutStatus: string[]; unreconciled: number }

/**
 * One look at a cluster: the agent's cache against the source of truth (the hub's ManifestWorks
 * of the namespace and the live Maestro resources of the consumer), every hub work `Applied` for
 * its generation, every resource's status written for its version (plus a StatusUpdate row), no
 * spec event left unreconciled.
 */
export async function divergence(w: World, agent: AgentSimHandle, cluster: string): Promise<Divergence> {
  const [cached, works, resources] = await Promise.all([agentWorks(agent, cluster), w.hub.listWorks(cluster), w.maestro.liveResources(cluster)]);
  const want = new Map<string, number>();
  for (const work of works) if (!work.metadata.deletionTimestamp) want.set(work.metadata.uid, work.metadata.generation ?? 1);
  for (const [id, version] of resources) want.set(id, version);
  const have = new Map(cached.filter((c) => !c.deleting).map((c) => [c.uid, c.generation]));
  const missingOnAgent = [...want.keys()].filter((u) => !have.has(u));
  const extraOnAgent = [...have.keys()].filter((u) => !want.has(u));
  const staleGeneration = [...want].filter(([u, g]) => have.has(u) && have.get(u) !== g).map(([u]) => u);
  const kubeWithoutStatus = works.filter((x) => !x.metadata.deletionTimestamp && !(hasCondition(x, "Applied")
    && x.status?.conditions?.find((c) => c.type === "Applied")?.observedGeneration === x.metadata.generation)).map((x) => x.metadata.name);
  const maestroWithoutStatus = await w.maestro.missingStatuses(cluster);
  const unreconciled = await w.maestro.unreconciled(cluster);
  return { cluster, missingOnAgent, extraOnAgent, staleGeneration, kubeWithoutStatus, maestroWithoutStatus, unreconciled };
}

const clean = (d: Divergence) => d.missingOnAgent.length + d.extraOnAgent.length + d.staleGeneration.length + d.kubeWithoutStatus.length + d.maestroWithoutStatus.length + d.unreconciled === 0;

/** Waits until every (agent, cluster) has converged; the error carries what still differs. */
export async function converge(w: World, pairs: Array<[AgentSimHandle, string]>, timeoutMs = 60_000): Promise<number> {
  const t0 = Date.now();
  let last: Divergence[] = [];
  try {
    await eventually(async () => {
      last = await Promise.all(pairs.map(([a, c]) => divergence(w, a, c)));
      return last.every(clean);
    }, timeoutMs, "convergence", 500);
  } catch (err) {
    const short = (xs: string[]) => `${xs.length}${xs.length ? ` (${xs.slice(0, 3).join(",")}…)` : ""}`;
    const detail = last.filter((d) => !clean(d)).map((d) => `${d.cluster}: missingOnAgent ${short(d.missingOnAgent)}, extraOnAgent ${short(d.extraOnAgent)}, stale ${short(d.staleGeneration)}, kubeWithoutStatus ${short(d.kubeWithoutStatus)}, maestroWithoutStatus ${short(d.maestroWithoutStatus)}, unreconciled ${d.unreconciled}`);
    // What the agents and conductors said about a few of the divergent objects.
    const ids = last.flatMap((d) => [...d.missingOnAgent, ...d.extraOnAgent, ...d.staleGeneration, ...d.kubeWithoutStatus, ...d.maestroWithoutStatus].slice(0, 3));
    const said = ids.map((id) => `--- ${id}:\n${[...w.agents.flatMap((a) => a.events.filter((e) => e.event !== "reply" && JSON.stringify(e).includes(id)).map((e) => `agentsim ${a.version}: ${JSON.stringify(e)}`)),
      ...w.conductors.flatMap((c) => c.lines.filter((l) => l.includes(id)).map((l) => `${c.spec.name}: ${l.slice(0, 400)}`))].slice(-25).join("\n")}`);
    const ready = await Promise.all(w.conductors.filter((c) => c.running).map(async (c) => `--- ${c.spec.name} /readyz: ${JSON.stringify(await c.readyz())}`));
    throw new Error(`${(err as Error).message}: ${detail.join("; ")}\n${said.join("\n")}\n${ready.join("\n")}`);
  }
  return Date.now() - t0;
}

/** Expected totals: `kube` works and `maestro` resources per cluster, from the source of truth. */
export async function totals(w: World, cluster: string): Promise<{ kube: number; maestro: number }> {
  return { kube: (await w.hub.listWorks(cluster)).length, maestro: (await w.maestro.liveResources(cluster)).size };
}

/** Errors the agents printed (sdk-go gave up on something). */
export function agentErrors(w: World): unknown[] {
  return w.agents.flatMap((a) => a.events.filter((e) => e.event === "error"));
}

/** Failure diagnostics: conductor tails, agent lines. */
export function dump(w: World | undefined): void {
  if (!w) return;
  const parts = w.conductors.map((c) => c.tail(Number(process.env.DRILL_LOG_TAIL ?? 40)));
  for (const a of w.agents) parts.push(`--- agentsim ${a.version} (pid ${a.pid}):\n${a.events.filter((e) => e.event !== "reply").slice(-20).map((e) => JSON.stringify(e)).join("\n")}\n${a.stderr.slice(-20).join("\n")}`);
  console.error(`\n===== drill failure diagnostics =====\n${parts.join("\n")}\n===== end =====`);
}

/**
 * A TCP forwarder standing in for a Service / load balancer in front of conductor replicas: new
 * connections go to the current target; `retarget` switches it (existing connections stay).
 */
export class Proxy {
  private server: net.Server;
  private sockets = new Set<net.Socket>();
  port = 0;

  constructor(public target: number) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, "127.0.0.1");
      this.sockets.add(client).add(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.pipe(upstream).pipe(client);
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function log(msg: string): void {
  console.info(`[drill ${new Date().toISOString()}] ${msg}`);
}

/** What {@link useTwoAgentDrill} sets up; its fields are filled in `beforeAll`. */
export interface TwoAgentDrill {
  w: World;
  conductor: ConductorChild;
  /** (agent, cluster): a v1.3 agent on the first cluster, a v1.1.0 agent on the second. */
  readonly pairs: Array<[AgentSimHandle, string]>;
}

/**
 * Registers the suite hooks of the restart drills: one world, one `--mode all` conductor with both
 * sources, two prepared clusters with a v1.3 and a v1.1.0 agent; the world is dumped when a test
 * fails and stopped after the suite.
 */
export function useTwoAgentDrill(name: string, clusters: readonly [string, string]): TwoAgentDrill {
  const drill = { pairs: [] as Array<[AgentSimHandle, string]> } as TwoAgentDrill;
  beforeAll(async () => {
    const t0 = Date.now();
    drill.w = await startWorld(name);
    drill.conductor = await startAll(drill.w, await allSpec(drill.w, "all"));
    for (const c of clusters) await prepareCluster(drill.w, c);
    const port = drill.conductor.spec.grpcPort;
    drill.pairs.push(
      [await startAgents(drill.w, "v1.3", [clusters[0]], port, drill.conductor), clusters[0]],
      [await startAgents(drill.w, "v1.1.0", [clusters[1]], port, drill.conductor), clusters[1]],
    );
    log(`${name}: world ready in ${Date.now() - t0} ms`);
  }, 180_000);
  afterAll(() => stopWorld(drill.w), 120_000);
  beforeEach((ctx) => {
    ctx.onTestFailed(() => dump(drill.w));
  });
  return drill;
}
