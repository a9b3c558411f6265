/**
 * deploy/ against a real kube-apiserver (test harness control plane with the OCM CRDs, the real
 * ClusterManager CRD and stand-ins for ServiceMonitor, Route and KlusterletConfig):
 *   - helm lint --strict of both charts with every ci/*.yaml;
 *   - helm template of every values file, each object created with server-side dry-run (dryRun=All);
 *   - what the renders must contain (modes, probes, flags, RBAC equal to the work-service manifest);
 *   - helm install of deploy/maestro, then deploy/conductor/install.sh (dry run, real run twice).
 */
import { readFile, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { ApiException, CoreV1Api, CustomObjectsApi, KubernetesObjectApi, type KubernetesObject } from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { binDir, ciValues, crdDirWithExtras, helmEnv, renderChart, repoRoot, run, tool } from "./tools.js";

const conductorChart = join(repoRoot, "deploy/conductor/chart");
const maestroChart = join(repoRoot, "deploy/maestro");
const charts = [
  { name: "conductor", dir: conductorChart, values: await ciValues(conductorChart) },
  { name: "maestro", dir: maestroChart, values: await ciValues(maestroChart) },
];
const CLUSTER_SCOPED = new Set(["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace", "KlusterletConfig", "ClusterManager"]);

let cp: ControlPlane;
let crdDir: string;

beforeAll(async () => {
  crdDir = await crdDirWithExtras();
  cp = await startControlPlane({ crdDir });
});

afterAll(async () => {
  await cp?.stop();
  if (crdDir) await rm(crdDir, { recursive: true, force: true });
});

type Any = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const byKind = (objects: KubernetesObject[], kind: string) => objects.filter((o) => o.kind === kind) as Any[];
const errorText = (err: unknown) => (err instanceof ApiException ? `${err.code}: ${typeof err.body === "string" ? err.body : JSON.stringify(err.body)}` : String(err));

async function createNamespace(name: string): Promise<void> {
  try {
    await cp.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  } catch (err) {
    if ((err as { code?: number }).code !== 409) throw err;
  }
}

describe("helm lint", () => {
  for (const chart of charts) {
    for (const values of [undefined, ...chart.values]) {
      it(`${chart.name} ${values === undefined ? "(defaults)" : basename(values)}`, async () => {
        const args = ["lint", "--strict", chart.dir, ...(values === undefined ? [] : ["--values", values])];
        const r = await run(tool("helm"), args, { env: await helmEnv() });
        expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
        expect(r.stdout).toContain("0 chart(s) failed");
      });
    }
  }
});

describe("helm template + server-side dry-run of every object", () => {
  let n = 0;
  for (const chart of charts) {
    for (const values of chart.values) {
      it(`${chart.name} ${basename(values)}`, async () => {
        const namespace = `dry-${chart.name}-${n++}`;
        await createNamespace(namespace);
        const objects = await renderChart(chart.dir, "rel", namespace, values);
        expect(objects.length).toBeGreaterThan(3);
        const api = KubernetesObjectApi.makeApiClient(cp.kubeConfig);
        const failures: string[] = [];
        for (const obj of objects) {
          const spec = structuredClone(obj);
          if (!CLUSTER_SCOPED.has(spec.kind ?? "")) spec.metadata = { ...spec.metadata, namespace };
          try {
            await api.create(spec, undefined, "All");
          } catch (err) {
            failures.push(`${obj.kind}/${obj.metadata?.name}: ${errorText(err)}`);
          }
        }
        expect(failures).toEqual([]);
        // Nothing was stored.
        const deployments = await cp.kubeConfig.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace });
        expect(deployments.items.filter((c) => c.metadata?.name?.startsWith("rel"))).toEqual([]);
      });
    }
  }
});

