/**
 * Acceptance of agent authentication and authorization (issue #7, protocol.md §8) on a real
 * kube-apiserver with RBAC: the conductor's TLS transport with the hub-auth interceptor in front of
 * the broker, the hub answering every TokenReview and SubjectAccessReview. Backends are recording
 * doubles: authorization is what is under test.
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "node:tls";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RbacAuthorizationV1Api, CoreV1Api } from "@kubernetes/client-node";
import { HubAuth, KubeHubReviewer, createAuthInterceptor } from "@ocm-conductor/hub-auth";
import { CloudEventService, DataTypes, newEvent, toProto, type CloudEvent, type PbCloudEvent } from "@ocm-conductor/protocol";
import { Broker, type Backend, type Identity, type ListOptions, type RequestContext } from "@ocm-conductor/router";
import { startControlPlane, type ClientIdentity, type ControlPlane } from "@ocm-conductor/test-harness";
import { ConnectionReusingKubeConfig } from "@ocm-conductor/work-service";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startConductorProcess } from "../src/conductor-process.js";
import { defaultConfig } from "../src/config.js";
import { startGrpcServer, type RunningGrpcServer } from "../src/transport/grpc-server.js";
import { issue, makeCa, pemOf, type TestCa } from "./auth-pki.js";
import { eventually } from "./support.js";

const A = "cluster-a";
const B = "cluster-b";
const clusterGroup = (c: string) => `system:open-cluster-management:${c}`;
const TOKEN_A = "token-of-cluster-a-agent-0123456789";
const TOKEN_A_USER = "token-agent-a";

/** Records what reaches each backend, and who sent it. */
class RecordingBackend implements Backend {
  readonly handled: Array<{ event: CloudEvent; identity: Identity | undefined }> = [];
  readonly listed: ListOptions[] = [];
  attach(): void {}
  list(options: ListOptions): Promise<CloudEvent[]> {
    this.listed.push(options);
    return Promise.resolve([]);
  }
  handle(event: CloudEvent, context: RequestContext): Promise<void> {
    this.handled.push({ event, identity: context.identity });
    return Promise.resolve();
  }
}

interface Conductor {
  server: RunningGrpcServer;
  broker: Broker;
  auth: HubAuth;
  reviewer: KubeHubReviewer;
  backends: Map<string, RecordingBackend>;
  publishSpy: ReturnType<typeof vi.spyOn>;
  subscribeSpy: ReturnType<typeof vi.spyOn>;
}

let cp: ControlPlane;
let dir: string;
let servingCa: TestCa;
let serving: { cert: string; key: string };
let certA: ClientIdentity;
let saTokenA: string;
const conductors: Conductor[] = [];

/** The conductor as `serve` assembles it with TLS and Kubernetes access (conductor-process.ts). */
async function startConductor(cacheTtlMs: number): Promise<Conductor> {
  const broker = new Broker({ heartbeatIntervalMs: 0 });
  const backends = new Map<string, RecordingBackend>();
  for (const dataType of Object.values(DataTypes)) {
    const backend = new RecordingBackend();
    backends.set(dataType, backend);
    broker.registerBackend(dataType, backend);
  }
  const kubeConfig = new ConnectionReusingKubeConfig();
  kubeConfig.loadFromFile(cp.kubeconfigPath);
  const reviewer = new KubeHubReviewer(kubeConfig);
  const auth = new HubAuth({ reviewer, cacheTtlMs });
  const server = await startGrpcServer({
    config: { ...defaultConfig().grpc, port: 0 },
    broker,
    tls: { key: pemOf(serving.key), cert: pemOf(serving.cert), ca: pemOf(cp.clientCaFile) },
    interceptors: [createAuthInterceptor(auth)],
  });
  const conductor = { server, broker, auth, reviewer, backends, publishSpy: vi.spyOn(broker, "publish"), subscribeSpy: vi.spyOn(broker, "subscribe") };
  conductors.push(conductor);
  return conductor;
}

type Credentials = { token?: string; cert?: { cert: string | Buffer; key: string | Buffer } };

