/**
 * Shared helpers of the deploy suite: the helm and kubectl binaries built by
 * test/peers/helm/build.sh, rendering a chart, and the CRD directory the control plane starts with.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, realpath, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defaultTestbinDir } from "@ocm-conductor/test-harness";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const binDir = join(defaultTestbinDir(), "bin");

/** Path of a binary in the testbin directory, or an error naming the build script. */
export function tool(name: "helm" | "kubectl"): string {
  const path = join(binDir, name);
  if (!existsSync(path)) throw new Error(`${path} not found: build it with test/peers/helm/build.sh (scripts/build-peers.sh runs it)`);
  return path;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((done) => {
    execFile(file, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? repoRoot, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1;
      done({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

let helmHome: Promise<string> | undefined;
/** Environment for helm: its config, cache and data directories in a private temp directory. */
export async function helmEnv(extra: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  helmHome ??= mkdtemp(join(tmpdir(), "deploy-helm-home-"));
  const home = await helmHome;
  return { ...process.env, HELM_CONFIG_HOME: join(home, "config"), HELM_CACHE_HOME: join(home, "cache"), HELM_DATA_HOME: join(home, "data"), ...extra };
}

/** `helm template` of a chart with one values file; the rendered objects. */
export async function renderChart(chart: string, release: string, namespace: string, valuesFile?: string): Promise<KubernetesObject[]> {
  const args = ["template", release, chart, "--namespace", namespace];
  if (valuesFile !== undefined) args.push("--values", valuesFile);
  const r = await run(tool("helm"), args, { env: await helmEnv() });
  if (r.code !== 0) throw new Error(`helm ${args.join(" ")} failed (${r.code}):\n${r.stderr}`);
  const objects: KubernetesObject[] = [];
  for (const doc of parseAllDocuments(r.stdout)) {
    if (doc.errors.length > 0) throw new Error(`helm template output does not parse: ${doc.errors[0]?.message}`);
    const obj = doc.toJS() as KubernetesObject | null;
    if (obj !== null && obj !== undefined) objects.push(obj);
  }
  return objects;
}

/** The values files of a chart's `ci/` directory (absolute paths, sorted). */
export async function ciValues(chart: string): Promise<string[]> {
  const dir = join(chart, "ci");
  return (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => join(dir, n));
}

/**
 * A CRD directory for startControlPlane: the OCM CRDs the kube peer links, the real ClusterManager
 * CRD of the same open-cluster-management.io/api module (found through those links), and this
 * package's stand-ins (crds/: ServiceMonitor, Route, KlusterletConfig).
 */
export async function crdDirWithExtras(): Promise<string> {
  const ocm = join(binDir, "ocm-crds");
  const dir = await mkdtemp(join(tmpdir(), "deploy-crds-"));
  await mkdir(dir, { recursive: true });
  const names = (await readdir(ocm)).filter((n) => n.endsWith(".yaml"));
  for (const n of names) await symlink(await realpath(join(ocm, n)), join(dir, n));
  const managedClusters = names.find((n) => n.includes("_managedclusters."));
  if (managedClusters === undefined) throw new Error(`${ocm} has no ManagedCluster CRD; run test/peers/kube/build.sh`);
  // <api module>/cluster/v1/<file> → <api module>/operator/v1/…clustermanagers.crd.yaml
  const apiDir = resolve(dirname(await realpath(join(ocm, managedClusters))), "../..");
  const clusterManagers = join(apiDir, "operator/v1/0000_01_operator.open-cluster-management.io_clustermanagers.crd.yaml");
  if (!existsSync(clusterManagers)) throw new Error(`ClusterManager CRD not found at ${clusterManagers}`);
  await symlink(clusterManagers, join(dir, "clustermanagers.crd.yaml"));
  const standIns = join(repoRoot, "test/deploy/crds");
  for (const n of await readdir(standIns)) await symlink(join(standIns, n), join(dir, `stand-in-${n}`));
  return dir;
}
