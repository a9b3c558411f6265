/**
 * Status publishes per second through the conductor with agent authentication and authorization on
 * vs off (issue #7). Measurement, not a test: nothing here asserts a rate.
 *
 * One process: a real kube-apiserver + etcd (the hub answering TokenReview and SubjectAccessReview
 * with RBAC), the conductor's TLS transport (`startGrpcServer`) around a Broker whose manifestbundles
 * backend only counts, and the load: one HTTP/2 connection per simulated cluster, each with a fixed
 * number of ManifestBundle `status.update_request` publishes in flight, for a fixed time. Modes:
 *
 *   off         TLS, no authentication or authorization (the transport alone)
 *   cert        TLS + client certificate (CN/O) + SubjectAccessReview, review cache (default TTL 10 s)
 *   token       TLS + bearer token (TokenReview) + SubjectAccessReview, review cache
 *   token-ttl0  as token with the cache off (auth_cache_ttl 0: every publish is 2 hub calls, like the Go server)
 *
 * Run (after `pnpm build`; peers built by scripts/build-peers.sh):
 *
 *   pnpm --filter @ocm-conductor/bench run auth-throughput [-- --clusters 10 --concurrency 16 --seconds 10 --modes off,cert,token,token-ttl0]
 *
 * The load generator shares the event loop (and the 2 cores) with the conductor, so absolute rates
 * are lower bounds; the on/off ratio is the point. Results: bench/RESULTS.md.
 *
 * @packageDocumentation
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import * as ConductorApp from "@ocm-conductor/conductor";
import { HubAuth, KubeHubReviewer, createAuthInterceptor } from "@ocm-conductor/hub-auth";
import { CloudEventService, DataTypes, newEvent, toProto, type CloudEvent } from "@ocm-conductor/protocol";
import { Broker, type Backend } from "@ocm-conductor/router";
import { startControlPlane, type ClientIdentity, type ControlPlane } from "@ocm-conductor/test-harness";
import { ConnectionReusingKubeConfig } from "@ocm-conductor/work-service";

type Mode = "off" | "cert" | "token" | "token-ttl0";
const MODES: readonly Mode[] = ["off", "cert", "token", "token-ttl0"];

/** Counts handled events; does nothing else, so the measurement is transport + auth + broker. */
class CountingBackend implements Backend {
  handled = 0;
  attach(): void {}
  list(): Promise<CloudEvent[]> {
    return Promise.resolve([]);
  }
  handle(): Promise<void> {
    this.handled++;
    return Promise.resolve();
  }
}

interface Result {
  mode: Mode;
  publishesPerSecond: number;
  publishes: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  tokenReviews: number;
  subjectAccessReviews: number;
  cpuMsPerPublish: number;
}

const { values } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== "--"), // pnpm may pass the "--" through
  options: {
    clusters: { type: "string", default: "10" },
    concurrency: { type: "string", default: "16" },
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    modes: { type: "string", default: MODES.join(",") },
    rounds: { type: "string", default: "3" },
  },
});
const clusters = Number(values.clusters);
const concurrency = Number(values.concurrency);
const seconds = Number(values.seconds);
const warmupSeconds = Number(values.warmup);
const modes = values.modes.split(",") as Mode[];
const rounds = Number(values.rounds);
for (const m of modes) if (!MODES.includes(m)) throw new Error(`unknown mode ${m}; known: ${MODES.join(", ")}`);

const clusterName = (i: number) => `bench-${i}`;
const group = (c: string) => `system:open-cluster-management:${c}`;
const tokenOf = (i: number) => `bench-token-${i}-${"x".repeat(24)}`;

