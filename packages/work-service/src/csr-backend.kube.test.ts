import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CertificatesV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { DataTypes, Extension, eventDataJson, newEvent, stringExtension, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError, type RequestContext } from "@ocm-conductor/router";
import { eventually, startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CERTIFICATE_SIGNING_REQUESTS, CSR_USER_ANNOTATION, KubeCsrBackend } from "./csr-backend.js";
import { CLUSTER_NAME_LABEL, type KubeObject } from "./kube-object-codec.js";

let cp: ControlPlane;
let api: CustomObjectsApi;
let certificates: CertificatesV1Api;
let backend: KubeCsrBackend;
let pki: string;
const pushed: CloudEvent[] = [];
const { group, version, plural } = CERTIFICATE_SIGNING_REQUESTS;
const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const AGENT = "system:open-cluster-management:c1:agent";
const context: RequestContext = { signal: new AbortController().signal, identity: { user: AGENT, groups: ["system:open-cluster-management:c1"] } };

interface Csr extends KubeObject {
  spec: { request: string; signerName: string; usages: string[] };
  status?: { certificate?: string; conditions?: Array<{ type: string; status: string }> };
}

const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: pki, stdio: ["ignore", "pipe", "pipe"] });

beforeAll(async () => {
  pki = mkdtempSync(join(tmpdir(), "csr-test-"));
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-subj", "/CN=grpc-ca", "-days", "1", "-out", "ca.pem");
  openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "agent.key",
    "-subj", `/O=system:open-cluster-management:c1/CN=${AGENT}`, "-out", "agent.csr");
  cp = await startControlPlane();
  api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
  certificates = cp.kubeConfig.makeApiClient(CertificatesV1Api);
  backend = new KubeCsrBackend({ kubeConfig: cp.kubeConfig });
  backend.attach({ publish: (e) => (pushed.push(e), 1) });
  await backend.start();
}, 180_000);

afterAll(async () => {
  await backend?.stop();
  await cp?.stop();
  if (pki) rmSync(pki, { recursive: true, force: true });
});

beforeEach(() => {
  pushed.length = 0;
});

let counter = 0;
function agentCsr(cluster: string | null = "c1", name = `c1-${(++counter).toString().padStart(5, "0")}`): Csr {
  return {
    apiVersion: "certificates.k8s.io/v1", kind: "CertificateSigningRequest",
    metadata: { name, labels: cluster === null ? {} : { [CLUSTER_NAME_LABEL]: cluster }, annotations: { "agent.example/own": "dropped" } },
    spec: {
      request: readFileSync(join(pki, "agent.csr")).toString("base64"),
      signerName: "open-cluster-management.io/grpc",
      usages: ["digital signature", "key encipherment", "client auth"],
    },
  };
}
const createEvent = (csr: Csr, clusterName = "c1", type = "spec.create_request") =>
  newEvent({ type: `${DataTypes.certificateSigningRequests}.${type}`, source: `${clusterName}-agent`, clusterName, data: csr });
const getCsr = async (name: string) => (await api.getClusterCustomObject({ group, version, plural, name })) as Csr;
const exists = (name: string) => getCsr(name).then(() => true, (e: { code?: number }) => (e.code === 404 ? false : Promise.reject(e)));
const pushesFor = (uid: string | undefined) => pushed.filter((e) => e.extensions[Extension.resourceId] === uid);

async function refusal(call: Promise<unknown>): Promise<BackendError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof BackendError) return err;
    throw err;
  }
  throw new Error("expected a BackendError");
}

describe("agent CSR creation (hub-services.md §2.2, §4 step 4)", () => {
  it("replaces the annotations with the agent's identity, creates the CSR and pushes it to the labelled cluster", async () => {
    const csr = agentCsr();
    await backend.handle(createEvent(csr), context);
    const hub = await getCsr(csr.metadata.name);
    expect(hub.metadata.annotations).toEqual({ [CSR_USER_ANNOTATION]: AGENT });
    expect(hub.metadata.labels).toEqual({ [CLUSTER_NAME_LABEL]: "c1" });
    const [event] = await eventually(() => pushesFor(hub.metadata.uid).length > 0 && pushesFor(hub.metadata.uid), 10_000, "the create push");
    expect(event!.type).toBe(`${DataTypes.certificateSigningRequests}.spec.create_request`);
    expect(stringExtension(event!, Extension.clusterName)).toBe("c1");
    expect(event!.extensions[Extension.resourceVersion]).toBe(hub.metadata.resourceVersion);
  });

  it("creates on create_request whatever the subresource", async () => {
    const csr = agentCsr();
    await backend.handle(createEvent(csr, "c1", "status.create_request"), context);
    expect(await exists(csr.metadata.name)).toBe(true);
  });

  it("refuses a request without an authenticated user with Unauthorized, creating nothing", async () => {
    const csr = agentCsr();
    const err = await refusal(backend.handle(createEvent(csr), { signal: context.signal }));
    expect(err.status).toMatchObject({ reason: "Unauthorized", code: 401 });
    expect(err.message).toMatch(/no authenticated user/);
    expect(await exists(csr.metadata.name)).toBe(false);
  });

  it("passes AlreadyExists from the API server through", async () => {
    const csr = agentCsr();
    await backend.handle(createEvent(csr), context);
    const err = await refusal(backend.handle(createEvent(csr), context));
    expect(err.status).toMatchObject({ reason: "AlreadyExists", code: 409, details: { name: csr.metadata.name } });
  });
});

