/**
 * Real sdk-go agents (agentsim v1.1.0, v1.2.0, v1.3) with a hub-issued client certificate against the
 * conductor with TLS, authentication and authorization (issue #7): an agent of cluster A is served
 * on cluster A and refused on cluster B. Also shows what each generation sees when refused.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificatesV1Api, CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { HubAuth, KubeHubReviewer, createAuthInterceptor } from "@ocm-conductor/hub-auth";
import { DataTypes } from "@ocm-conductor/protocol";
import { Broker, MemoryWorkBackend } from "@ocm-conductor/router";
import { AGENTSIM_VERSIONS, startAgentSim, startControlPlane, type AgentSimEvent, type ClientIdentity, type ControlPlane } from "@ocm-conductor/test-harness";
import { CLUSTER_NAME_LABEL, CSR_USER_ANNOTATION, ConnectionReusingKubeConfig, createHubServices, registerHubServices, type HubServices } from "@ocm-conductor/work-service";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig } from "../src/config.js";
import { startGrpcServer, type RunningGrpcServer } from "../src/transport/grpc-server.js";
import { issue, makeCa, pemOf, type TestCa } from "./auth-pki.js";
import { eventually } from "./support.js";

let cp: ControlPlane;
let dir: string;
let servingCa: TestCa;
let server: RunningGrpcServer;
let auth: HubAuth;
let broker: Broker;
let works: MemoryWorkBackend;
const identities = new Map<string, ClientIdentity>();
const group = (c: string) => `system:open-cluster-management:${c}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "conductor-auth-agents-"));
  servingCa = makeCa(dir, "serving-ca");
  const serving = issue(dir, servingCa, "serving", { subject: "/CN=conductor", usage: "server" });
  cp = await startControlPlane();
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  // The work agent's RBAC as the hub grants it to each accepted cluster (hub-services.md §5.3).
  await rbac.createClusterRole({ body: { metadata: { name: "open-cluster-management:managedcluster:work" }, rules: [
    { apiGroups: ["work.open-cluster-management.io"], resources: ["manifestworks"], verbs: ["get", "list", "watch", "update", "patch"] },
    { apiGroups: ["work.open-cluster-management.io"], resources: ["manifestworks/status"], verbs: ["patch", "update"] },
  ] } });
  for (const version of AGENTSIM_VERSIONS) {
    for (const side of ["a", "b"]) {
      const cluster = `${side}-${version.replaceAll(".", "-")}`;
      await core.createNamespace({ body: { metadata: { name: cluster } } });
      await rbac.createNamespacedRoleBinding({ namespace: cluster, body: {
        metadata: { name: "work" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "open-cluster-management:managedcluster:work" },
        subjects: [{ kind: "Group", apiGroup: "rbac.authorization.k8s.io", name: group(cluster) }],
      } });
    }
    const a = `a-${version.replaceAll(".", "-")}`;
    // The certificate an agent of cluster A gets from the hub's gRPC signer (protocol.md §8.3).
    identities.set(version, await cp.mintClientIdentity(`system:open-cluster-management:${a}:agentsim`, [group(a), "system:open-cluster-management:managed-clusters"]));
  }
  broker = new Broker({ heartbeatIntervalMs: 0 });
  works = new MemoryWorkBackend("kube");
  broker.registerBackend(DataTypes.manifestBundles, works);
  const kubeConfig = new ConnectionReusingKubeConfig();
  kubeConfig.loadFromFile(cp.kubeconfigPath);
  auth = new HubAuth({ reviewer: new KubeHubReviewer(kubeConfig), cacheTtlMs: 10_000 });
  server = await startGrpcServer({
    config: { ...defaultConfig().grpc, port: 0 },
    broker,
    tls: { key: pemOf(serving.key), cert: pemOf(serving.cert), ca: pemOf(cp.clientCaFile) },
    interceptors: [createAuthInterceptor(auth)],
  });
}, 180_000);

afterAll(async () => {
  await server?.close(1000);
  await cp?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe.each(AGENTSIM_VERSIONS)("sdk-go %s work agent with a client certificate of cluster A", (version) => {
  const suffix = version.replaceAll(".", "-");
  const tlsArgs = () => {
    const id = identities.get(version)!;
    return ["--ca-file", servingCa.cert, "--client-cert", id.certFile, "--client-key", id.keyFile];
  };

  it("is served on cluster A: receives its work and reports status", async () => {
    const cluster = `a-${suffix}`;
    const agents = await startAgentSim({ version, server: `127.0.0.1:${server.port}`, clusters: [cluster], reconnectDelay: "1s", duration: "3m", extraArgs: tlsArgs() });
    try {
      await eventually(() => broker.subscribedClusters().includes(cluster), 30_000, "the agent to subscribe");
      const work = works.create(cluster, "work1", { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm1", namespace: "default" }, data: { a: "b" } }] });
      await agents.waitFor((e: AgentSimEvent) => e.event === "work-added" && e.uid === work.uid, 30_000);
      await agents.waitFor((e: AgentSimEvent) => e.event === "status-published" && e.uid === work.uid, 30_000);
      expect(works.received.some((e) => e.extensions["clustername"] === cluster && e.type.endsWith(".status.update_request"))).toBe(true);
    } finally {
      await agents.stop(5000);
    }
  });

  it("is refused on cluster B (PermissionDenied): never subscribed, never receives B's work", async () => {
    const cluster = `b-${suffix}`;
    const deniedBefore = auth.stats.denied;
    works.create(cluster, "work1", { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm1", namespace: "default" }, data: { a: "b" } }] });
    const agents = await startAgentSim({ version, server: `127.0.0.1:${server.port}`, clusters: [cluster], reconnectDelay: "1s", duration: "3m", extraArgs: [...tlsArgs(), "--v", "4"] });
    try {
      // Subscribe and the resync are denied, and retried after the reconnect delay.
      await eventually(() => auth.stats.denied >= deniedBefore + 2, 30_000, "denials");
      await eventually(() => agents.stderr.some((l) => l.includes("PermissionDenied")), 15_000, "the agent to log PermissionDenied");
      await new Promise((r) => setTimeout(r, 3_000));
      expect(broker.subscribedClusters()).not.toContain(cluster);
      expect(agents.events.filter((e) => e.event === "work-added")).toEqual([]);
      expect(works.received.filter((e) => e.extensions["clustername"] === cluster)).toEqual([]);
      console.log(`sdk-go ${version} refused on ${cluster}: ${auth.stats.denied - deniedBefore} denials; agent log:\n  ${agents.stderr.filter((l) => l.includes("PermissionDenied")).slice(0, 3).join("\n  ")}`);
    } finally {
      await agents.stop(5000);
    }
  });
});

describe("bootstrap with a ServiceAccount token: the authenticated user reaches the CSR service", () => {
  const BOOTSTRAP_NS = "open-cluster-management";
  const BOOTSTRAP_SA = "agent-registration-bootstrap";
  let hub: HubServices;
  let hubServer: RunningGrpcServer;
  let token: string;
  let tokenFile: string;
  let servingCaFile: string;

  beforeAll(async () => {
    token = await cp.mintToken(BOOTSTRAP_NS, BOOTSTRAP_SA);
    tokenFile = join(dir, "bootstrap.token");
    writeFileSync(tokenFile, token);
    servingCaFile = servingCa.cert;
    const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    // What a bootstrap identity needs through the gRPC authorizer (hub-services.md §5.2): every SAR is
    // namespaced by the joining cluster, so the grant is cluster-wide.
    await rbac.createClusterRole({ body: { metadata: { name: "test:grpc-bootstrap" }, rules: [
      { apiGroups: ["cluster.open-cluster-management.io"], resources: ["managedclusters"], verbs: ["create", "get", "list", "watch", "update"] },
      { apiGroups: ["cluster.open-cluster-management.io"], resources: ["managedclusters/status"], verbs: ["update"] },
      { apiGroups: ["certificates.k8s.io"], resources: ["certificatesigningrequests"], verbs: ["create", "get", "list", "watch"] },
      { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "list", "watch", "update"] },
      { apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "update"] },
      { apiGroups: ["addon.open-cluster-management.io"], resources: ["managedclusteraddons"], verbs: ["list", "watch"] },
      { apiGroups: ["addon.open-cluster-management.io"], resources: ["managedclusteraddons/status"], verbs: ["update"] },
    ] } });
    await rbac.createClusterRoleBinding({ body: {
      metadata: { name: "test:grpc-bootstrap" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "test:grpc-bootstrap" },
      subjects: [{ kind: "ServiceAccount", name: BOOTSTRAP_SA, namespace: BOOTSTRAP_NS }],
    } });
    const hubBroker = new Broker({ heartbeatIntervalMs: 1000 });
    hub = createHubServices({ kubeConfig: cp.kubeConfig });
    registerHubServices(hubBroker, hub);
    await hub.start();
    const serving = { cert: join(dir, "serving.crt"), key: join(dir, "serving.key") };
    hubServer = await startGrpcServer({
      config: { ...defaultConfig().grpc, port: 0 },
      broker: hubBroker,
      tls: { key: pemOf(serving.key), cert: pemOf(serving.cert), ca: pemOf(cp.clientCaFile) },
      interceptors: [createAuthInterceptor(auth)],
    });
  }, 120_000);

  afterAll(async () => {
    await hubServer?.close(1000);
    await hub?.stop();
  });

  it.each(AGENTSIM_VERSIONS)("sdk-go %s registration agent: its CSR is annotated with the token's user", async (version) => {
    const cluster = `join-${version.replaceAll(".", "-")}`;
    await cp.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: cluster } } });
    const agents = await startAgentSim({
      version, server: `127.0.0.1:${hubServer.port}`, clusters: [cluster], mode: "registration", clusterStatusPatch: false,
      reconnectDelay: "1s", duration: "3m", extraArgs: ["--ca-file", servingCaFile, "--token-file", tokenFile],
    });
    try {
      const certs = cp.kubeConfig.makeApiClient(CertificatesV1Api);
      const csr = await eventually(async () => (await certs.listCertificateSigningRequest({ labelSelector: `${CLUSTER_NAME_LABEL}=${cluster}` })).items[0], 30_000, "the CSR", 200);
      expect(csr.metadata?.annotations).toEqual({ [CSR_USER_ANNOTATION]: `system:serviceaccount:${BOOTSTRAP_NS}:${BOOTSTRAP_SA}` });
    } finally {
      await agents.stop(5000);
    }
  });
});