function clientOf(conductor: Conductor, creds: Credentials): Client<typeof CloudEventService> {
  const transport = createGrpcTransport({
    baseUrl: conductor.server.url,
    nodeOptions: {
      ca: pemOf(servingCa.cert),
      minVersion: "TLSv1.3", // what sdk-go agents offer (protocol.md §10.1)
      ...(creds.cert !== undefined && { cert: creds.cert.cert, key: creds.cert.key }),
    },
    interceptors: creds.token === undefined ? [] : [(next) => (req) => {
      req.header.set("authorization", `Bearer ${creds.token}`);
      return next(req);
    }],
  });
  return createClient(CloudEventService, transport);
}

function event(dataType: string, subResource: "spec" | "status", action: string, cluster: string): PbCloudEvent {
  const data = action === "resync_request" ? { resourceVersions: [] } : { metadata: { name: "agent-object", namespace: cluster }, status: {} };
  return toProto(newEvent({ type: `${dataType}.${subResource}.${action}`, source: `${cluster}-agent`, clusterName: cluster, extensions: { resourceid: "3a0b6f4e-7a1c-4c57-9d8e-0d1a2b3c4d5e", resourceversion: 1 }, data }));
}

/** The outcome of one call: "ok" or the gRPC code name. */
async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "ok";
  } catch (err) {
    return Code[ConnectError.from(err).code];
  }
}

/** Opens a Subscribe, waits for its first message (the immediate heartbeat), and closes it. */
async function subscribeOnce(client: Client<typeof CloudEventService>, clusterName: string, dataType: string): Promise<void> {
  const abort = new AbortController();
  try {
    for await (const _ of client.subscribe({ clusterName, dataType }, { signal: abort.signal, timeoutMs: 20_000 })) return;
    throw new Error("stream ended without a message");
  } finally {
    abort.abort();
  }
}

async function grantAgentRole(cluster: string, extraSubjects: Array<{ kind: string; name: string; apiGroup?: string; namespace?: string }> = []): Promise<void> {
  const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
  const verbs = ["create", "update", "delete", "list", "watch"];
  const resources = (group: string, names: string[]) => ({ apiGroups: [group], resources: names.flatMap((n) => [n, `${n}/status`]), verbs });
  await rbac.createNamespacedRole({ namespace: cluster, body: { metadata: { name: "agent" }, rules: [
    resources("work.open-cluster-management.io", ["manifestworks"]),
    resources("cluster.open-cluster-management.io", ["managedclusters"]),
    resources("certificates.k8s.io", ["certificatesigningrequests"]),
    resources("coordination.k8s.io", ["leases"]),
    resources("events.k8s.io", ["events"]),
    resources("addon.open-cluster-management.io", ["managedclusteraddons"]),
    { apiGroups: [""], resources: ["serviceaccounts/token"], verbs: ["create", "subscribe"] },
  ] } }).catch((err: { code?: number }) => { if (err.code !== 409) throw err; });
  await rbac.createNamespacedRoleBinding({ namespace: cluster, body: {
    metadata: { name: "agent" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "agent" },
    subjects: [{ kind: "Group", apiGroup: "rbac.authorization.k8s.io", name: clusterGroup(cluster) }, ...extraSubjects],
  } });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "conductor-auth-"));
  servingCa = makeCa(dir, "serving-ca");
  serving = issue(dir, servingCa, "serving", { subject: "/CN=conductor", usage: "server" });
  cp = await startControlPlane({ staticTokens: [{ token: TOKEN_A, user: TOKEN_A_USER, groups: [clusterGroup(A)] }] });
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const ns of [A, B]) await core.createNamespace({ body: { metadata: { name: ns } } });
  saTokenA = await cp.mintToken(A, "klusterlet");
  await grantAgentRole(A, [{ kind: "ServiceAccount", name: "klusterlet", namespace: A }]);
  await grantAgentRole(B);
  certA = await cp.mintClientIdentity(`system:open-cluster-management:${A}:agent`, [clusterGroup(A), "system:open-cluster-management:managed-clusters"]);
}, 180_000);

