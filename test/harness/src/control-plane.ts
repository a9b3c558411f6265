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
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { installCrds, readCrdDir } from "./control-plane-crds.js";
import { createPki, signClientCert } from "./control-plane-pki.js";
import { recordGroupForReaper, registerCleanup, startReaper, unregisterCleanup } from "./control-plane-cleanup.js";
import {
  freeLoopbackPort, isAddressInUse, killGroup, spawnGroup, waitReady, type GroupChild,
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
  /** The run directory (certs, logs `etcd.log` / `kube-apiserver.log`, etcd data). */
  readonly runDir: string;
  /** PIDs (= process-group IDs) of the two children. */
  readonly pids: { readonly etcd: number; readonly kubeApiserver: number };
  /** Names of the CRDs installed at start. */
  readonly crds: readonly string[];
  /** Start-up timings in ms: certificates, etcd ready, apiserver ready, CRDs established, total. */
  readonly timings: { readonly pki: number; readonly etcd: number; readonly apiserver: number; readonly crds: number; readonly total: number };
  /** Mints a client certificate for `user` in `groups` (CN/O), with its own kubeconfig. */
  mintClientIdentity(user: string, groups?: readonly string[]): Promise<ClientIdentity>;
  /** Returns a ServiceAccount token (TokenRequest), creating the namespace and ServiceAccount if needed. */
  mintToken(namespace: string, serviceAccount: string, opts?: MintTokenOptions): Promise<string>;
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
}

/** Spawns a child; retries on fresh ports (up to 3 times) when the chosen port turns out to be taken. */
async function startWithPorts(
  t: Tracker, name: string, exe: string, ports: number, args: (p: number[]) => string[],
  ready: (child: GroupChild, p: number[]) => Promise<void>,
): Promise<{ child: GroupChild; ports: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const p = await Promise.all(Array.from({ length: ports }, () => freeLoopbackPort()));
    const child = spawnGroup(name, exe, args(p), join(t.runDir, `${name}.log`));
    if (child.pid > 0) {
      recordGroupForReaper(t.runDir, child.pid, exe);
      t.children.push(child);
      t.pgids.push(child.pid);
    }
    try {
      await ready(child, p);
      return { child, ports: p };
    } catch (err) {
      if (attempt >= 3 || !isAddressInUse(child.tail())) throw err; // stop() ends it
      await killGroup(child, 2_000);
      t.children.splice(t.children.indexOf(child), 1);
      t.pgids.splice(t.pgids.indexOf(child.pid), 1);
    }
  }
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
  const tracker: Tracker = { runDir, children, pgids: cleanup.pgids };
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
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

    const api = await startWithPorts(tracker, "kube-apiserver", apiserverExe, 1, ([port]) => [
      `--etcd-servers=${etcdUrl}`, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
      `--secure-port=${port}`, `--cert-dir=${join(runDir, "apiserver-certs")}`,
      `--tls-cert-file=${pki.servingCert}`, `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.clientCaCert}`, `--token-auth-file=${tokenFile}`, "--authorization-mode=RBAC",
      `--service-account-issuer=https://127.0.0.1:${port}`, `--service-account-key-file=${pki.serviceAccountKey}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`, "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true", "--disable-admission-plugins=ServiceAccount", "--profiling=false",
      ...(opts.extraApiserverArgs ?? []),
    ], async (child, [port]) => {
      await waitReady(child, "kube-apiserver /readyz",
        () => httpsOk(`https://127.0.0.1:${port}/readyz`, caPem, adminToken), left());
    });
    const server = `https://127.0.0.1:${api.ports[0]}`;
    const tApi = Date.now();

    const kubeconfigPath = join(runDir, "admin.kubeconfig");
    const kubeConfig = await writeKubeconfig(kubeconfigPath, server, caPem, { token: adminToken });
    const crds = await installCrds(kubeConfig, crdDocs, left());
    const tCrds = Date.now();

    let identities = 0;
    const idDir = join(runDir, "identities");
    await mkdir(idDir, { mode: 0o700 });
    return {
      kubeconfigPath, kubeConfig, server, caFile: pki.servingCaCert, caPem, clientCaFile: pki.clientCaCert,
      adminToken, etcdUrl, runDir, crds,
      pids: { etcd: etcd.child.pid, kubeApiserver: api.child.pid },
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
