import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
    expect(csr.signerName).toBe("open-cluster-management.io/grpc");
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

// The join flow of OCM's gRPC registration (hub-services.md §4): the agent creates its cluster and a CSR for
// CN=system:open-cluster-management:<cluster>:<agent>; the hub approves and signs it; the agent picks up the
// certificate through its CSR informer; the hub sets the cluster's conditions and the agent sees them.
const GRPC_SIGNER = "open-cluster-management.io/grpc";
const CLUSTER_LABEL = "open-cluster-management.io/cluster-name";

describe.each(AGENTSIM_VERSIONS)("agentsim %s join flow", (version) => {
  let server: AgentSimRefServerHandle | undefined;
  let sim: AgentSimHandle | undefined;
  let certDir: string | undefined;

  afterAll(async () => {
    expect(await sim?.stop()).toEqual({ code: 0, signal: null });
    await server?.stop();
    // The only error lines are those of the CSR the test denies.
    expect(sim?.events.filter((e) => e.event === "error" && e.cluster !== "denied1")).toEqual([]);
    if (certDir) await rm(certDir, { recursive: true, force: true });
  });

  it("creates a gRPC-signer CSR, receives the signed certificate, then the hub's Joined and Available", async () => {
    const cluster = "join1";
    certDir = await mkdtemp(join(tmpdir(), "agentsim-join-"));
    server = await startAgentSimRefServer({ heartbeatInterval: "1s", duration: "1m", certDuration: "1h" });
    sim = await startAgentSim({
      version,
      server: server.address,
      clusters: [cluster],
      mode: "registration",
      clusterStatusPatch: false,
      csrWait: "30s",
      certDir,
      leaseInterval: "300ms",
      reconnectDelay: "300ms",
      duration: "1m",
    });
    const subject = {
      commonName: `system:open-cluster-management:${cluster}:agentsim`,
      organizations: [`system:open-cluster-management:${cluster}`, "system:open-cluster-management:managed-clusters"],
    };

    // 1. The agent creates its cluster and the CSR; the hub sees the klusterlet's CSR shape.
    await server.waitFor(is("managedcluster-created", { cluster }));
    const created = await server.waitFor(is("csr-created", { cluster }));
    expect(created).toMatchObject({
      signerName: GRPC_SIGNER,
      usages: ["digital signature", "key encipherment", "client auth"],
      labels: { [CLUSTER_LABEL]: cluster },
      ...subject,
    });
    const csrName = String(created.name);
    expect(csrName).toMatch(new RegExp(`^${cluster}-[a-z0-9]{5}$`));
    expect(await sim.waitFor(is("csr-create-published", { cluster }))).toMatchObject({ name: csrName, ...subject });
    // It waits: nothing is approved or joined yet, and with --cluster-status-patch=false it reports no status.
    await sim.waitFor(is("managedcluster-added", { cluster }));
    const early = /^(csr-approved|certificate-received|managedcluster-(joined|available))$/;
    expect(sim.events.filter((e) => early.test(e.event))).toEqual([]);

    // 2. The hub approves, then signs (two updates, like OCM's approving and signing controllers).
    const approved = await server.command({ cmd: "approve-csr", cluster });
    expect(approved, JSON.stringify(approved)).toMatchObject({ ok: true });
    const signed = (approved.csrs as Record<string, unknown>[])[0]!;
    expect(signed).toMatchObject({ name: csrName, ...subject });

    // 3. The agent sees the approval and the certificate through its CSR informer.
    expect(await sim.waitFor(is("csr-approved", { cluster, name: csrName }))).toMatchObject({
      reason: "AgentSimRefServerApproved",
    });
    const cert = await sim.waitFor(is("certificate-received", { cluster, name: csrName }));
    expect(cert).toMatchObject({
      ...subject,
      issuer: "agentsim-refserver-ca",
      serial: signed.serial,
      notAfter: signed.notAfter,
      subjectMatches: true,
      clientAuth: true,
      chainLength: 1,
    });
    const notAfter = Date.parse(String(cert.notAfter));
    expect(notAfter).toBeGreaterThan(Date.now() + 50 * 60_000);
    expect(notAfter).toBeLessThanOrEqual(Date.now() + 61 * 60_000);
    // The written pair: the certificate belongs to the agent's key and chains to the hub's test CA.
    const x509 = new X509Certificate(await readFile(String(cert.certFile)));
    expect(x509.checkPrivateKey(createPrivateKey(await readFile(String(cert.keyFile))))).toBe(true);
    const ca = await server.command({ cmd: "ca" });
    expect(x509.verify(new X509Certificate(String(ca.pem)).publicKey)).toBe(true);
    expect(x509.subject).toContain(`CN=${subject.commonName}`);

    // 4. The hub accepts the cluster and sets Joined and Available; the agent reports each as it arrives.
    const set = await server.command({
      cmd: "set-cluster-conditions",
      cluster,
      conditions: [
        { type: "HubAcceptedManagedCluster", status: "True", reason: "HubClusterAdminAccepted" },
        { type: "ManagedClusterJoined", status: "True", reason: "ManagedClusterJoined" },
      ],
    });
    expect(set, JSON.stringify(set)).toMatchObject({ ok: true });
    expect(await sim.waitFor(is("managedcluster-accepted", { cluster }))).toMatchObject({
      reason: "HubClusterAdminAccepted",
    });
    expect(await sim.waitFor(is("managedcluster-joined", { cluster }))).toMatchObject({
      condition: "ManagedClusterJoined",
      reason: "ManagedClusterJoined",
    });
    expect(sim.events.some(is("managedcluster-available", { cluster }))).toBe(false);
    expect(
      (
        await server.command({
          cmd: "set-cluster-conditions",
          cluster,
          conditions: [{ type: "ManagedClusterConditionAvailable", status: "True", reason: "ManagedClusterAvailable" }],
        })
      ).ok,
    ).toBe(true);
    const available = await sim.waitFor(is("managedcluster-available", { cluster }));
    expect(available).toMatchObject({
      condition: "ManagedClusterConditionAvailable",
      reason: "ManagedClusterAvailable",
    });
    // Each transition is reported once.
    expect(sim.events.filter(is("managedcluster-joined", { cluster }))).toHaveLength(1);

    // 5. The lease keeps being renewed after the join, and the agent never patched the cluster status itself.
    const leasesBefore = server.events.filter(is("lease-updated", { cluster })).length;
    await server.waitFor(
      () => server!.events.filter(is("lease-updated", { cluster })).length >= leasesBefore + 2,
      10_000,
    );
    expect(server.events.some(is("managedcluster-status", { cluster }))).toBe(false);
  });

  it("reports a denied CSR as csr-denied and an error line", async () => {
    const cluster = "denied1";
    expect((await sim!.command({ cmd: "start-cluster", cluster })).ok).toBe(true);
    const created = await server!.waitFor(is("csr-created", { cluster }));
    expect((await server!.command({ cmd: "deny-csr", cluster, reason: "NotAllowed" })).ok).toBe(true);
    expect(await sim!.waitFor(is("csr-denied", { cluster, name: created.name }))).toMatchObject({
      reason: "NotAllowed",
    });
    const err = await sim!.waitFor(is("error", { cluster }));
    expect(String(err.message)).toMatch(/Denied/);
    expect(sim!.events.some(is("certificate-received", { cluster }))).toBe(false);
  });
});
