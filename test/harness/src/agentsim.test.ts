import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  AGENTSIM_VERSIONS,
  agentSimBinary,
  startAgentSim,
  startAgentSimRefServer,
  type AgentSimEvent,
  type AgentSimHandle,
  type AgentSimRefServerHandle,
} from "./agentsim.js";

// Self-test of agentsim (all three sdk-go builds) against a known-good peer: sdk-go's own gRPC broker in the
// reference server. Needs the binaries from test/peers/agentsim/build.sh.

const CLEANUP_FINALIZER = "cluster.open-cluster-management.io/manifest-work-cleanup";

interface Condition {
  type: string;
  status: string;
  observedGeneration?: number;
}

function conditions(e: AgentSimEvent): Condition[] {
  return Array.isArray(e.conditions) ? (e.conditions as Condition[]) : [];
}

function hasCondition(e: AgentSimEvent, type: string, status: string, observedGeneration?: number): boolean {
  return conditions(e).some(
    (c) =>
      c.type === type &&
      c.status === status &&
      (observedGeneration === undefined || c.observedGeneration === observedGeneration),
  );
}

function is(event: string, fields: Record<string, unknown> = {}): (e: AgentSimEvent) => boolean {
  return (e) => e.event === event && Object.entries(fields).every(([k, v]) => e[k] === v);
}

function subscribed(cluster: string, yes: boolean): (e: AgentSimEvent) => boolean {
  return (e) =>
    e.event === "subscribers" && Array.isArray(e.clusters) && (e.clusters as string[]).includes(cluster) === yes;
}

function resyncRequests(server: AgentSimRefServerHandle, cluster: string): AgentSimEvent[] {
  return server.events.filter((e) => e.event === "resync-request" && e.cluster === cluster);
}

function resourceIDs(e: AgentSimEvent): string[] {
  return Array.isArray(e.versions) ? (e.versions as { resourceID: string }[]).map((v) => v.resourceID) : [];
}

describe("agentSimBinary", () => {
  it("rejects an unknown version", async () => {
    await expect(agentSimBinary("v9.9" as never)).rejects.toThrow(/unknown agentsim version/);
  });

  it("names the build script when the binary is missing", async () => {
    const saved = process.env.OCM_TESTBIN_DIR;
    process.env.OCM_TESTBIN_DIR = "/nonexistent/agentsim-test";
    try {
      await expect(agentSimBinary("v1.3")).rejects.toThrow(/build\.sh/);
    } finally {
      if (saved === undefined) delete process.env.OCM_TESTBIN_DIR;
      else process.env.OCM_TESTBIN_DIR = saved;
    }
  });
});

function connections(server: AgentSimRefServerHandle, event: "connection-opened" | "connection-closed"): number {
  return server.events.filter((e) => e.event === event).length;
}

