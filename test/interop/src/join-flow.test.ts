import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificatesV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { Interceptor } from "@connectrpc/connect";
import { defaultConfig, startGrpcServer, type RunningGrpcServer } from "@ocm-conductor/conductor";
import { Broker, kIdentity } from "@ocm-conductor/router";
import { AGENTSIM_VERSIONS, eventually, startAgentSim, startControlPlane, type AgentSimEvent, type ControlPlane } from "@ocm-conductor/test-harness";
import { CLUSTER_NAME_LABEL, CSR_USER_ANNOTATION, createHubServices, registerHubServices, type HubServices } from "@ocm-conductor/work-service";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The ManagedCluster join flow of hub-services.md §4 over gRPC: real sdk-go registration clients
// of each generation create their cluster and CSR through the conductor; the test plays the hub
// controllers (accept, approve + sign with a test CA, set conditions, create the lease); the agent
// ends up holding a signed certificate and sees its cluster Joined and Available.

const BOOTSTRAP_USER = "system:serviceaccount:open-cluster-management:agent-registration-bootstrap";
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const CLUSTERS = { group: "cluster.open-cluster-management.io", version: "v1", plural: "managedclusters" } as const;

let cp: ControlPlane;
let hub: HubServices;
let server: RunningGrpcServer;
let broker: Broker;
const pki = mkdtempSync(join(tmpdir(), "join-ca-"));

// Until authentication lands, the identity seam is filled by a fixed bootstrap identity.
const bootstrapIdentity: Interceptor = (next) => (req) => {
  req.contextValues.set(kIdentity, { user: BOOTSTRAP_USER, groups: ["system:bootstrappers"] });
  return next(req);
};

beforeAll(async () => {
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=test-grpc-signer", "-keyout", "ca.key", "-out", "ca.crt"], { cwd: pki, stdio: "pipe" });
  cp = await startControlPlane();
  broker = new Broker({ heartbeatIntervalMs: 1000 });
  hub = createHubServices({ kubeConfig: cp.kubeConfig });
  registerHubServices(broker, hub);
  await hub.start();
  server = await startGrpcServer({ config: { ...defaultConfig().grpc, port: 0 }, broker, interceptors: [bootstrapIdentity] });
}, 180_000);

afterAll(async () => {
  await server?.close(1000);
  await hub?.stop();
  await cp?.stop();
  rmSync(pki, { recursive: true, force: true });
});

/** Signs a PEM CSR with the test CA as the hub's gRPC signer would; returns the PEM certificate. */
function sign(requestPem: string): string {
  writeFileSync(join(pki, "req.csr"), requestPem);
  writeFileSync(join(pki, "ext.cnf"), "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n");
  execFileSync("openssl", ["x509", "-req", "-in", "req.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
    "-days", "1", "-out", "agent.crt", "-extfile", "ext.cnf"], { cwd: pki, stdio: "pipe" });
  return readFileSync(join(pki, "agent.crt"), "utf8");
}

describe.each(AGENTSIM_VERSIONS)("sdk-go %s registration agent", (version) => {
  it("joins: cluster and CSR created through the conductor, certificate issued, Joined and Available seen", async () => {
    const cluster = `join-${version.replaceAll(".", "-")}`;
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    const certs = cp.kubeConfig.makeApiClient(CertificatesV1Api);
    await core.createNamespace({ body: { metadata: { name: cluster } } });
    // The hub's registration controller creates the lease the agent renews.
    await cp.kubeConfig.makeApiClient(CoordinationV1Api).createNamespacedLease({
      namespace: cluster,
      body: { metadata: { name: "managed-cluster-lease", namespace: cluster, labels: { [CLUSTER_NAME_LABEL]: cluster } }, spec: { leaseDurationSeconds: 60 } },
    });
    const agents = await startAgentSim({
      version, server: `127.0.0.1:${server.port}`, clusters: [cluster], mode: "registration",
      clusterStatusPatch: false, leaseInterval: "1s", reconnectDelay: "1s", duration: "5m",
    });
    const waitAgent = (event: string) => agents.waitFor((e: AgentSimEvent) => e.event === event && e.cluster === cluster, 60_000);
    try {
      // 1. The agent's ManagedCluster create reaches the hub.
      await eventually(() => custom.getClusterCustomObject({ ...CLUSTERS, name: cluster }).then(() => true, () => false), 30_000, "the ManagedCluster", 200);

      // 2. Its CSR is created with the cluster label and the authenticated user recorded.
      const csr = await eventually(async () => {
        const list = await certs.listCertificateSigningRequest({ labelSelector: `${CLUSTER_NAME_LABEL}=${cluster}` });
        return list.items[0];
      }, 30_000, "the CSR", 200);
      expect(csr.metadata?.annotations).toEqual({ [CSR_USER_ANNOTATION]: BOOTSTRAP_USER });
      expect(csr.spec.signerName).toBe("open-cluster-management.io/grpc");
      const name = csr.metadata!.name!;

      // 3. The hub approves and signs; the agent picks up a certificate that matches its request.
      const approved = await certs.readCertificateSigningRequest({ name });
      approved.status = { conditions: [{ type: "Approved", status: "True", reason: "AutoApprovedByTest", message: "approved by the test" }] };
      await certs.replaceCertificateSigningRequestApproval({ name, body: approved });
      const certificate = sign(Buffer.from(csr.spec.request, "base64").toString("utf8"));
      await certs.patchCertificateSigningRequestStatus(
        { name, body: { status: { certificate: Buffer.from(certificate).toString("base64") } } }, mergePatch);
      const received = await waitAgent("certificate-received");
      expect(received.commonName).toBe(`system:open-cluster-management:${cluster}:agentsim`);
      expect(received.subjectMatches).toBe(true);

      // 4. The hub accepts the cluster and marks it joined and available.
      const now = new Date().toISOString();
      const condition = (type: string) => ({ type, status: "True", reason: "Test", message: "set by the test", lastTransitionTime: now });
      await custom.patchClusterCustomObjectStatus({ ...CLUSTERS, name: cluster, body: { status: {
        conditions: ["HubAcceptedManagedCluster", "ManagedClusterJoined", "ManagedClusterConditionAvailable"].map(condition),
      } } }, mergePatch);
      await waitAgent("managedcluster-joined");
      await waitAgent("managedcluster-available");

      // 5. Lease renewals from the agent land on the hub lease.
      await waitAgent("lease-renewed");
      const lease = await eventually(async () => {
        const l = (await custom.getNamespacedCustomObject({ group: "coordination.k8s.io", version: "v1", plural: "leases", namespace: cluster, name: "managed-cluster-lease" })) as { spec?: { renewTime?: string } };
        return l.spec?.renewTime;
      }, 30_000, "a renewed lease", 250);
      expect(Date.parse(lease)).toBeGreaterThan(Date.now() - 60_000);
      expect(agents.events.filter((e) => e.event === "error")).toEqual([]);
    } finally {
      await agents.stop(5000);
    }
  });
});
