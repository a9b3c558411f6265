/**
 * The end-to-end scenarios, registered once per deployment: the real `conductor` binary, either
 * one process (`--mode all`) or the split deployment (work-service, db-service,
 * consumer-controller and the router in front of them), on a real hub API server and a real
 * PostgreSQL, with real sdk-go agents of every generation.
 */
import {
  AGENTSIM_VERSIONS,
  ConductorChild,
  Hub,
  createDatabase,
  hasCondition,
  startConductor,
  eventually,
  getFreePort,
  startAgentSim,
  startControlPlane,
  startPostgres,
  type AgentSimEvent,
  type AgentSimHandle,
  type AgentSimVersion,
  type ConductorSpec,
  type ControlPlane,
  type PostgresServer,
} from "@ocm-conductor/test-harness";
import type { Sql } from "postgres";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Maestro, SOURCE_CLIENT, connect } from "./maestro.js";

export type DeploymentKind = "single" | "split";

interface World {
  cp: ControlPlane;
  pg: PostgresServer;
  databaseUrl: string;
  sql: Sql;
  maestro: Maestro;
  hub: Hub;
  /** Every conductor process of the deployment, by name. */
  conductors: Map<string, ConductorChild>;
  /** The process agents connect to (`all`, or the router). */
  front: ConductorChild;
  /** Split only: what the db-service was started with, for its restart. */
  dbServiceSpec?: ConductorSpec;
  agents: AgentSimHandle[];
  /** ManifestWorks the current test created (cluster, name), for failure diagnostics. */
  works: Array<[string, string]>;
}

const W = {} as World;

/** Prints what a failure needs: each conductor's output tail, its live streams, the agents' lines, the works involved. */
async function dumpLogs(): Promise<void> {
  const parts = [...W.conductors.values()].map((c) => c.tail(Number(process.env.E2E_LOG_TAIL ?? 60)));
  const streams = W.front?.running ? await W.front.subscribers().then((s) => JSON.stringify(s), (e: Error) => e.message) : "not running";
  parts.push(`--- live streams of ${W.front?.spec.name}: ${streams}`);
  for (const a of W.agents) {
    parts.push(`--- agentsim ${a.version} (pid ${a.pid}), last lines:\n${a.events.slice(-40).map((e) => JSON.stringify(e)).join("\n")}\n${a.stderr.slice(-Number(process.env.E2E_AGENT_TAIL ?? 30)).join("\n")}`);
  }
  for (const [cluster, name] of W.works) {
    const w = await W.hub.getWork(cluster, name).then((x) => (x === undefined ? "gone" : JSON.stringify({ metadata: x.metadata, status: x.status })), (e: Error) => e.message);
    parts.push(`--- hub ManifestWork ${cluster}/${name}: ${w}`);
  }
  console.error(`\n===== e2e failure diagnostics =====\n${parts.join("\n")}\n===== end of diagnostics =====`);
}

async function startDeployment(kind: DeploymentKind): Promise<void> {
  W.conductors = new Map();
  W.agents = [];
  const kubeconfig = W.cp.kubeconfigPath;
  const port = () => getFreePort("127.0.0.1");
  const add = (c: ConductorChild) => {
    W.conductors.set(c.spec.name, c);
    return c;
  };
  if (kind === "single") {
    W.front = add(await startConductor({ name: "all", mode: "all", grpcPort: await port(), adminPort: await port(), kubeconfig, databaseUrl: W.databaseUrl }));
    return;
  }
  const work: ConductorSpec = { name: "work-service", mode: "work-service", grpcPort: await port(), adminPort: await port(), kubeconfig };
  const db: ConductorSpec = { name: "db-service", mode: "db-service", grpcPort: await port(), adminPort: await port(), databaseUrl: W.databaseUrl };
  W.dbServiceSpec = db;
  // The db-service applies Maestro's schema; the consumer controller starts once it is there.
  const started = await Promise.allSettled([startConductor(work), startConductor(db)]);
  for (const s of started) if (s.status === "fulfilled") add(s.value);
  for (const s of started) if (s.status === "rejected") throw s.reason;
  add(await startConductor({ name: "consumer-controller", mode: "consumer-controller", grpcPort: await port(), adminPort: await port(), kubeconfig, databaseUrl: W.databaseUrl }));
  W.front = add(await startConductor({
    name: "router", mode: "router", grpcPort: await port(), adminPort: await port(),
    workServiceUrl: `http://127.0.0.1:${work.grpcPort}`, dbServiceUrl: `http://127.0.0.1:${db.grpcPort}`,
  }));
}