describe.each(AGENTSIM_VERSIONS)("agentsim %s against sdk-go's broker", (version) => {
  const cluster = `c-${version.replace(/\W/g, "")}`;
  const other = `${cluster}-b`;
  let server: AgentSimRefServerHandle;
  let sim: AgentSimHandle;

  beforeAll(async () => {
    server = await startAgentSimRefServer({ heartbeatInterval: "1s", duration: "3m" });
    sim = await startAgentSim({
      version,
      server: server.address,
      clusters: [cluster, other],
      reconnectDelay: "300ms",
      duration: "3m",
    });
    await server.waitFor(subscribed(cluster, true), 15_000);
    await server.waitFor(subscribed(other, true), 15_000);
  });

  afterAll(async () => {
    const simExit = await sim?.stop();
    const serverExit = await server?.stop();
    expect(simExit, JSON.stringify(sim.events.slice(-6)) + sim.stderr.slice(-10).join("\n")).toEqual({
      code: 0,
      signal: null,
    });
    expect(serverExit).toEqual({ code: 0, signal: null });
    expect(sim.events.filter((e) => e.event === "error")).toEqual([]);
  });

  it("links the sdk-go version it is named for", () => {
    const sdk = String(sim.ready?.sdk);
    expect(version === "v1.3" ? sdk.startsWith("v1.3.") : sdk === version).toBe(true);
    expect(sim.ready?.clusters).toEqual([cluster, other]);
  });

  it("gives every simulated cluster its own connection", () => {
    const opened = server.events.filter((e) => e.event === "connection-opened");
    expect(opened).toHaveLength(2);
    expect(new Set(opened.map((e) => e.remote)).size).toBe(2);
  });

  it("receives a created work, publishes its status and completes a delete", async () => {
    const created = await server.command({ cmd: "create", cluster, name: "w1", manifests: 2 });
    expect(created.ok).toBe(true);
    const uid = created.uid as string;

    const added = await sim.waitFor(is("work-added", { uid }));
    expect(added).toMatchObject({ cluster, name: "w1", generation: 1, deleting: false, manifests: 2 });
    await sim.waitFor(is("finalizer-added", { uid }));
    await sim.waitFor(is("status-published", { uid, generation: 1 }));

    const status = await server.waitFor(
      (e) => is("status", { uid, known: true })(e) && hasCondition(e, "Applied", "True", 1),
    );
    expect(hasCondition(status, "Available", "True", 1)).toBe(true);
    expect(status.manifests).toBe(2);
    expect(status.source).toBe(`${cluster}-work-agent`);

    const listed = await sim.command({ cmd: "list", cluster });
    expect(listed.ok).toBe(true);
    expect(listed.works).toEqual([
      expect.objectContaining({ uid, name: "w1", generation: 1, deleting: false, finalizers: [CLEANUP_FINALIZER] }),
    ]);

    const deleted = await server.command({ cmd: "delete", cluster, uid });
    expect(deleted.ok).toBe(true);
    await sim.waitFor(is("work-updated", { uid, deleting: true }));
    await sim.waitFor(is("finalizers-removed", { uid }));
    await sim.waitFor(is("work-deleted", { uid }), 15_000);
    const gone = await server.waitFor(is("deleted", { uid }), 15_000);
    expect(gone.cluster).toBe(cluster);
    // The agent reported Deleted=True in the status that made the server forget the work.
    expect(server.events.some((e) => is("status", { uid })(e) && hasCondition(e, "Deleted", "True"))).toBe(true);

    const after = await sim.command({ cmd: "list", cluster });
    expect(after.works).toEqual([]);
  });

  it("publishes the conditions of a publish-status command", async () => {
    const created = await server.command({ cmd: "create", cluster, name: "w2", manifests: 1 });
    const uid = created.uid as string;
    await server.waitFor((e) => is("status", { uid })(e) && hasCondition(e, "Applied", "True", 1));
    // The agent's cache holds the automatic status once its status-published line is out. sdk-go v1.1 has no
    // optimistic concurrency on local status patches, so an earlier command could be overwritten.
    await sim.waitFor(is("status-published", { uid, origin: "auto" }));

    const reply = await sim.command({
      cmd: "publish-status",
      cluster,
      uid,
      conditions: [{ type: "Available", status: "False", reason: "ProbeFailed", message: "simulated" }],
    });
    expect(reply, JSON.stringify(reply)).toMatchObject({ ok: true, name: "w2", generation: 1 });
    const status = await server.waitFor((e) => is("status", { uid })(e) && hasCondition(e, "Available", "False", 1));
    expect(hasCondition(status, "Applied", "True", 1)).toBe(true);

    const bad = await sim.command({
      cmd: "publish-status",
      cluster,
      uid,
      conditions: [{ type: "X", status: "Maybe" }],
    });
    expect(bad.ok).toBe(false);
    expect(String(bad.error)).toMatch(/True, False or Unknown/);
  });

  it("reports its cache in the resync after start-cluster with keepStore, and an empty one without", async () => {
    const uid = (await server.command({ cmd: "list" })).works as { uid: string; name: string }[];
    const w2 = uid.find((w) => w.name === "w2");
    expect(w2).toBeDefined();

    const closedBefore = connections(server, "connection-closed");
    const stopped = await sim.command({ cmd: "stop-cluster", cluster });
    expect(stopped).toMatchObject({ ok: true, works: 1 });
    await sim.waitFor(is("cluster-stopped", { cluster }));
    await server.waitFor(subscribed(cluster, false), 10_000);
    // stop-cluster closes that cluster's connection (and only that one: the other cluster stays subscribed).
    await server.waitFor(() => connections(server, "connection-closed") === closedBefore + 1, 10_000);
    expect(server.events.filter((e) => e.event === "subscribers").at(-1)?.clusters).toEqual([other]);

    let before = resyncRequests(server, cluster).length;
    expect((await sim.command({ cmd: "start-cluster", cluster, keepStore: true })).ok).toBe(true);
    const seeded = await sim.waitFor(is("work-added", { uid: w2!.uid, seeded: true }));
    expect(seeded.generation).toBe(1);
    const kept = await server.waitFor(
      (e) => is("resync-request", { cluster })(e) && resyncRequests(server, cluster).indexOf(e) >= before,
      15_000,
    );
    expect(resourceIDs(kept)).toEqual([w2!.uid]);

    expect((await sim.command({ cmd: "stop-cluster", cluster })).ok).toBe(true);
    await server.waitFor(subscribed(cluster, false), 10_000);
    before = resyncRequests(server, cluster).length;
    const addedBefore = sim.events.length;
    expect((await sim.command({ cmd: "start-cluster", cluster })).ok).toBe(true);
    const fresh = await server.waitFor(
      (e) => is("resync-request", { cluster })(e) && resyncRequests(server, cluster).indexOf(e) >= before,
      15_000,
    );
    expect(resourceIDs(fresh)).toEqual([]);
    // The broker's resync response brings the work back into the fresh cache.
    const readded = await sim.waitFor(
      (e) => is("work-added", { uid: w2!.uid })(e) && sim.events.indexOf(e) >= addedBefore,
      15_000,
    );
    expect(readded.seeded).toBeUndefined();
  });

  it("answers bad commands with ok:false", async () => {
    expect(await sim.command({ cmd: "no-such-command" })).toMatchObject({ ok: false });
    expect(await sim.command({ cmd: "list", cluster: "not-running" })).toMatchObject({ ok: false });
    expect(await sim.command({ cmd: "start-cluster", cluster })).toMatchObject({ ok: false });
  });
});

