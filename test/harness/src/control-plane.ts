/**
 * A real Kubernetes control plane for tests: etcd and kube-apiserver (built from Go modules by
 * `test/peers/kube/build.sh`) started as child processes on free loopback ports with
 * envtest-equivalent flags, plus the OCM API CRDs.
 *
 * @packageDocumentation
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api, KubeConfig, type V1CustomResourceDefinition } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { installCrds, readCrdDir } from "./control-plane-crds.js";
import { createPki, signClientCert } from "./control-plane-pki.js";
import {
  recordGroupForReaper, registerCleanup, rewriteGroupsForReaper, startReaper, unregisterCleanup,
} from "./control-plane-cleanup.js";
import {
  freeLoopbackPort, isAddressInUse, killGroup, pollUntil, spawnGroup, waitReady, type GroupChild,
} from "./control-plane-process.js";

/** The testbin directory `test/peers/kube/build.sh` fills: `$OCM_TESTBIN_DIR` or `/var/tmp/ocm-conductor-testbins`. */
export function defaultTestbinDir(): string {
  return process.env.OCM_TESTBIN_DIR || "/var/tmp/ocm-conductor-testbins";
}

/** A static bearer token added to kube-apiserver's `--token-auth-file` (read once, at start). */
export interface StaticToken {
  /** The bearer token. */
  readonly token: string;
  /** User name it authenticates as. */
  readonly user: string;
  /** User UID (defaults to the user name). */
  readonly uid?: string;
  /** Groups of the user. */
  readonly groups?: readonly string[];
}

/** Options for {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** Directory holding `kube-apiserver`, `etcd` and `ocm-crds/`. Default: `<defaultTestbinDir()>/bin`. */
  readonly binDir?: string;
  /** CRD directory to install, or `null` for none. Default: `<binDir>/ocm-crds`. */
  readonly crdDir?: string | null;
  /** Extra static tokens besides the admin's (e.g. for simulated agents). */
  readonly staticTokens?: readonly StaticToken[];
  /** Extra kube-apiserver flags, appended last (so they override). */
  readonly extraApiserverArgs?: readonly string[];
  /** Bound for the whole start, in ms. Default 180 000. */
  readonly startTimeoutMs?: number;
  /** Keep the run directory (logs, certs, etcd data) after stop. Default: `OCM_KEEP_CONTROL_PLANE=1`. */
  readonly keepRunDir?: boolean;
}

/** A client identity minted by {@link ControlPlane.mintClientIdentity}. */
export interface ClientIdentity {
  /** User name (certificate CN). */
  readonly user: string;
  /** Groups (certificate O values). */
  readonly groups: readonly string[];
  /** PEM client certificate signed by the apiserver's client CA. */
  readonly certPem: string;
  /** PEM private key of the certificate. */
  readonly keyPem: string;
  /** Certificate file path (inside the run directory). */
  readonly certFile: string;
  /** Key file path (inside the run directory). */
  readonly keyFile: string;
  /** A kubeconfig for this identity with the certificate, key and CA embedded. */
  readonly kubeconfigPath: string;
  /** The same kubeconfig, loaded. */
  readonly kubeConfig: KubeConfig;
}

/** Options for {@link ControlPlane.mintToken}. */
export interface MintTokenOptions {
  /** Token audiences; default: the apiserver's own (its issuer URL). */
  readonly audiences?: string[];
  /** Requested lifetime in seconds (the apiserver enforces a minimum of 600). Default 3600. */
  readonly expirationSeconds?: number;
}

/** Options for {@link ControlPlane.restartApiServer}. */
export interface RestartApiServerOptions {
  /** How long kube-apiserver stays down after it has exited, before it is started again. Default 0. */
  readonly downMs?: number;
  /** How long to wait after SIGTERM before SIGKILL. Default 10 000. */
  readonly graceMs?: number;
  /** Bound for the new process to serve `/readyz` and every installed CRD. Default 60 000. */
  readonly readyTimeoutMs?: number;
}

/** What {@link ControlPlane.restartApiServer} did, with timings in ms. */
export interface ApiServerRestart {
  /** PID (= process-group ID) of the process that was stopped. */
  readonly oldPid: number;
  /** PID (= process-group ID) of the new process. */
  readonly pid: number;
  /** Log file of the new process (inside the run directory). */
  readonly logFile: string;
  /** From SIGTERM until the old process group was gone. */
  readonly stopMs: number;
  /** From the old process being gone until the new one served `/readyz` and the CRDs. */
  readonly startMs: number;
  /** The whole outage: SIGTERM until the new process served `/readyz` and the CRDs. */
  readonly outageMs: number;
}

