import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  AuthenticationV1Api, AuthorizationV1Api, CertificatesV1Api, CoordinationV1Api, CoreV1Api,
  CustomObjectsApi, EventsV1Api, PatchStrategy, RbacAuthorizationV1Api, V1MicroTime, VersionApi,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "./eventually.js";
import { ControlPlaneStartError, startControlPlane, type ControlPlane } from "./control-plane.js";
import { groupExists, pidExists } from "./control-plane-process.js";

const execFileAsync = promisify(execFile);
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const WORK = { group: "work.open-cluster-management.io", version: "v1", plural: "manifestworks" } as const;
const CLUSTER = { group: "cluster.open-cluster-management.io", version: "v1", plural: "managedclusters" } as const;

type Obj = { metadata: { name: string; generation?: number; resourceVersion?: string }; spec?: any; status?: any };
const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;

let cp: ControlPlane;

beforeAll(async () => {
  cp = await startControlPlane();
  console.info(`control plane up in ${cp.timings.total} ms (${JSON.stringify(cp.timings)})`);
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of ["c1", "c2"]) await core.createNamespace({ body: { metadata: { name } } });
}, 240_000);

afterAll(async () => {
  await cp?.stop();
});

describe("control plane", () => {
  it("serves the pinned Kubernetes version and has the OCM CRDs established", async () => {
    const version = await cp.kubeConfig.makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toBe("v1.35.4");
    expect(cp.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(cp.caPem).toContain("BEGIN CERTIFICATE");
    expect([...cp.crds].sort()).toEqual([
      "appliedmanifestworks.work.open-cluster-management.io",
      "clustermanagementaddons.addon.open-cluster-management.io",
      "managedclusteraddons.addon.open-cluster-management.io",
      "managedclusters.cluster.open-cluster-management.io",
      "managedclustersetbindings.cluster.open-cluster-management.io",
      "managedclustersets.cluster.open-cluster-management.io",
      "manifestworks.work.open-cluster-management.io",
    ]);
  });

  it("ManagedCluster: create, get, update (generation bump), delete", async () => {
    const api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    const body = { apiVersion: "cluster.open-cluster-management.io/v1", kind: "ManagedCluster",
      metadata: { name: "mc-crud" }, spec: { hubAcceptsClient: false } };
    const created = (await api.createClusterCustomObject({ ...CLUSTER, body })) as Obj;
    expect(created.metadata.generation).toBe(1);
    const got = (await api.getClusterCustomObject({ ...CLUSTER, name: "mc-crud" })) as Obj;
    expect(got.spec.hubAcceptsClient).toBe(false);
    got.spec.hubAcceptsClient = true;
    const updated = (await api.replaceClusterCustomObject({ ...CLUSTER, name: "mc-crud", body: got })) as Obj;
    expect(updated.spec.hubAcceptsClient).toBe(true);
    expect(updated.metadata.generation).toBe(2);
    // A stale resourceVersion is a conflict: optimistic concurrency is real.
    await expect(api.replaceClusterCustomObject({ ...CLUSTER, name: "mc-crud", body: got }))
      .rejects.toSatisfy((e) => statusOf(e) === 409);
    await api.deleteClusterCustomObject({ ...CLUSTER, name: "mc-crud" });
    await expect(api.getClusterCustomObject({ ...CLUSTER, name: "mc-crud" }))
      .rejects.toSatisfy((e) => statusOf(e) === 404);
  });

  it("ManifestWork: status subresource is separate from spec (generation semantics)", async () => {
    const api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    const cm = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm1", namespace: "default" }, data: { a: "1" } };
    const body = { apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork",
      metadata: { name: "w1", namespace: "c1" }, spec: { workload: { manifests: [cm] } } };
    const created = (await api.createNamespacedCustomObject({ ...WORK, namespace: "c1", body })) as Obj;
    expect(created.metadata.generation).toBe(1);

    const condition = { type: "Applied", status: "True", reason: "AppliedManifestWorkComplete",
      message: "applied", observedGeneration: 1, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z") };
    const patched = (await api.patchNamespacedCustomObjectStatus(
      { ...WORK, namespace: "c1", name: "w1", body: { status: { conditions: [condition] } } }, mergePatch)) as Obj;
    expect(patched.status.conditions).toHaveLength(1);
    expect(patched.status.conditions[0].type).toBe("Applied");
    expect(patched.metadata.generation).toBe(1); // status writes never bump generation

    // Writing status through the main resource is ignored (the status subresource is enabled).
    const viaMain = (await api.patchNamespacedCustomObject({ ...WORK, namespace: "c1", name: "w1",
      body: { status: { conditions: [] } } }, mergePatch)) as Obj;
    expect(viaMain.status.conditions).toHaveLength(1);
    expect(viaMain.metadata.generation).toBe(1);

    const specPatched = (await api.patchNamespacedCustomObject({ ...WORK, namespace: "c1", name: "w1",
      body: { spec: { workload: { manifests: [{ ...cm, data: { a: "2" } }] } } } }, mergePatch)) as Obj;
    expect(specPatched.metadata.generation).toBe(2);
    expect(specPatched.spec.workload.manifests[0].data.a).toBe("2");
    expect(specPatched.status.conditions[0].observedGeneration).toBe(1);
  });

  it("CertificateSigningRequest: create and approve via the approval subresource", async () => {
    const api = cp.kubeConfig.makeApiClient(CertificatesV1Api);
    const dir = mkdtempSync(join(tmpdir(), "csr-"));
    try {
      await execFileAsync("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-subj", "/CN=system:open-cluster-management:c1:agent1/O=system:open-cluster-management:c1",
        "-keyout", join(dir, "k.pem"), "-out", join(dir, "r.pem")]);
      const { stdout: pem } = await execFileAsync("cat", [join(dir, "r.pem")]);
      await api.createCertificateSigningRequest({ body: { metadata: { name: "c1-agent1" }, spec: {
        request: Buffer.from(pem).toString("base64"), signerName: "kubernetes.io/kube-apiserver-client",
        usages: ["digital signature", "client auth"], expirationSeconds: 3600 } } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const csr = await api.readCertificateSigningRequest({ name: "c1-agent1" });
    expect(csr.spec.username).toBe("admin"); // the apiserver records who asked
    csr.status = { conditions: [{ type: "Approved", status: "True", reason: "TestApproved", message: "ok" }] };
    const approved = await api.replaceCertificateSigningRequestApproval({ name: "c1-agent1", body: csr });
    expect(approved.status?.conditions?.map((c) => c.type)).toEqual(["Approved"]);
    // No kube-controller-manager: nobody signs, status.certificate stays empty.
    expect(approved.status?.certificate).toBeUndefined();
    await api.deleteCertificateSigningRequest({ name: "c1-agent1" });
  });

  it("Lease: create and renew", async () => {
    const api = cp.kubeConfig.makeApiClient(CoordinationV1Api);
    const first = new V1MicroTime(Date.now() - 10_000);
    await api.createNamespacedLease({ namespace: "c1", body: { metadata: { name: "agent-lease" },
      spec: { holderIdentity: "agent1", leaseDurationSeconds: 60, renewTime: first } } });
    const lease = await api.readNamespacedLease({ namespace: "c1", name: "agent-lease" });
    const renewed = new V1MicroTime();
    lease.spec = { ...lease.spec, renewTime: renewed };
    const updated = await api.replaceNamespacedLease({ namespace: "c1", name: "agent-lease", body: lease });
    expect(new Date(updated.spec?.renewTime ?? 0).getTime()).toBe(renewed.getTime());
    expect(updated.spec?.holderIdentity).toBe("agent1");
  });

  it("Event (events.k8s.io/v1): create, read, and visible as a core event", async () => {
    const api = cp.kubeConfig.makeApiClient(EventsV1Api);
    await api.createNamespacedEvent({ namespace: "c1", body: { metadata: { name: "w1.evt" },
      eventTime: new V1MicroTime(), reportingController: "ocm-conductor-test", reportingInstance: "test-1",
      action: "Apply", reason: "ManifestWorkApplied", type: "Normal", note: "applied w1",
      regarding: { apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork", name: "w1", namespace: "c1" } } });
    const evt = await api.readNamespacedEvent({ namespace: "c1", name: "w1.evt" });
    expect(evt.reason).toBe("ManifestWorkApplied");
    const core = await cp.kubeConfig.makeApiClient(CoreV1Api).readNamespacedEvent({ namespace: "c1", name: "w1.evt" });
    expect(core.message).toBe("applied w1");
    expect(core.involvedObject.kind).toBe("ManifestWork");
  });

  it("TokenReview: ServiceAccount and admin tokens authenticate, a bogus token does not", async () => {
    const api = cp.kubeConfig.makeApiClient(AuthenticationV1Api);
    const review = async (token: string) => (await api.createTokenReview({ body: { spec: { token } } })).status;
    const sa = await review(await cp.mintToken("c1", "agent"));
    expect(sa?.authenticated).toBe(true);
    expect(sa?.user?.username).toBe("system:serviceaccount:c1:agent");
    const admin = await review(cp.adminToken);
    expect(admin?.authenticated).toBe(true);
    expect(admin?.user?.groups).toContain("system:masters");
    const bogus = await review("not-a-real-token");
    expect(bogus?.authenticated).not.toBe(true);
  });

  it("SubjectAccessReview + real requests: a minted identity may update manifestworks/status only in c1", async () => {
    const user = "system:open-cluster-management:c1:agent-rbac";
    const groups = ["system:open-cluster-management:c1"];
    const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace: "c1", body: { metadata: { name: "work-status" },
      rules: [{ apiGroups: [WORK.group], resources: ["manifestworks/status"], verbs: ["get", "update", "patch"] }] } });
    await rbac.createNamespacedRoleBinding({ namespace: "c1", body: { metadata: { name: "work-status" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "work-status" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: user }] } });

    const authz = cp.kubeConfig.makeApiClient(AuthorizationV1Api);
    const allowed = async (namespace: string) => (await authz.createSubjectAccessReview({ body: { spec: {
      user, groups, resourceAttributes: { group: WORK.group, resource: "manifestworks", subresource: "status",
        verb: "update", namespace } } } })).status?.allowed;
    expect(await allowed("c1")).toBe(true);
    expect(await allowed("c2")).toBe(false);

    // The identity itself: the client certificate maps to CN/O, and RBAC applies to real requests.
    const id = await cp.mintClientIdentity(user, groups);
    expect(existsSync(id.kubeconfigPath)).toBe(true);
    const self = await id.kubeConfig.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    expect(self.status?.userInfo?.username).toBe(user);
    expect(self.status?.userInfo?.groups).toEqual(expect.arrayContaining(groups));
    const asAgent = id.kubeConfig.makeApiClient(CustomObjectsApi);
    const body = { status: { conditions: [{ type: "Available", status: "True", reason: "ResourcesAvailable",
      message: "ok", lastTransitionTime: "2026-01-01T00:00:00Z" }] } };
    const ok = (await asAgent.patchNamespacedCustomObjectStatus(
      { ...WORK, namespace: "c1", name: "w1", body }, mergePatch)) as Obj;
    expect(ok.status.conditions.map((c: { type: string }) => c.type)).toEqual(["Available"]);
    await expect(asAgent.getNamespacedCustomObject({ ...WORK, namespace: "c1", name: "w1" }))
      .rejects.toSatisfy((e) => statusOf(e) === 403); // no get on the main resource
  });

  const kubectl = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].find((p) => existsSync(p));
  // kubectl is optional on a developer machine, but CI's machine image has it: never skip there.
  it.skipIf(!kubectl && process.env.CI !== "true")("the kubeconfig file works with kubectl", async () => {
    const { stdout } = await execFileAsync(kubectl!, ["--kubeconfig", cp.kubeconfigPath, "get", "crd", "-o", "name"]);
    expect(stdout).toContain("manifestworks.work.open-cluster-management.io");
  });

  it("reports a missing binary with a hint to run the build script", async () => {
    const empty = mkdtempSync(join(tmpdir(), "no-bins-"));
    try {
      await expect(startControlPlane({ binDir: empty })).rejects.toThrow(/test\/peers\/kube\/build\.sh/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("reports a child dying during start with its output, and leaves nothing running", async () => {
    const err = await startControlPlane({ crdDir: null, extraApiserverArgs: ["--no-such-flag"] })
      .then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ControlPlaneStartError);
    const e = err as ControlPlaneStartError;
    expect(e.message).toMatch(/kube-apiserver exited/);
    expect(e.message).toMatch(/unknown flag: --no-such-flag/);
    expect(e.pids).toHaveLength(2);
    for (const pid of e.pids) expect(pidExists(pid)).toBe(false);
    expect(existsSync(e.runDir)).toBe(false);
  });

  it("restartApiServer(): the apiserver really goes down, comes back on the same port, data survives, clients work", async () => {
    const api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const body = (name: string) => ({ apiVersion: "work.open-cluster-management.io/v1", kind: "ManifestWork",
      metadata: { name, namespace: "c2" }, spec: { workload: { manifests: [] } } });
    const before = (await api.createNamespacedCustomObject({ ...WORK, namespace: "c2", body: body("before-restart") })) as Obj;
    await core.createNamespacedConfigMap({ namespace: "c2", body: { metadata: { name: "survivor" }, data: { k: "v" } } });
    const user = "system:open-cluster-management:c1:agent-rbac"; // has a Role in c1 (test above)
    const id = await cp.mintClientIdentity(user, ["system:open-cluster-management:c1"]);
    const saToken = await cp.mintToken("c2", "restart-sa");
    const { etcd, kubeApiserver } = cp.pids;
    const server = cp.server;

    const restart = cp.restartApiServer({ downMs: 1_500 });
    // While it restarts, requests fail: the outage is real, not just a new PID.
    await eventually(() => core.readNamespace({ name: "c2" }).then(() => false, () => true),
      30_000, "a request to fail while kube-apiserver is down", 50);
    const r = await restart;
    console.info(`kube-apiserver restart: ${JSON.stringify(r)}`);

    expect(r.oldPid).toBe(kubeApiserver);
    expect(r.pid).not.toBe(kubeApiserver);
    expect(cp.pids).toEqual({ etcd, kubeApiserver: r.pid });
    expect(pidExists(kubeApiserver)).toBe(false);
    expect(groupExists(kubeApiserver)).toBe(false);
    expect(pidExists(etcd)).toBe(true); // etcd kept running
    expect(cp.server).toBe(server);
    expect(existsSync(r.logFile)).toBe(true);

    // Data survives (etcd), with the same identity and version; the same kubeconfig works.
    const after = (await api.getNamespacedCustomObject({ ...WORK, namespace: "c2", name: "before-restart" })) as Obj & { metadata: { uid?: string } };
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect((await core.readNamespacedConfigMap({ namespace: "c2", name: "survivor" })).data).toEqual({ k: "v" });
    // Writes work, including to a CRD; the new resourceVersion moves past the old one.
    const created = (await api.createNamespacedCustomObject({ ...WORK, namespace: "c2", body: body("after-restart") })) as Obj;
    expect(BigInt(created.metadata.resourceVersion!)).toBeGreaterThan(BigInt(before.metadata.resourceVersion!));
    // Credentials minted before the restart still authenticate (same CAs, keys and token file).
    const self = await id.kubeConfig.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    expect(self.status?.userInfo?.username).toBe(user);
    const review = await cp.kubeConfig.makeApiClient(AuthenticationV1Api).createTokenReview({ body: { spec: { token: saToken } } });
    expect(review.status?.authenticated).toBe(true);
    // A second restart without downtime works too (restarts are repeatable).
    const again = await cp.restartApiServer();
    expect(again.oldPid).toBe(r.pid);
    expect((await core.readNamespacedConfigMap({ namespace: "c2", name: "survivor" })).data).toEqual({ k: "v" });
  });

  // Must stay last: it stops the file's control plane.
  it("stop() ends both process groups and removes the run directory", async () => {
    const { etcd, kubeApiserver } = cp.pids;
    expect(pidExists(etcd) && pidExists(kubeApiserver)).toBe(true);
    await cp.stop();
    for (const pid of [etcd, kubeApiserver]) {
      expect(pidExists(pid)).toBe(false);
      expect(groupExists(pid)).toBe(false);
    }
    expect(existsSync(cp.runDir)).toBe(false);
    await cp.stop(); // idempotent
  });
});