describe.each(AGENTSIM_VERSIONS)("agentsim %s --server-healthiness-timeout", (version) => {
  let server: AgentSimRefServerHandle | undefined;
  let sim: AgentSimHandle | undefined;

  afterAll(async () => {
    await sim?.stop();
    await server?.stop();
  });

  it("reconnects and resyncs again when the server sends no heartbeats", async () => {
    const cluster = "hb";
    server = await startAgentSimRefServer({ heartbeatDisabled: true, duration: "1m" });
    sim = await startAgentSim({
      version,
      server: server.address,
      clusters: [cluster],
      reconnectDelay: "200ms",
      serverHealthinessTimeout: "1s",
      duration: "1m",
    });
    // One resync per (re)subscription: three within 15 s need at least two heartbeat-timeout reconnects.
    await server.waitFor(() => resyncRequests(server!, cluster).length >= 3, 15_000);
  });
});

describe.each(AGENTSIM_VERSIONS)("agentsim %s --mode registration", (version) => {
  let server: AgentSimRefServerHandle | undefined;
  let sim: AgentSimHandle | undefined;

  afterAll(async () => {
    expect(await sim?.stop()).toEqual({ code: 0, signal: null });
    await server?.stop();
    expect(sim?.events.filter((e) => e.event === "error")).toEqual([]);
  });

  it("registers, creates a CSR and an event, reports cluster and addon status, renews the lease", async () => {
    const cluster = "reg1";
    server = await startAgentSimRefServer({ heartbeatInterval: "1s", duration: "1m" });
    sim = await startAgentSim({
      version,
      server: server.address,
      clusters: [cluster],
      mode: "registration",
      leaseInterval: "300ms",
      reconnectDelay: "300ms",
      duration: "1m",
    });
    const created = await server.waitFor(is("managedcluster-created", { cluster }));
    expect(created.hubAcceptsClient).toBe(true);
    const csr = await server.waitFor(is("csr-created", { cluster }));
    expect(csr.signerName).toBe("kubernetes.io/kube-apiserver-client");
    expect(csr.requestBytes).toBeGreaterThan(100);
    expect((await server.waitFor(is("event-created", { cluster }))).reason).toBe("AgentSimStarted");

    // The agent patches status only after the hub sent the ManagedCluster back.
    await sim.waitFor(is("managedcluster-added", { cluster }));
    const status = await server.waitFor(is("managedcluster-status", { cluster }));
    expect(hasCondition(status, "ManagedClusterConditionAvailable", "True")).toBe(true);
    await sim.waitFor(is("managedcluster-status-published", { cluster }));

    // Lease renewals of the hub-created lease reach the hub with increasing renew times.
    await server.waitFor(() => server!.events.filter(is("lease-updated", { cluster })).length >= 3, 10_000);
    const renewals = server.events.filter(is("lease-updated", { cluster })).map((e) => String(e.renewTime));
    expect([...renewals].sort()).toEqual(renewals);
    expect(new Set(renewals).size).toBe(renewals.length);

    // The addon client speaks v1alpha1 up to sdk-go v1.2.0 and v1beta1 from v1.3.
    const addonVersion = `addon.open-cluster-management.io/${version === "v1.3" ? "v1beta1" : "v1alpha1"}`;
    const addonStatus = await server.waitFor(is("addon-status", { cluster, name: "agentsim-addon" }));
    expect(addonStatus.apiVersion).toBe(addonVersion);
    expect(hasCondition(addonStatus, "Available", "True")).toBe(true);
    expect((await sim.waitFor(is("addon-status-published", { cluster }))).apiVersion).toBe(addonVersion);

    // All registration clients of a cluster share one GRPCOptions (one dialer), as in the klusterlet's gRPC
    // driver. The dialer reuses its cached connection only while it is Connecting or Ready, and a new grpc-go
    // ClientConn starts Idle, so clients built back to back may each open one: at most one per client (5).
    const opened = connections(server, "connection-opened");
    expect(opened).toBeGreaterThanOrEqual(1);
    expect(opened).toBeLessThanOrEqual(5);
    // No work agent in this mode.
    expect(await sim.command({ cmd: "list", cluster })).toMatchObject({ ok: false });
  });
});