/** A running etcd + kube-apiserver pair. */
export interface ControlPlane {
  /** Admin kubeconfig file (static token user `admin` in `system:masters`, CA embedded). */
  readonly kubeconfigPath: string;
  /** The admin kubeconfig, loaded. */
  readonly kubeConfig: KubeConfig;
  /** The apiserver URL, `https://127.0.0.1:<port>`. */
  readonly server: string;
  /** File of the CA that signed the apiserver's serving certificate. */
  readonly caFile: string;
  /** PEM of that CA. */
  readonly caPem: string;
  /** File of the CA the apiserver trusts for client certificates (`--client-ca-file`). */
  readonly clientCaFile: string;
  /** The admin's bearer token. */
  readonly adminToken: string;
  /** etcd client URL, `http://127.0.0.1:<port>`. */
  readonly etcdUrl: string;
  /**
   * The run directory (certs, logs `etcd.log` / `kube-apiserver.log`, etcd data). After a
   * {@link ControlPlane.restartApiServer}, the new process logs to `kube-apiserver.restart-<n>.log`.
   */
  readonly runDir: string;
  /** PIDs (= process-group IDs) of the two children; `kubeApiserver` changes with every restart. */
  readonly pids: { readonly etcd: number; readonly kubeApiserver: number };
  /** Names of the CRDs installed at start. */
  readonly crds: readonly string[];
  /** Start-up timings in ms: certificates, etcd ready, apiserver ready, CRDs established, total. */
  readonly timings: { readonly pki: number; readonly etcd: number; readonly apiserver: number; readonly crds: number; readonly total: number };
  /** Mints a client certificate for `user` in `groups` (CN/O), with its own kubeconfig. */
  mintClientIdentity(user: string, groups?: readonly string[]): Promise<ClientIdentity>;
  /** Returns a ServiceAccount token (TokenRequest), creating the namespace and ServiceAccount if needed. */
  mintToken(namespace: string, serviceAccount: string, opts?: MintTokenOptions): Promise<string>;
  /**
   * Restarts kube-apiserver while etcd keeps running, as a hub API server upgrade or crash would:
   * ends its process group (SIGTERM, then SIGKILL after `graceMs`), waits `downMs`, then starts it
   * again on the SAME port with the same flags, certificates and tokens, and resolves once it
   * serves `/readyz` and every CRD installed at start. Stored objects survive (they live in etcd);
   * `server`, `kubeConfig`, minted identities and tokens stay valid. Concurrent calls run one after
   * the other.
   *
   * @throws if the control plane is stopped, or the new process exits or is not ready in time (the
   * error carries its last output); the control plane is then left without an apiserver, and
   * {@link ControlPlane.stop} still ends everything.
   */
  restartApiServer(options?: RestartApiServerOptions): Promise<ApiServerRestart>;
  /** Ends both process groups (SIGTERM, SIGKILL after 10 s) and removes the run directory. Idempotent. */
  stop(): Promise<void>;
}

/** Thrown by {@link startControlPlane} when start fails; everything it started has been ended. */
export class ControlPlaneStartError extends Error {
  /** PIDs of the children that were started (all ended by the time this is thrown). */
  readonly pids: readonly number[];
  /** The run directory (removed unless `keepRunDir`). */
  readonly runDir: string;
  /** @param message - what failed. @param runDir - run directory. @param pids - started PIDs. @param cause - original error. */
  constructor(message: string, runDir: string, pids: readonly number[], cause: unknown) {
    super(message, { cause });
    this.name = "ControlPlaneStartError";
    this.runDir = runDir;
    this.pids = pids;
  }
}

/** Writes a kubeconfig for `server` with `user` credentials and loads it. */
async function writeKubeconfig(path: string, server: string, caPem: string, user: Record<string, string>): Promise<KubeConfig> {
  const b64 = (s: string): string => Buffer.from(s).toString("base64");
  const doc = {
    apiVersion: "v1", kind: "Config", "current-context": "ocm-test", preferences: {},
    clusters: [{ name: "ocm-test", cluster: { server, "certificate-authority-data": b64(caPem) } }],
    users: [{ name: "user", user }],
    contexts: [{ name: "ocm-test", context: { cluster: "ocm-test", user: "user" } }],
  };
  await writeFile(path, stringify(doc), { mode: 0o600 });
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** GET `url` over HTTPS with the given CA and bearer token; resolves true on HTTP 200. */
function httpsOk(url: string, ca: string, token: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: { Authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end();
  });
}