afterAll(async () => {
  for (const c of conductors) await c.server.close(1000);
  await cp?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

// The generated matrix: every data type × (Subscribe + each Publish action).
const PUBLISHES: Array<["spec" | "status", string]> = [
  ["spec", "create_request"], ["spec", "update_request"], ["spec", "delete_request"], ["spec", "resync_request"],
  ["status", "update_request"], ["status", "resync_response"],
];
type Case = { dataType: string; kind: "subscribe" } | { dataType: string; kind: "publish"; subResource: "spec" | "status"; action: string };
const CASES: Case[] = Object.values(DataTypes).flatMap((dataType): Case[] => [
  { dataType, kind: "subscribe" },
  ...PUBLISHES.map(([subResource, action]): Case => ({ dataType, kind: "publish", subResource, action })),
]);
/** protocol.md §8.4: no verb for resync_response; token requests are only created (Publish) or subscribed. */
const hasVerb = (c: Case) => c.kind === "subscribe"
  || (c.action !== "resync_response" && (c.dataType !== DataTypes.tokenRequests || (c.subResource === "spec" && c.action === "create_request")));
const label = (c: Case) => (c.kind === "subscribe" ? `${c.dataType} Subscribe` : `${c.dataType} ${c.subResource}.${c.action}`);

describe("per-cluster authorization on the hub (deny matrix)", () => {
  let conductor: Conductor;
  beforeAll(async () => {
    conductor = await startConductor(10_000);
  });

  const identities: Array<[string, () => Credentials, () => Identity]> = [
    ["client certificate of cluster A", () => ({ cert: { cert: certA.certPem, key: certA.keyPem } }), () => ({ user: certA.user, groups: [...certA.groups] })],
    ["bearer token of cluster A", () => ({ token: TOKEN_A }), () => ({ user: TOKEN_A_USER, groups: [clusterGroup(A), "system:authenticated"] })],
  ];

  for (const [name, creds, identity] of identities) {
    it(`${name} × every data type × {Subscribe, Publish of each action} on cluster B → PermissionDenied, nothing reaches the broker`, async () => {
      expect(CASES).toHaveLength(Object.values(DataTypes).length * 7);
      const client = clientOf(conductor, creds());
      const publishesBefore = conductor.publishSpy.mock.calls.length;
      const subscribesBefore = conductor.subscribeSpy.mock.calls.length;
      const results: string[] = [];
      for (const c of CASES) {
        const got = c.kind === "subscribe"
          ? await outcome(() => subscribeOnce(client, B, c.dataType))
          : await outcome(() => client.publish({ event: event(c.dataType, c.subResource, c.action, B) }));
        results.push(`${label(c)}: ${got}`);
      }
      expect(results).toEqual(CASES.map((c) => `${label(c)}: PermissionDenied`));
      expect(conductor.publishSpy.mock.calls.length).toBe(publishesBefore);
      expect(conductor.subscribeSpy.mock.calls.length).toBe(subscribesBefore);
      for (const backend of conductor.backends.values()) {
        expect(backend.handled.filter((h) => h.event.extensions["clustername"] === B)).toEqual([]);
        expect(backend.listed.filter((l) => l.clusterName === B)).toEqual([]);
      }
    }, 120_000);

    it(`${name} on its own cluster A → allowed (every combination with a verb), and the identity reaches the backend`, async () => {
      const client = clientOf(conductor, creds());
      const results: string[] = [];
      for (const c of CASES) {
        const got = c.kind === "subscribe"
          ? await outcome(() => subscribeOnce(client, A, c.dataType))
          : await outcome(() => client.publish({ event: event(c.dataType, c.subResource, c.action, A) }));
        results.push(`${label(c)}: ${got}`);
      }
      expect(results).toEqual(CASES.map((c) => `${label(c)}: ${hasVerb(c) ? "ok" : "PermissionDenied"}`));
      // Everything that is handled by a backend (all but resyncs, which the broker answers) arrived with the identity.
      for (const c of CASES) {
        if (c.kind !== "publish" || !hasVerb(c) || c.action === "resync_request") continue;
        const handled = conductor.backends.get(c.dataType)!.handled.filter((h) => h.event.type === `${c.dataType}.${c.subResource}.${c.action}`);
        expect(handled.length, label(c)).toBeGreaterThanOrEqual(1);
        expect(handled.at(-1)!.identity).toEqual(identity());
      }
    }, 120_000);
  }

  it("a ServiceAccount token (TokenReview) is the ServiceAccount's identity", async () => {
    const client = clientOf(conductor, { token: saTokenA });
    await client.publish({ event: event(DataTypes.leases, "spec", "update_request", A) });
    const last = conductor.backends.get(DataTypes.leases)!.handled.at(-1)!;
    expect(last.identity?.user).toBe(`system:serviceaccount:${A}:klusterlet`);
    expect(last.identity?.groups).toContain(`system:serviceaccounts:${A}`);
    expect(await outcome(() => client.publish({ event: event(DataTypes.leases, "spec", "update_request", B) }))).toBe("PermissionDenied");
  });
});

describe("authentication failures", () => {
  let conductor: Conductor;
  let otherCaCert: { cert: string; key: string };
  let expiredCert: { cert: string; key: string };
  beforeAll(async () => {
    conductor = await startConductor(10_000);
    const other = makeCa(dir, "other-ca");
    const subject = `/O=${clusterGroup(A)}/CN=system:open-cluster-management:${A}:agent`;
    otherCaCert = issue(dir, other, "other-ca-agent", { subject, usage: "client" });
    // From the very CA the conductor trusts (the hub's client CA), but expired.
    const hubClientCa = { cert: cp.clientCaFile, key: join(dirname(cp.clientCaFile), "client-ca.key") };
    expiredCert = issue(dir, hubClientCa, "expired-agent", { subject, usage: "client", startDate: "20200101000000Z", endDate: "20200102000000Z" });
  });

  const cases: Array<[string, () => Credentials]> = [
    ["no credentials", () => ({})],
    ["a token the hub rejects", () => ({ token: "not-a-token-the-hub-knows" })],
    ["a client certificate from another CA", () => ({ cert: { cert: pemOf(otherCaCert.cert), key: pemOf(otherCaCert.key) } })],
    ["an expired client certificate from the trusted CA", () => ({ cert: { cert: pemOf(expiredCert.cert), key: pemOf(expiredCert.key) } })],
  ];
  for (const [name, creds] of cases) {
    it(`${name} → Unauthenticated for Publish and Subscribe, nothing written, server healthy`, async () => {
      const client = clientOf(conductor, creds());
      const publishes = conductor.publishSpy.mock.calls.length;
      const subscribes = conductor.subscribeSpy.mock.calls.length;
      const handled = [...conductor.backends.values()].reduce((n, b) => n + b.handled.length, 0);
      expect(await outcome(() => client.publish({ event: event(DataTypes.manifestBundles, "status", "update_request", A) }))).toBe("Unauthenticated");
      expect(await outcome(() => client.publish({ event: event(DataTypes.managedClusters, "spec", "create_request", A) }))).toBe("Unauthenticated");
      expect(await outcome(() => subscribeOnce(client, A, DataTypes.manifestBundles))).toBe("Unauthenticated");
      expect(conductor.publishSpy.mock.calls.length).toBe(publishes);
      expect(conductor.subscribeSpy.mock.calls.length).toBe(subscribes);
      expect([...conductor.backends.values()].reduce((n, b) => n + b.handled.length, 0)).toBe(handled);
      // Healthy: a good client on the same server is served.
      await clientOf(conductor, { cert: { cert: certA.certPem, key: certA.keyPem } }).publish({ event: event(DataTypes.manifestBundles, "status", "update_request", A) });
      expect(conductor.backends.get(DataTypes.manifestBundles)!.handled.at(-1)!.identity?.user).toBe(certA.user);
    });
  }

  it("a rejected token with a valid certificate authenticates by the certificate (token first, then mTLS)", async () => {
    const client = clientOf(conductor, { token: "not-a-token-the-hub-knows", cert: { cert: certA.certPem, key: certA.keyPem } });
    await client.publish({ event: event(DataTypes.manifestBundles, "status", "update_request", A) });
    expect(conductor.backends.get(DataTypes.manifestBundles)!.handled.at(-1)!.identity?.user).toBe(certA.user);
  });
});

describe("review cache", () => {
  it("1,000 status publishes from one cluster in a burst cost ≤ 10 hub calls (coalesced and cached)", async () => {
    const conductor = await startConductor(10_000);
    const client = clientOf(conductor, { token: TOKEN_A });
    const results = await Promise.all(Array.from({ length: 1000 }, () => outcome(() =>
      client.publish({ event: event(DataTypes.manifestBundles, "status", "update_request", A) }))));
    expect(results.filter((r) => r !== "ok")).toEqual([]);
    expect(conductor.backends.get(DataTypes.manifestBundles)!.handled).toHaveLength(1000);
    console.log(`1,000 publishes: ${conductor.reviewer.calls.subjectAccessReviews} SubjectAccessReviews, ${conductor.reviewer.calls.tokenReviews} TokenReviews`);
    expect(conductor.reviewer.calls.subjectAccessReviews).toBeLessThanOrEqual(10);
    expect(conductor.reviewer.calls.tokenReviews).toBeLessThanOrEqual(10);
  }, 120_000);

  it("TTL 0 turns the cache off: every publish is one TokenReview and one SubjectAccessReview", async () => {
    const conductor = await startConductor(0);
    const client = clientOf(conductor, { token: TOKEN_A });
    await Promise.all(Array.from({ length: 100 }, () => client.publish({ event: event(DataTypes.manifestBundles, "status", "update_request", A) })));
    expect(conductor.reviewer.calls).toEqual({ tokenReviews: 100, subjectAccessReviews: 100 });
  }, 120_000);

  it("revoking the RoleBinding takes effect within the TTL", async () => {
    const ttlMs = 2_000;
    const conductor = await startConductor(ttlMs);
    const client = clientOf(conductor, { cert: { cert: certA.certPem, key: certA.keyPem } });
    const publish = () => outcome(() => client.publish({ event: event(DataTypes.manifestBundles, "status", "update_request", A) }));
    expect(await publish()).toBe("ok");
    const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    await rbac.deleteNamespacedRoleBinding({ name: "agent", namespace: A });
    const revoked = Date.now();
    let last = "ok";
    while (last === "ok" && Date.now() - revoked < ttlMs + 5_000) {
      await new Promise((r) => setTimeout(r, 50));
      last = await publish();
    }
    const tookMs = Date.now() - revoked;
    console.log(`RoleBinding revocation took effect after ${tookMs} ms (TTL ${ttlMs} ms)`);
    expect(last).toBe("PermissionDenied");
    // The TTL, plus the apiserver's RBAC informer catching up and one polling step.
    expect(tookMs).toBeLessThanOrEqual(ttlMs + 1_000);
    // A Subscribe after revocation is refused too.
    expect(await outcome(() => subscribeOnce(client, A, DataTypes.manifestBundles))).toBe("PermissionDenied");
    // Restore cluster A's RoleBinding for the tests that follow.
    await grantAgentRole(A, [{ kind: "ServiceAccount", name: "klusterlet", namespace: A }]);
  }, 60_000);
});

describe("conductor process wiring", () => {
  it("serve with TLS and Kubernetes access installs authentication and authorization in front of the broker", async () => {
    const kubeConfig = new ConnectionReusingKubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
    const config = defaultConfig();
    config.grpc = { ...config.grpc, port: 0 };
    const running = await startConductorProcess({
      mode: "router", config, admin: undefined, remotes: { workService: "http://127.0.0.1:1" },
      kube: { kubeConfig, origin: "--kubeconfig", server: cp.server },
      tls: { key: pemOf(serving.key), cert: pemOf(serving.cert), ca: pemOf(cp.clientCaFile) },
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    });
    try {
      expect(running.auth).toBeDefined();
      const grpc = running.grpc!;
      const conductor = { server: grpc } as unknown as Conductor;
      const lease = (cluster: string) => event(DataTypes.leases, "spec", "update_request", cluster);
      expect(await outcome(() => clientOf(conductor, {}).publish({ event: lease(A) }))).toBe("Unauthenticated");
      expect(await outcome(() => clientOf(conductor, { token: TOKEN_A }).publish({ event: lease(B) }))).toBe("PermissionDenied");
      // Authorized, then the (unreachable) work-service backend answers: not an auth failure.
      expect(await outcome(() => clientOf(conductor, { token: TOKEN_A }).publish({ event: lease(A) }))).not.toMatch(/Unauthenticated|PermissionDenied/);
    } finally {
      await running.stop();
    }
  }, 60_000);
});

describe("the conductor binary", () => {
  it("serve with TLS files and --kubeconfig: authenticates, authorizes, and reloads rotated serving files", async () => {
    const live = join(dir, "binary-live");
    mkdirSync(live);
    const ca2 = makeCa(dir, "binary-ca2");
    const serving2 = issue(dir, ca2, "binary-serving2", { subject: "/CN=conductor-rotated", usage: "server" });
    copyFileSync(serving.cert, join(live, "tls.crt"));
    copyFileSync(serving.key, join(live, "tls.key"));
    const configFile = join(dir, "binary.yaml");
    writeFileSync(configFile, `grpc_config:\n  tls_cert_file: ${join(live, "tls.crt")}\n  tls_key_file: ${join(live, "tls.key")}\n  client_ca_file: ${cp.clientCaFile}\n  cert_watch_interval: 1s\n`);
    const bin = fileURLToPath(new URL("../bin/conductor.js", import.meta.url));
    const child = spawn(process.execPath, [bin, "serve", "--mode", "router", "--work-service-url", "http://127.0.0.1:1", "--server-config", configFile,
      "--kubeconfig", cp.kubeconfigPath, "--grpc-port", "0", "--admin-port", "0"], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, KUBECONFIG: "" } });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
    try {
      const logs = () => stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg?: string; url?: string });
      const listening = await eventually(() => logs().find((l) => l.msg === "gRPC server listening"), 30_000, `the listening line\n${stderr}`);
      expect(logs().some((l) => l.msg?.startsWith("agents are authenticated"))).toBe(true);
      const port = Number(new URL(listening.url!).port);
      const conductor = { server: { url: `https://127.0.0.1:${port}` } } as unknown as Conductor;
      const lease = (cluster: string) => event(DataTypes.leases, "spec", "update_request", cluster);
      expect(await outcome(() => clientOf(conductor, {}).publish({ event: lease(A) }))).toBe("Unauthenticated");
      const agent = clientOf(conductor, { cert: { cert: certA.certPem, key: certA.keyPem } });
      expect(await outcome(() => agent.publish({ event: lease(B) }))).toBe("PermissionDenied");
      expect(await outcome(() => subscribeOnce(agent, B, DataTypes.leases))).toBe("PermissionDenied");
      // A stream open across the rotation.
      const abort = new AbortController();
      let received = 0;
      let ended: unknown;
      const stream = (async () => {
        try {
          for await (const _ of agent.subscribe({ clusterName: A, dataType: DataTypes.leases }, { signal: abort.signal })) received++;
          ended = "ended";
        } catch (err) {
          ended = err;
        }
      })();
      await eventually(() => received > 0, 20_000, "the stream's first heartbeat");
      copyFileSync(serving2.key, join(live, "tls.key"));
      copyFileSync(serving2.cert, join(live, "tls.crt"));
      const served = () => new Promise<string>((resolve) => {
        const socket = connect({ host: "127.0.0.1", port, ca: pemOf(ca2.cert), ALPNProtocols: ["h2"], servername: "localhost" }, () => {
          resolve(String(socket.getPeerCertificate().subject.CN));
          socket.end();
        });
        socket.on("error", () => resolve("not trusted yet"));
      });
      await eventually(async () => (await served()) === "conductor-rotated", 15_000, "the rotated certificate", 200);
      expect(logs().some((l) => l.msg === "TLS files reloaded")).toBe(true);
      expect(ended).toBeUndefined();
      abort.abort();
      await stream;
    } finally {
      child.kill("SIGTERM");
      await exited;
    }
  }, 90_000);
});