function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-auth-"));
  let cp: ControlPlane | undefined;
  try {
    openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=bench-ca", "-keyout", "ca.key", "-out", "ca.crt");
    writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    openssl(dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=conductor", "-keyout", "server.key", "-out", "server.csr");
    openssl(dir, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-extfile", "server.ext", "-out", "server.crt");
    const servingCa = readFileSync(join(dir, "ca.crt"));

    cp = await startControlPlane({ staticTokens: Array.from({ length: clusters }, (_, i) => ({ token: tokenOf(i), user: `agent-${i}`, groups: [group(clusterName(i))] })) });
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const rbac = cp.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createClusterRole({ body: { metadata: { name: "open-cluster-management:managedcluster:work" }, rules: [
      { apiGroups: ["work.open-cluster-management.io"], resources: ["manifestworks"], verbs: ["get", "list", "watch", "update", "patch"] },
      { apiGroups: ["work.open-cluster-management.io"], resources: ["manifestworks/status"], verbs: ["patch", "update"] },
    ] } });
    const identities: ClientIdentity[] = [];
    for (let i = 0; i < clusters; i++) {
      const c = clusterName(i);
      await core.createNamespace({ body: { metadata: { name: c } } });
      await rbac.createNamespacedRoleBinding({ namespace: c, body: {
        metadata: { name: "work" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "open-cluster-management:managedcluster:work" },
        subjects: [{ kind: "Group", apiGroup: "rbac.authorization.k8s.io", name: group(c) }],
      } });
      identities.push(await cp.mintClientIdentity(`system:open-cluster-management:${c}:agent`, [group(c)]));
    }

    // Rounds rotate the order of the modes, so JIT warm-up and background load do not favour one mode.
    const byMode = new Map<Mode, Result[]>(modes.map((m) => [m, []]));
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < modes.length; k++) {
        const mode = modes[(k + round) % modes.length]!;
        const result = await runMode(mode, cp, servingCa, readFileSync(join(dir, "server.key")), readFileSync(join(dir, "server.crt")), identities);
        byMode.get(mode)!.push(result);
        console.log(JSON.stringify({ round: round + 1, ...result }));
      }
    }
    console.log(`\n${clusters} clusters × ${concurrency} publishes in flight, ${seconds} s per mode and round (after ${warmupSeconds} s warm-up), ${rounds} rounds; median round (min–max of publishes/s)\n`);
    console.log("| mode | publishes/s | p50 ms | p99 ms | hub calls per 1,000 publishes (TokenReview + SAR) | CPU ms / publish | errors |");
    console.log("|---|---|---|---|---|---|---|");
    for (const [mode, all] of byMode) {
      const sorted = [...all].sort((a, b) => a.publishesPerSecond - b.publishesPerSecond);
      const r = sorted[Math.floor(sorted.length / 2)]!;
      const calls = ((r.tokenReviews + r.subjectAccessReviews) / Math.max(1, r.publishes)) * 1000;
      console.log(`| ${mode} | ${Math.round(r.publishesPerSecond)} (${Math.round(sorted[0]!.publishesPerSecond)}–${Math.round(sorted.at(-1)!.publishesPerSecond)}) | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${calls.toFixed(calls < 10 ? 2 : 0)} | ${r.cpuMsPerPublish.toFixed(2)} | ${all.reduce((n, x) => n + x.errors, 0)} |`);
    }
    console.log(`\nmachine: ${cpus()[0]?.model ?? "unknown"}, ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, Node ${process.version}, ${new Date().toISOString()}`);
  } finally {
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runMode(mode: Mode, cp: ControlPlane, servingCa: Buffer, key: Buffer, cert: Buffer, identities: ClientIdentity[]): Promise<Result> {
  const broker = new Broker({ heartbeatIntervalMs: 0 });
  const backend = new CountingBackend();
  broker.registerBackend(DataTypes.manifestBundles, backend);
  const kubeConfig = new ConnectionReusingKubeConfig();
  kubeConfig.loadFromFile(cp.kubeconfigPath);
  const reviewer = new KubeHubReviewer(kubeConfig);
  const auth = mode === "off" ? undefined : new HubAuth({ reviewer, cacheTtlMs: mode === "token-ttl0" ? 0 : 10_000 });
  const server = await ConductorApp.startGrpcServer({
    config: { ...ConductorApp.defaultConfig().grpc, port: 0 },
    broker,
    tls: { key, cert, ca: readFileSync(cp.clientCaFile) },
    interceptors: auth === undefined ? [] : [createAuthInterceptor(auth)],
  });
  try {
    const clients: Array<Client<typeof CloudEventService>> = identities.map((id, i) => createClient(CloudEventService, createGrpcTransport({
      baseUrl: server.url,
      nodeOptions: { ca: servingCa, ...(mode === "cert" && { cert: id.certPem, key: id.keyPem }) },
      interceptors: mode === "token" || mode === "token-ttl0" ? [(next) => (req) => {
        req.header.set("authorization", `Bearer ${tokenOf(i)}`);
        return next(req);
      }] : [],
    })));
    const events = identities.map((_, i) => toProto(newEvent({
      type: `${DataTypes.manifestBundles}.status.update_request`, source: `${clusterName(i)}-work-agent`, clusterName: clusterName(i),
      extensions: { resourceid: "5b6f3c1e-0d2a-4f7b-9c8e-1a2b3c4d5e6f", resourceversion: 1, originalsource: "kube" },
      data: { conditions: [{ type: "Applied", status: "True", reason: "AppliedManifestWorkComplete", message: "Apply manifest work complete", lastTransitionTime: "2026-12-01T00:00:00Z" }], resourceStatus: { manifests: [] } },
    })));
    let measuring = false;
    let stop = false;
    const latencies: number[] = [];
    let errors = 0;
    const worker = async (i: number) => {
      const client = clients[i]!;
      const event = events[i]!;
      while (!stop) {
        const t0 = performance.now();
        try {
          await client.publish({ event });
          if (measuring) latencies.push(performance.now() - t0);
        } catch {
          if (measuring) errors++;
        }
      }
    };
    const workers = identities.flatMap((_, i) => Array.from({ length: concurrency }, () => worker(i)));
    await new Promise((r) => setTimeout(r, warmupSeconds * 1000));
    const hubBefore = { ...reviewer.calls };
    const cpuBefore = process.cpuUsage();
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, seconds * 1000));
    measuring = false;
    const elapsed = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    stop = true;
    await Promise.all(workers);
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    return {
      mode,
      publishesPerSecond: latencies.length / elapsed,
      publishes: latencies.length,
      errors,
      p50Ms: at(0.5),
      p99Ms: at(0.99),
      tokenReviews: reviewer.calls.tokenReviews - hubBefore.tokenReviews,
      subjectAccessReviews: reviewer.calls.subjectAccessReviews - hubBefore.subjectAccessReviews,
      cpuMsPerPublish: latencies.length === 0 ? 0 : (cpu.user + cpu.system) / 1000 / latencies.length,
    };
  } finally {
    await server.close(1000);
  }
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