/** Where started children are recorded, so that stop() and the exit hooks can end them. */
interface Tracker {
  readonly runDir: string;
  readonly children: GroupChild[];
  readonly pgids: number[];
  /** Resolved executable of each tracked process group, for the reaper's file. */
  readonly exes: Map<number, string>;
}

/** Starts tracking a spawned child (stop(), exit hooks, reaper). */
function track(t: Tracker, child: GroupChild, exe: string): void {
  if (child.pid <= 0) return;
  recordGroupForReaper(t.runDir, child.pid, exe);
  t.children.push(child);
  t.pgids.push(child.pid);
  t.exes.set(child.pid, exe);
}

/** Stops tracking a child that has been ended, and drops it from the reaper's file. */
function untrack(t: Tracker, child: GroupChild): void {
  const i = t.children.indexOf(child);
  if (i >= 0) t.children.splice(i, 1);
  const j = t.pgids.indexOf(child.pid);
  if (j >= 0) t.pgids.splice(j, 1);
  t.exes.delete(child.pid);
  rewriteGroupsForReaper(t.runDir, t.pgids.map((pgid) => ({ pgid, exe: t.exes.get(pgid) ?? "" })));
}

/** Spawns a child; retries on fresh ports (up to 3 times) when the chosen port turns out to be taken. */
async function startWithPorts(
  t: Tracker, name: string, exe: string, ports: number, args: (p: number[]) => string[],
  ready: (child: GroupChild, p: number[]) => Promise<void>,
): Promise<{ child: GroupChild; ports: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const p = await Promise.all(Array.from({ length: ports }, () => freeLoopbackPort()));
    const child = spawnGroup(name, exe, args(p), join(t.runDir, `${name}.log`));
    track(t, child, exe);
    try {
      await ready(child, p);
      return { child, ports: p };
    } catch (err) {
      if (attempt >= 3 || !isAddressInUse(child.tail())) throw err; // stop() ends it
      await killGroup(child, 2_000);
      untrack(t, child);
    }
  }
}

/**
 * Waits until the apiserver serves a list of every CRD's resource (storage version, `limit=1`):
 * after a restart `/readyz` can pass a moment before the CRD handlers are in place.
 */
async function waitCrdsServed(
  server: string, ca: string, token: string, crds: readonly V1CustomResourceDefinition[], timeoutMs: number,
): Promise<void> {
  const urls = crds.map((crd) => {
    const version = crd.spec.versions.find((v) => v.storage)?.name ?? crd.spec.versions[0]?.name;
    return `${server}/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}?limit=1`;
  });
  const pending = new Set(urls);
  const ok = await pollUntil(async () => {
    for (const url of [...pending]) {
      if (await httpsOk(url, ca, token).catch(() => false)) pending.delete(url);
    }
    return pending.size === 0;
  }, timeoutMs, 100);
  if (!ok) throw new Error(`CRDs not served after ${timeoutMs} ms: ${[...pending].join(", ")}`);
}

/** Resolves a binary in `binDir`, or throws telling the user to run the build script. */
function binary(binDir: string, name: string): string {
  const path = join(binDir, name);
  if (!existsSync(path)) {
    throw new Error(`${path} not found (missing or dangling link); build it with test/peers/kube/build.sh ` +
      `(cold build takes ~20 min, see test/peers/kube/README.md)`);
  }
  return realpathSync(path);
}