async function startAgent(version: AgentSimVersion, cluster: string): Promise<AgentSimHandle> {
  const agent = await startAgentSim({ version, server: `127.0.0.1:${W.front.spec.grpcPort}`, clusters: [cluster], reconnectDelay: "1s", duration: "5m",
    ...(process.env.E2E_AGENT_VERBOSITY ? { extraArgs: [`--v=${process.env.E2E_AGENT_VERBOSITY}`] } : {}) });
  W.agents.push(agent);
  await eventually(async () => (await W.front.subscribers()).some((s) => s.clusterName === cluster), 30_000, `${cluster}'s agent to subscribe`, 100);
  return agent;
}

/** Stops an agent; its output stays in `W.agents` until the next test, for failure diagnostics. */
async function stopAgent(agent: AgentSimHandle): Promise<void> {
  await agent.stop(5_000);
}

/** `agent.waitFor` a line `event` about `uid`; the error names what was awaited. */
function agentLine(agent: AgentSimHandle, event: string, uid: string, what: string, timeoutMs = 30_000): Promise<AgentSimEvent> {
  return agent.waitFor((e) => e.event === event && e.uid === uid, timeoutMs).catch((err: Error) => {
    throw new Error(`waiting for agentsim ${agent.version} ${event} of ${what} ${uid}: ${err.message}`);
  });
}

/** A DNS-label cluster name per deployment and purpose. */
const clusterName = (kind: DeploymentKind, what: string) => `e2e-${kind}-${what.replaceAll(".", "-")}`.toLowerCase();