describe("hub → agent pushes and resync", () => {
  it("pushes approval and the signed certificate as update_requests with the full CSR", async () => {
    const csr = agentCsr();
    await backend.handle(createEvent(csr), context);
    const created = await getCsr(csr.metadata.name);
    await certificates.patchCertificateSigningRequestApproval({ name: csr.metadata.name, body: {
      status: { conditions: [{ type: "Approved", status: "True", reason: "Test", message: "approved by the test" }] },
    } }, mergePatch);
    openssl("x509", "-req", "-in", "agent.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-out", "agent.pem");
    const certificate = readFileSync(join(pki, "agent.pem")).toString("base64");
    await api.patchClusterCustomObjectStatus({ group, version, plural, name: csr.metadata.name, body: { status: { certificate } } }, mergePatch);
    const issued = await eventually(() => pushesFor(created.metadata.uid).find((e) => (eventDataJson(e) as Csr | undefined)?.status?.certificate), 10_000, "the certificate push");
    expect(issued.type).toBe(`${DataTypes.certificateSigningRequests}.spec.update_request`);
    expect(eventDataJson(issued)).toMatchObject({ status: { certificate, conditions: [{ type: "Approved", status: "True" }] } });
  });

  it("never sees unlabelled CSRs, and lists only the CSRs labelled for the cluster", async () => {
    const unlabelled = (await api.createClusterCustomObject({ group, version, plural, body: agentCsr(null) })) as Csr;
    const forC2 = (await api.createClusterCustomObject({ group, version, plural, body: agentCsr("c2") })) as Csr;
    await eventually(() => pushesFor(forC2.metadata.uid).length > 0, 10_000, "the labelled CSR's push");
    expect(stringExtension(pushesFor(forC2.metadata.uid)[0]!, Extension.clusterName)).toBe("c2");
    expect(pushesFor(unlabelled.metadata.uid)).toEqual([]);
    const listed = await backend.list({ clusterName: "c2", dataType: DataTypes.certificateSigningRequests });
    expect(listed.map((e) => e.extensions[Extension.resourceId])).toEqual([forC2.metadata.uid]);
  });

  it("pushes a delete_request when a CSR is deleted", async () => {
    const csr = (await api.createClusterCustomObject({ group, version, plural, body: agentCsr() })) as Csr;
    await eventually(() => pushesFor(csr.metadata.uid).length > 0, 10_000, "the create push");
    await api.deleteClusterCustomObject({ group, version, plural, name: csr.metadata.name });
    const deleted = await eventually(() => pushesFor(csr.metadata.uid).find((e) => e.type.endsWith(".delete_request")), 10_000, "the delete push");
    const gone = eventDataJson(deleted) as { metadata: { deletionTimestamp?: string } };
    expect(gone.metadata.deletionTimestamp).toBeDefined(); // data kept for v1.1.0/v1.2.0 agents
    expect(deleted.extensions[Extension.deletionTimestamp]).toBeDefined();
    expect(stringExtension(deleted, Extension.clusterName)).toBe("c1");
  });
});

describe("bad requests create nothing", () => {
  it.each([
    ["a CSR labelled for another cluster", (e: CloudEvent) => { e.extensions[Extension.clusterName] = "c2"; }, /is labelled for cluster c1, not for the cluster c2/],
    ["a CSR without the cluster label", (e: CloudEvent) => { e.data = new TextEncoder().encode(JSON.stringify(agentCsr(null, "c1-nolabel"))); }, /has no open-cluster-management.io\/cluster-name label/],
    ["an unsupported action", (e: CloudEvent) => { e.type = `${DataTypes.certificateSigningRequests}.spec.update_request`; }, /^unsupported action update_request for csr c1-\d+$/],
    ["an unparseable type", (e: CloudEvent) => { e.type = "csr.create"; }, /^failed to parse cloud event type csr.create, /],
    ["malformed JSON", (e: CloudEvent) => { e.data = new TextEncoder().encode("{"); }, /^failed to unmarshal event data, /],
    ["another kind", (e: CloudEvent) => { e.data = new TextEncoder().encode(JSON.stringify({ ...agentCsr(), kind: "Secret" })); }, /has kind Secret, expected CertificateSigningRequest/],
  ])("refuses %s with BadRequest", async (_what, mutate, message) => {
    const csr = agentCsr();
    const event = createEvent(csr);
    mutate(event);
    const err = await refusal(backend.handle(event, context));
    expect(err.status).toMatchObject({ reason: "BadRequest", code: 400 });
    expect(err.message).toMatch(message);
    expect(await exists(csr.metadata.name)).toBe(false);
  });
});