describe("conductor chart renders", () => {
  const values = (name: string) => join(conductorChart, "ci", name);

  it("single: one Deployment serving --mode all on 0.0.0.0, probes on /livez and /readyz, PDB, no Route/ServiceMonitor", async () => {
    const objects = await renderChart(conductorChart, "c", "hub", values("single.yaml"));
    const [deployment, ...more] = byKind(objects, "Deployment");
    expect(more).toEqual([]);
    const container = deployment!.spec.template.spec.containers[0];
    const args: string[] = container.args;
    expect(args.slice(0, 3)).toEqual(["serve", "--mode", "all"]);
    for (const [flag, value] of [["--grpc-host", "0.0.0.0"], ["--admin-host", "0.0.0.0"], ["--admin-port", "8080"], ["--server-config", "/etc/conductor/config.yaml"]]) {
      expect(args[args.indexOf(flag!) + 1], flag).toBe(value);
    }
    expect(container.livenessProbe.httpGet).toEqual({ path: "/livez", port: "admin" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "admin" });
    expect(deployment!.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    expect(byKind(objects, "PodDisruptionBudget").map((p) => p.spec.minAvailable)).toEqual([1]);
    expect(byKind(objects, "Route")).toEqual([]);
    expect(byKind(objects, "ServiceMonitor")).toEqual([]);
    expect(byKind(objects, "NetworkPolicy")).toEqual([]);
    // The reference YAML: grpc_config with TLS, db_config with Maestro's keys and a password file.
    const config = parseYaml(byKind(objects, "ConfigMap")[0]!.data["config.yaml"]);
    expect(config.grpc_config).toMatchObject({ server_bind_port: "8090", tls_cert_file: "/var/run/secrets/conductor/tls/tls.crt", tls_key_file: "/var/run/secrets/conductor/tls/tls.key" });
    expect(Object.keys(config.db_config).sort()).toEqual(["host", "name", "password_file", "port", "sslmode", "username"]);
    const internal = parseYaml(byKind(objects, "ConfigMap")[0]!.data["internal.yaml"]);
    expect(internal.grpc_config.tls_cert_file).toBeUndefined();
  });

  it("split: router, work-service, db-service, consumer-controller; the router calls the internal Services", async () => {
    const objects = await renderChart(conductorChart, "c", "hub", values("split.yaml"));
    const deployments = byKind(objects, "Deployment");
    const modes = Object.fromEntries(deployments.map((d) => [d.metadata.name, d.spec.template.spec.containers[0].args[2]]));
    expect(modes).toEqual({ "c-conductor-router": "router", "c-conductor-work-service": "work-service", "c-conductor-db-service": "db-service", "c-conductor-consumer-controller": "consumer-controller" });
    const router: string[] = deployments.find((d) => d.metadata.name === "c-conductor-router")!.spec.template.spec.containers[0].args;
    expect(router[router.indexOf("--work-service-url") + 1]).toBe("http://c-conductor-work-service.hub.svc:8090");
    expect(router[router.indexOf("--db-service-url") + 1]).toBe("http://c-conductor-db-service.hub.svc:8090");
    const services = Object.fromEntries(byKind(objects, "Service").map((s) => [s.metadata.name, s.spec.selector["app.kubernetes.io/component"] ?? "*"]));
    expect(services).toEqual({ "c-conductor": "router", "c-conductor-admin": "*", "c-conductor-work-service": "work-service", "c-conductor-db-service": "db-service" });
    // The backends and the consumer controller read the configuration without TLS.
    for (const d of deployments.filter((d) => d.metadata.name !== "c-conductor-router")) {
      expect(d.spec.template.spec.containers[0].args).toContain("/etc/conductor/internal.yaml");
    }
    // PDBs only where more than one replica runs (the router by default).
    expect(byKind(objects, "PodDisruptionBudget").map((p) => p.metadata.name)).toEqual(["c-conductor-router"]);
  });

  it("route + servicemonitor + networkpolicy on: Route with TLS passthrough to the gRPC Service", async () => {
    for (const file of ["single-openshift.yaml", "split-openshift.yaml"]) {
      const objects = await renderChart(conductorChart, "c", "hub", values(file));
      const [route] = byKind(objects, "Route");
      expect(route!.spec).toMatchObject({ to: { kind: "Service", name: "c-conductor" }, port: { targetPort: "grpc" }, tls: { termination: "passthrough" } });
      expect(byKind(objects, "ServiceMonitor")[0]!.spec.endpoints[0]).toMatchObject({ port: "admin", path: "/metrics" });
      expect(byKind(objects, "NetworkPolicy").length).toBe(file.startsWith("split") ? 4 : 1);
      expect(byKind(objects, "Service").find((s) => s.metadata.name === "c-conductor")!.metadata.annotations).toEqual({ "service.beta.openshift.io/serving-cert-secret-name": "conductor-grpc-serving-cert" });
    }
  });

  it("refuses a Route without TLS, an unknown mode, a bad sslmode (values.schema.json)", async () => {
    const env = await helmEnv();
    const route = await run(tool("helm"), ["template", "c", conductorChart, "--set", "route.enabled=true", "--set", "tls.enabled=false"], { env });
    expect(route.code).not.toBe(0);
    expect(route.stderr).toContain("route.enabled needs tls.enabled");
    const mode = await run(tool("helm"), ["template", "c", conductorChart, "--set", "mode=both"], { env });
    expect(mode.code).not.toBe(0);
    expect(mode.stderr).toMatch(/mode/);
    const sslmode = await run(tool("helm"), ["template", "c", conductorChart, "--set", "database.sslmode=sometimes"], { env });
    expect(sslmode.code).not.toBe(0);
    expect(sslmode.stderr).toContain("/database/sslmode");
  });

  it("the ClusterRole is packages/work-service/rbac/cluster-role.yaml", async () => {
    const manifest = parseYaml(await readFile(join(repoRoot, "packages/work-service/rbac/cluster-role.yaml"), "utf8"));
    const objects = await renderChart(conductorChart, "c", "hub", values("single.yaml"));
    const [role] = byKind(objects, "ClusterRole");
    expect(role!.rules).toEqual(manifest.rules);
    const [binding] = byKind(objects, "ClusterRoleBinding");
    expect(binding!.subjects).toEqual([{ kind: "ServiceAccount", name: "c-conductor", namespace: "hub" }]);
  });
});

describe("maestro chart renders", () => {
  it("PostgreSQL StatefulSet with a volume claim, Maestro with --disable-message-broker=true and the DB secret", async () => {
    const objects = await renderChart(maestroChart, "maestro", "maestro", join(maestroChart, "ci/default.yaml"));
    const [db] = byKind(objects, "StatefulSet");
    expect(db!.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe("1Gi");
    const maestro = byKind(objects, "Deployment")[0]!;
    const command: string[] = maestro.spec.template.spec.containers[0].command;
    expect(command.slice(0, 2)).toEqual(["/usr/local/bin/maestro", "server"]);
    expect(command).toContain("--disable-message-broker=true");
    expect(command).toContain("--db-password-file=/secrets/db/password");
    expect(maestro.spec.template.spec.initContainers[0].command.slice(0, 2)).toEqual(["/usr/local/bin/maestro", "migration"]);
    const [secret] = byKind(objects, "Secret");
    expect(Object.keys(secret!.stringData).sort()).toEqual(["host", "name", "password", "port", "user"]);
    expect(secret!.stringData.host).toBe("maestro-db.maestro.svc");
  });
});

describe("helm install maestro, then install.sh", () => {
  const password = "s3cret-'\"pw";
  let env: NodeJS.ProcessEnv;
  const install = (...args: string[]) => run("bash", [join(repoRoot, "deploy/conductor/install.sh"), ...args], { env, timeoutMs: 180_000 });
  const custom = () => cp.kubeConfig.makeApiClient(CustomObjectsApi);
  const clusterManager = async () => (await custom().getClusterCustomObject({ group: "operator.open-cluster-management.io", version: "v1", plural: "clustermanagers", name: "cluster-manager" })) as Any;

  beforeAll(async () => {
    env = await helmEnv({ PATH: `${binDir}:${process.env.PATH}`, KUBECONFIG: cp.kubeconfigPath });
  });

  it("install.sh names a missing prerequisite: Maestro's namespace", async () => {
    const r = await install("--skip-cluster-manager");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("namespace maestro not found: install Maestro first");
  });

  it("helm install maestro deploy/maestro creates Maestro, PostgreSQL and the DB secret", async () => {
    const r = await run(tool("helm"), ["install", "maestro", maestroChart, "-n", "maestro", "--create-namespace", "--set-string", `database.password=${password}`], { env });
    expect(r.code, r.stderr).toBe(0);
    const secret = await cp.kubeConfig.makeApiClient(CoreV1Api).readNamespacedSecret({ name: "maestro-db-config", namespace: "maestro" });
    const data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
    expect(data).toEqual({ host: "maestro-db.maestro.svc", port: "5432", user: "maestro", password, name: "maestro" });
    const apps = await run(tool("kubectl"), ["-n", "maestro", "get", "deployment/maestro", "statefulset/maestro-db", "service/maestro", "service/maestro-db", "-o", "name"], { env });
    expect(apps.stdout.trim().split("\n")).toHaveLength(4);
  });

  it("install.sh names a missing prerequisite: the ClusterManager", async () => {
    const r = await install();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ClusterManager cluster-manager not found");
  });

  it("install.sh --dry-run prints what it would apply and changes nothing", async () => {
    await custom().createClusterCustomObject({
      group: "operator.open-cluster-management.io", version: "v1", plural: "clustermanagers",
      body: { apiVersion: "operator.open-cluster-management.io/v1", kind: "ClusterManager", metadata: { name: "cluster-manager" }, spec: {} },
    });
    const before = await clusterManager();
    const r = await install("--dry-run", "--image", "registry.example.com/ocm/conductor:1.2.3", "--route-host", "conductor.apps.example.com");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("kind: Secret");
    expect(r.stdout).not.toContain(Buffer.from(password).toString("base64"));
    expect(r.stdout).toContain("kind: Deployment");
    expect(r.stdout).toContain('"registrationDrivers":[{"authType":"csr"},{"authType":"grpc"}]');
    expect(r.stdout).toContain('"hostname":{"host":"conductor.apps.example.com"}');
    expect(r.stdout).toContain("authType: grpc");
    expect(r.stderr).toContain("dry run: nothing was changed");
    // Without a Route, agents dial the release's Service (a bare host name: it becomes a name of the
    // operator's serving certificate).
    const plain = await install("--dry-run");
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain('"hostname":{"host":"conductor.open-cluster-management-hub.svc"}');
    expect(plain.stdout).toContain('maestroApi: {url: "http://maestro.maestro.svc:8000"}');
    const after = await clusterManager();
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    const ns = await run(tool("kubectl"), ["get", "namespace", "open-cluster-management-hub"], { env });
    expect(ns.code).not.toBe(0);
  });

  it("install.sh installs the conductor, patches the ClusterManager, applies the KlusterletConfig; a second run changes nothing", async () => {
    const flags = ["--image", "registry.example.com/ocm/conductor:1.2.3", "--route-host", "conductor.apps.example.com", "--server-image", "registry.example.com/ocm/conductor:1.2.3"];
    const first = await install(...flags);
    expect(first.code, first.stderr).toBe(0);
    const afterFirst = await clusterManager();
    const second = await install(...flags);
    expect(second.code, second.stderr).toBe(0);
    const cm = await clusterManager();
    expect(cm.spec.registrationConfiguration.registrationDrivers).toEqual([{ authType: "csr" }, { authType: "grpc" }]);
    expect(cm.spec.serverConfiguration).toEqual({
      imagePullSpec: "registry.example.com/ocm/conductor:1.2.3",
      endpointsExposure: [{ protocol: "grpc", usage: "agentToHub", grpc: { type: "hostname", hostname: { host: "conductor.apps.example.com" } } }],
    });
    expect(cm.metadata.generation).toBe(afterFirst.metadata.generation);
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const secret = await core.readNamespacedSecret({ name: "conductor-db", namespace: "open-cluster-management-hub" });
    expect(Buffer.from(secret.data!.password!, "base64").toString()).toBe(password);
    const config = await core.readNamespacedConfigMap({ name: "conductor-config", namespace: "open-cluster-management-hub" });
    expect(parseYaml(config.data!["config.yaml"]!).db_config).toEqual({
      host: "maestro-db.maestro.svc", port: 5432, name: "maestro", username: "maestro",
      password_file: "/var/run/secrets/conductor/db/password", sslmode: "disable",
    });
    const deploy = await run(tool("kubectl"), ["-n", "open-cluster-management-hub", "get", "deployment/conductor", "-o", "jsonpath={.spec.template.spec.containers[0].image}"], { env });
    expect(deploy.stdout).toBe("registry.example.com/ocm/conductor:1.2.3");
    // The consumer controller goes through the REST API of the Maestro the chart installed.
    const args = await run(tool("kubectl"), ["-n", "open-cluster-management-hub", "get", "deployment/conductor", "-o", "jsonpath={.spec.template.spec.containers[0].args}"], { env });
    expect(JSON.parse(args.stdout)).toEqual(expect.arrayContaining(["--maestro-url", "http://maestro.maestro.svc:8000"]));
    const route = await run(tool("kubectl"), ["-n", "open-cluster-management-hub", "get", "route.route.openshift.io/conductor", "-o", "jsonpath={.spec.tls.termination}"], { env });
    expect(route.stdout, route.stderr).toBe("passthrough");
    const kc = (await custom().getClusterCustomObject({ group: "config.open-cluster-management.io", version: "v1alpha1", plural: "klusterletconfigs", name: "grpc" })) as Any;
    expect(kc.spec).toEqual({ registrationDriver: { authType: "grpc" } });
    const releases = await run(tool("helm"), ["list", "-n", "open-cluster-management-hub", "-o", "json"], { env });
    expect(JSON.parse(releases.stdout).map((r: Any) => [r.name, r.status])).toEqual([["conductor", "deployed"]]);
  });
});