export function registerSuite(kind: DeploymentKind): void {
  beforeAll(async () => {
    const t0 = Date.now();
    W.conductors = new Map();
    W.agents = [];
    [W.cp, W.pg] = await Promise.all([startControlPlane(), startPostgres()]);
    W.hub = new Hub(W.cp.kubeConfig);
    W.databaseUrl = await createDatabase(W.pg, `e2e_${kind}`);
    await startDeployment(kind);
    W.sql = connect(W.databaseUrl);
    W.maestro = new Maestro(W.sql);
    // The schema is the conductor's doing (ensureSchema), not the test's.
    const tables = (await W.sql<Array<{ t: string }>>`select table_name as t from information_schema.tables where table_schema = 'public'`).map((r) => r.t);
    expect(tables).toEqual(expect.arrayContaining(["consumers", "resources", "events", "status_events"]));
    console.info(`e2e ${kind}: peers and conductor(s) ready in ${Date.now() - t0} ms`);
  }, 180_000);

  afterAll(async () => {
    for (const a of W.agents ?? []) await a.stop(2_000).catch(() => undefined);
    // The agent-facing process first, then the backends.
    const conductors = [...(W.conductors?.values() ?? [])].reverse();
    for (const c of conductors) await c.stop().catch(() => undefined);
    await W.sql?.end({ timeout: 1 }).catch(() => undefined);
    await W.pg?.stop();
    await W.cp?.stop();
  }, 120_000);

  beforeEach((ctx) => {
    W.agents = [];
    W.works = [];
    ctx.onTestFailed(() => dumpLogs());
  });

  describe.each(AGENTSIM_VERSIONS)(`${kind}: sdk-go %s work agent`, (version) => {
    it("receives a hub ManifestWork and a Maestro resource, reports both statuses, and completes both deletions", async () => {
      const cluster = clusterName(kind, version);
      await W.hub.createNamespace(cluster);
      await W.maestro.ensureConsumer(cluster);
      const agent = await startAgent(version, cluster);
      try {
        // Both sources, created together.
        W.works.push([cluster, "work-kube"]);
        const work = await W.hub.createWork(cluster, "work-kube");
        const resourceId = await W.maestro.create(cluster);
        const [kubeAdded, maestroAdded] = await Promise.all([agentLine(agent, "work-added", work.metadata.uid, "ManifestWork"), agentLine(agent, "work-added", resourceId, "Maestro resource")]);
        expect(kubeAdded.name).toBe("work-kube");
        expect(maestroAdded.generation).toBe(1);

        // Statuses: on the hub object; in resources.status plus a StatusUpdate row.
        const hubWork = await eventually(async () => {
          const w = await W.hub.getWork(cluster, "work-kube");
          return hasCondition(w, "Applied") ? w : undefined;
        }, 30_000, "Applied on the hub ManifestWork", 250);
        expect(hubWork?.status?.resourceStatus?.manifests).toHaveLength(1);
        const row = await eventually(async () => {
          const r = await W.maestro.resource(resourceId);
          return r?.status !== null && r?.status !== undefined ? r : undefined;
        }, 30_000, "resources.status of the Maestro resource", 250);
        expect(row.status).toMatchObject({ resourceid: resourceId });
        expect(String(row.status?.["resourceversion"])).toBe("1");
        expect(JSON.stringify(row.status)).toContain('"Applied"');
        await eventually(async () => (await W.maestro.statusEvents(resourceId, "StatusUpdate")).length > 0, 30_000, "a StatusUpdate row", 250);

        // Deletes: the hub work is gone after the agent confirms; the resource row is hard-deleted
        // after a StatusDelete event.
        await W.hub.deleteWork(cluster, "work-kube");
        await W.maestro.markDeleting(resourceId);
        await Promise.all([agentLine(agent, "work-deleted", work.metadata.uid, "ManifestWork"), agentLine(agent, "work-deleted", resourceId, "Maestro resource")]);
        await eventually(async () => (await W.hub.getWork(cluster, "work-kube")) === undefined, 30_000, "the hub ManifestWork to be gone", 250);
        await eventually(async () => (await W.maestro.resource(resourceId)) === undefined, 30_000, "the hard delete of the resource row", 250);
        const deletes = await W.maestro.statusEvents(resourceId, "StatusDelete");
        expect(deletes).toHaveLength(1);
        expect(deletes[0]?.resource_source).toBe(SOURCE_CLIENT);
        expect(agent.events.filter((e) => e.event === "error")).toEqual([]);
      } finally {
        await stopAgent(agent);
      }
    });
  });

  it(`${kind}: the consumer controller gives a joined ManagedCluster a Maestro consumer`, async () => {
    const joined = clusterName(kind, "joined");
    const pending = clusterName(kind, "pending");
    await W.hub.createManagedCluster(pending, false);
    await W.hub.createManagedCluster(joined, true);
    await eventually(() => W.maestro.hasConsumer(joined), 30_000, `a consumers row for ${joined}`, 250);
    expect(await W.maestro.hasConsumer(pending)).toBe(false);
  });

  if (kind === "split") {
    it("split: with the db-service killed the kube route keeps working and the router is not ready; after its restart the Maestro resource written meanwhile arrives", async () => {
      const cluster = clusterName(kind, "outage");
      await W.hub.createNamespace(cluster);
      await W.maestro.ensureConsumer(cluster);
      const agent = await startAgent("v1.3", cluster);
      const router = W.front;
      try {
        const db = W.conductors.get("db-service")!;
        await db.kill9();
        expect(db.running).toBe(false);

        const notReady = await eventually(async () => {
          const r = await router.readyz();
          return r.status === 503 && /\[-\]db-service /.test(r.body) ? r : undefined;
        }, 30_000, "the router's /readyz to report the db-service not ready", 250);
        expect(notReady.body).toMatch(/\[\+\]work-service /); // only the db-service part fails

        // Maestro writes during the outage; a hub ManifestWork still arrives.
        const resourceId = await W.maestro.create(cluster);
        W.works.push([cluster, "work-during-outage"]);
        const work = await W.hub.createWork(cluster, "work-during-outage");
        await agentLine(agent, "work-added", work.metadata.uid, "ManifestWork");
        await eventually(async () => hasCondition(await W.hub.getWork(cluster, "work-during-outage"), "Applied"), 30_000, "Applied on the hub work during the outage", 250);
        await new Promise((r) => setTimeout(r, 2_000));
        expect(agent.events.some((e) => e.event === "work-added" && e.uid === resourceId)).toBe(false);
        expect(await W.maestro.unreconciledEvents(resourceId)).toBe(1); // nobody took its Create event

        // The db-service comes back on the same ports.
        const restarted = await startConductor(W.dbServiceSpec!);
        W.conductors.set("db-service", restarted);
        await agentLine(agent, "work-added", resourceId, "Maestro resource", 60_000);
        await router.waitReady(60_000);
        await eventually(async () => (await W.maestro.resource(resourceId))?.status != null, 30_000, "the status of the resource written during the outage", 250);
        await eventually(async () => (await W.maestro.unreconciledEvents(resourceId)) === 0, 30_000, "the Create event to be reconciled", 250);
        expect(agent.events.filter((e) => e.event === "error")).toEqual([]);
      } finally {
        await stopAgent(agent);
      }
    });
  }

}
