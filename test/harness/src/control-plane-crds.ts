/**
 * Installs CustomResourceDefinitions from a directory of YAML files and waits until the apiserver
 * serves them (`Established` and `NamesAccepted`).
 *
 * @packageDocumentation
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  ApiextensionsV1Api,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { pollUntil } from "./control-plane-process.js";

/**
 * Reads every `*.yaml`/`*.yml` file in `dir` (symlinks are followed) and returns the CRDs in them.
 * Throws with a hint to run the build script if the directory or a link target is missing.
 */
export async function readCrdDir(dir: string): Promise<V1CustomResourceDefinition[]> {
  const hint = "run test/peers/kube/build.sh (it links the OCM API CRDs from the Go module cache)";
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch {
    throw new Error(`CRD directory ${dir} does not exist; ${hint}`);
  }
  if (names.length === 0) throw new Error(`CRD directory ${dir} has no YAML files; ${hint}`);
  const crds: V1CustomResourceDefinition[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      await stat(file);
    } catch {
      throw new Error(`CRD file ${file} is a dangling link (Go module cache cleaned?); ${hint}`);
    }
    for (const doc of parseAllDocuments(await readFile(file, "utf8"))) {
      if (doc.errors.length > 0) throw new Error(`cannot parse ${file}: ${doc.errors[0]?.message}`);
      const obj = doc.toJS() as V1CustomResourceDefinition | null;
      if (obj?.kind === "CustomResourceDefinition") crds.push(obj);
    }
  }
  return crds;
}

/** True if the CRD reports condition `type` with status `True`. */
function hasCondition(crd: V1CustomResourceDefinition, type: string): boolean {
  return crd.status?.conditions?.some((c) => c.type === type && c.status === "True") ?? false;
}

/**
 * Creates each CRD (an existing one with the same name is left as it is) and waits until all are
 * `Established` and `NamesAccepted`.
 *
 * @param kc - admin credentials.
 * @param crds - the CRDs to install.
 * @param timeoutMs - bound for the whole wait.
 * @returns the names of the installed CRDs.
 */
export async function installCrds(
  kc: KubeConfig,
  crds: readonly V1CustomResourceDefinition[],
  timeoutMs = 60_000,
): Promise<string[]> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const names: string[] = [];
  for (const crd of crds) {
    const name = crd.metadata?.name;
    if (!name) throw new Error("a CRD without metadata.name cannot be installed");
    names.push(name);
    try {
      await api.createCustomResourceDefinition({ body: crd });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) {
        throw new Error(`creating CRD ${name} failed: ${(err as Error).message}`);
      }
    }
  }
  const pending = new Set(names);
  const ok = await pollUntil(async () => {
    for (const name of [...pending]) {
      const crd = await api.readCustomResourceDefinition({ name });
      if (hasCondition(crd, "Established") && hasCondition(crd, "NamesAccepted")) pending.delete(name);
    }
    return pending.size === 0;
  }, timeoutMs, 100);
  if (!ok) throw new Error(`CRDs not Established after ${timeoutMs} ms: ${[...pending].join(", ")}`);
  return names;
}