/**
 * Starts etcd and kube-apiserver, waits for etcd `/health` and apiserver `/readyz`, writes an admin
 * kubeconfig and installs the CRDs (waiting for `Established`). Call {@link ControlPlane.stop} when
 * done; exit hooks and a reaper end the processes if the test process dies first.
 *
 * @throws if a binary is missing, a child exits during start (the error carries its last output),
 * or readiness is not reached within `startTimeoutMs`.
 */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = Date.now();
  const deadline = t0 + (opts.startTimeoutMs ?? 180_000);
  const left = (): number => Math.max(1_000, deadline - Date.now());
  const binDir = opts.binDir ?? join(defaultTestbinDir(), "bin");
  const etcdExe = binary(binDir, "etcd");
  const apiserverExe = binary(binDir, "kube-apiserver");
  const crdDir = opts.crdDir === undefined ? join(binDir, "ocm-crds") : opts.crdDir;
  const crdDocs = crdDir === null ? [] : await readCrdDir(crdDir);
  const keep = opts.keepRunDir ?? process.env.OCM_KEEP_CONTROL_PLANE === "1";

  const runDir = mkdtempSync(join(tmpdir(), "ocm-control-plane-"));
  const cleanup = registerCleanup({ pgids: [], runDir: keep ? undefined : runDir, reaper: undefined });
  cleanup.reaper = startReaper(runDir, !keep);
  const children: GroupChild[] = [];
  const tracker: Tracker = { runDir, children, pgids: cleanup.pgids, exes: new Map() };
  let stopped: Promise<void> | undefined;
  /** The restart in flight (restarts are serialised; stop() waits for it, which is bounded). */
  let restarting: Promise<unknown> = Promise.resolve();
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await restarting.catch(() => undefined);
      cleanup.reaper?.kill("SIGKILL");
      // apiserver first (it is etcd's client), then etcd; both bounded by killGroup.
      for (const child of [...children].reverse()) await killGroup(child);
      unregisterCleanup(cleanup);
      if (!keep) rmSync(runDir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    const pkiDir = join(runDir, "pki");
    await mkdir(pkiDir, { mode: 0o700 });
    const pki = await createPki(pkiDir);
    const caPem = await readFile(pki.servingCaCert, "utf8");
    const adminToken = randomBytes(24).toString("hex");
    const tokens: StaticToken[] = [{ token: adminToken, user: "admin", groups: ["system:masters"] }, ...(opts.staticTokens ?? [])];
    const tokenFile = join(pkiDir, "tokens.csv");
    await writeFile(tokenFile, tokens.map((t) => `${t.token},${t.user},${t.uid ?? t.user},"${(t.groups ?? []).join(",")}"\n`).join(""));
    const tPki = Date.now();

    const etcd = await startWithPorts(tracker, "etcd", etcdExe, 2, ([client, peer]) => [
      "--name=default", `--data-dir=${join(runDir, "etcd-data")}`, "--unsafe-no-fsync=true", "--log-level=warn",
      `--listen-client-urls=http://127.0.0.1:${client}`, `--advertise-client-urls=http://127.0.0.1:${client}`,
      `--listen-peer-urls=http://127.0.0.1:${peer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
      `--initial-cluster=default=http://127.0.0.1:${peer}`,
    ], async (child, [client]) => {
      await waitReady(child, "etcd /health", async () => {
        const res = await fetch(`http://127.0.0.1:${client}/health`, { signal: AbortSignal.timeout(2_000) });
        return res.ok && ((await res.json()) as { health?: string }).health === "true";
      }, Math.min(30_000, left()));
    });
    const etcdUrl = `http://127.0.0.1:${etcd.ports[0]}`;
    const tEtcd = Date.now();

    const apiserverArgs = ([port]: number[]): string[] => [
      `--etcd-servers=${etcdUrl}`, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
      `--secure-port=${port}`, `--cert-dir=${join(runDir, "apiserver-certs")}`,
      `--tls-cert-file=${pki.servingCert}`, `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.clientCaCert}`, `--token-auth-file=${tokenFile}`, "--authorization-mode=RBAC",
      `--service-account-issuer=https://127.0.0.1:${port}`, `--service-account-key-file=${pki.serviceAccountKey}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`, "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true", "--disable-admission-plugins=ServiceAccount", "--profiling=false",
      ...(opts.extraApiserverArgs ?? []),
    ];
    const api = await startWithPorts(tracker, "kube-apiserver", apiserverExe, 1, apiserverArgs, async (child, [port]) => {
      await waitReady(child, "kube-apiserver /readyz",
        () => httpsOk(`https://127.0.0.1:${port}/readyz`, caPem, adminToken), left());
    });
    const apiPort = api.ports[0]!;
    const server = `https://127.0.0.1:${apiPort}`;
    let apiChild = api.child;
    let restarts = 0;
    const tApi = Date.now();

    const kubeconfigPath = join(runDir, "admin.kubeconfig");
    const kubeConfig = await writeKubeconfig(kubeconfigPath, server, caPem, { token: adminToken });
    const crds = await installCrds(kubeConfig, crdDocs, left());
    const tCrds = Date.now();

    const restartOnce = async (ropts: RestartApiServerOptions): Promise<ApiServerRestart> => {
      if (stopped) throw new Error("control plane is stopped");
      const old = apiChild;
      const tKill = Date.now();
      await killGroup(old, ropts.graceMs ?? 10_000);
      untrack(tracker, old);
      const tDown = Date.now();
      if ((ropts.downMs ?? 0) > 0) await new Promise((r) => setTimeout(r, ropts.downMs));
      const readyTimeout = ropts.readyTimeoutMs ?? 60_000;
      const readyBy = Date.now() + readyTimeout;
      for (let attempt = 1; ; attempt++) {
        if (stopped) throw new Error("control plane was stopped during the kube-apiserver restart");
        const logFile = join(runDir, `kube-apiserver.restart-${++restarts}.log`);
        const child = spawnGroup("kube-apiserver", apiserverExe, apiserverArgs([apiPort]), logFile);
        track(tracker, child, apiserverExe);
        try {
          await waitReady(child, `kube-apiserver /readyz after restart on port ${apiPort}`,
            () => httpsOk(`${server}/readyz`, caPem, adminToken), Math.max(1_000, readyBy - Date.now()));
          await waitCrdsServed(server, caPem, adminToken, crdDocs, Math.max(1_000, readyBy - Date.now()));
        } catch (err) {
          // The port is fixed: a socket of the old process (or anyone else) may hold it briefly.
          if (!isAddressInUse(child.tail()) || attempt >= 10 || Date.now() >= readyBy) {
            throw new Error(`kube-apiserver did not come back on port ${apiPort} within ${readyTimeout} ms ` +
              `(attempt ${attempt}): ${(err as Error).message}`, { cause: err });
          }
          await killGroup(child, 2_000);
          untrack(tracker, child);
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        apiChild = child;
        const tReady = Date.now();
        return { oldPid: old.pid, pid: child.pid, logFile, stopMs: tDown - tKill, startMs: tReady - tDown, outageMs: tReady - tKill };
      }
    };

    let identities = 0;
    const idDir = join(runDir, "identities");
    await mkdir(idDir, { mode: 0o700 });
    return {
      kubeconfigPath, kubeConfig, server, caFile: pki.servingCaCert, caPem, clientCaFile: pki.clientCaCert,
      adminToken, etcdUrl, runDir, crds,
      get pids() {
        return { etcd: etcd.child.pid, kubeApiserver: apiChild.pid };
      },
      timings: { pki: tPki - t0, etcd: tEtcd - tPki, apiserver: tApi - tEtcd, crds: tCrds - tApi, total: tCrds - t0 },
      async mintClientIdentity(user, groups = []) {
        if (stopped) throw new Error("control plane is stopped");
        const base = `id-${++identities}`;
        const cert = await signClientCert(pki, idDir, base, user, groups);
        const path = join(idDir, `${base}.kubeconfig`);
        const kc = await writeKubeconfig(path, server, caPem, {
          "client-certificate-data": Buffer.from(cert.certPem).toString("base64"),
          "client-key-data": Buffer.from(cert.keyPem).toString("base64"),
        });
        return { user, groups: [...groups], ...cert, kubeconfigPath: path, kubeConfig: kc };
      },
      async mintToken(namespace, serviceAccount, tokenOpts = {}) {
        const core = kubeConfig.makeApiClient(CoreV1Api);
        const ignoreExists = (err: unknown): void => {
          if ((err as { code?: number }).code !== 409) throw err;
        };
        await core.createNamespace({ body: { metadata: { name: namespace } } }).catch(ignoreExists);
        await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } })
          .catch(ignoreExists);
        const tr = await core.createNamespacedServiceAccountToken({
          name: serviceAccount, namespace,
          body: { spec: { audiences: tokenOpts.audiences ?? [], expirationSeconds: tokenOpts.expirationSeconds ?? 3600 } },
        });
        const token = tr.status?.token;
        if (!token) throw new Error(`TokenRequest for ${namespace}/${serviceAccount} returned no token`);
        return token;
      },
      restartApiServer(ropts = {}) {
        const next = restarting.catch(() => undefined).then(() => restartOnce(ropts));
        restarting = next;
        return next;
      },
      stop,
    };
  } catch (err) {
    const pids = children.map((c) => c.pid);
    const stopError = await stop().then(() => "", (e: Error) => `; cleanup also failed: ${e.message}`);
    const kept = keep ? ` (run directory kept: ${runDir})` : "";
    throw new ControlPlaneStartError(
      `control plane failed to start: ${(err as Error).message}${kept}${stopError}`, runDir, pids, err);
  }
}
