/**
 * (Copied from test/e2e/src/conductor-process.ts, now test/harness/src/conductor-child.ts, plus `extraArgs`.)
 * The real `conductor` binary as a child process: `node apps/conductor/bin/conductor.js serve …`,
 * started in its own process group (so `kill -9 -pid` takes everything it started), with its
 * stdout and stderr kept in a bounded buffer for failure messages.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { eventually } from "@ocm-conductor/test-harness";

/** The conductor's bin entry (`bin.conductor` of apps/conductor/package.json). */
export const CONDUCTOR_BIN = fileURLToPath(new URL("../../../apps/conductor/bin/conductor.js", import.meta.url));

export type ServeMode = "all" | "router" | "work-service" | "db-service" | "consumer-controller";

/** What one `conductor serve` is started with. Ports are fixed so a restart can reuse them. */
export interface ConductorSpec {
  /** A label for messages, e.g. `db-service`. */
  name: string;
  mode: ServeMode;
  grpcPort: number;
  adminPort: number;
  kubeconfig?: string;
  databaseUrl?: string;
  workServiceUrl?: string;
  dbServiceUrl?: string;
  /** Further `serve` flags, e.g. `["--server-config", file]`. */
  extraArgs?: string[];
}

const MAX_LINES = 3000;
const live = new Set<number>();
let exitHook = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** A running (or ended) conductor child process. */
export class ConductorChild {
  /** stdout and stderr lines (JSON log lines on stderr), the last {@link MAX_LINES}. */
  readonly lines: string[] = [];
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(readonly spec: ConductorSpec) {
    if (!existsSync(CONDUCTOR_BIN)) throw new Error(`${CONDUCTOR_BIN} is missing`);
    const args = [CONDUCTOR_BIN, "serve", "--mode", spec.mode, "--grpc-host", "127.0.0.1", "--grpc-port", String(spec.grpcPort),
      "--admin-port", String(spec.adminPort), "--log-level", process.env.DRILL_CONDUCTOR_LOG_LEVEL || "info"];
    if (spec.kubeconfig !== undefined) args.push("--kubeconfig", spec.kubeconfig);
    if (spec.workServiceUrl !== undefined) args.push("--work-service-url", spec.workServiceUrl);
    if (spec.dbServiceUrl !== undefined) args.push("--db-service-url", spec.dbServiceUrl);
    if (spec.extraArgs !== undefined) args.push(...spec.extraArgs);
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: spec.databaseUrl ?? "" };
    delete env.KUBECONFIG; // only --kubeconfig gives Kubernetes access
    const child: ChildProcess = spawn(process.execPath, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], env });
    if (child.pid === undefined) throw new Error(`${spec.name}: could not spawn ${process.execPath} ${args.join(" ")}`);
    this.pid = child.pid;
    live.add(this.pid);
    if (!exitHook) {
      exitHook = true;
      process.on("exit", () => {
        for (const pid of live) killGroup(pid, "SIGKILL");
      });
    }
    const keep = (line: string) => {
      this.lines.push(line);
      if (this.lines.length > MAX_LINES) this.lines.splice(0, this.lines.length - MAX_LINES);
    };
    createInterface({ input: child.stdout! }).on("line", keep);
    createInterface({ input: child.stderr! }).on("line", keep);
    this.exited = new Promise((resolve) => {
      child.on("close", (code, signal) => {
        this.#exit = { code, signal };
        live.delete(this.pid);
        resolve(this.#exit);
      });
    });
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** `http://127.0.0.1:<grpc port>` (agents, or the router's BackendService URL). */
  get grpcUrl(): string {
    return `http://127.0.0.1:${this.spec.grpcPort}`;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.spec.adminPort}`;
  }

  /** The last `n` output lines, labelled, for failure messages. */
  tail(n = 40): string {
    const state = this.#exit ? `exited code=${String(this.#exit.code)} signal=${String(this.#exit.signal)}` : "running";
    return `--- conductor ${this.spec.name} (pid ${this.pid}, ${state}), last ${Math.min(n, this.lines.length)} lines:\n${this.lines.slice(-n).join("\n")}`;
  }

  /** GET /readyz: status code and body; `{status: 0}` when nothing answers. */
  async readyz(): Promise<{ status: number; body: string }> {
    try {
      const res = await fetch(`${this.adminUrl}/readyz`, { signal: AbortSignal.timeout(5_000) });
      return { status: res.status, body: await res.text() };
    } catch (err) {
      return { status: 0, body: String(err) };
    }
  }

  /** Waits until /readyz answers 200; fails early (with the output tail) when the process exits. */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    let last = { status: 0, body: "" };
    try {
      await eventually(async () => {
        if (!this.running) throw new Error(`exited before it was ready`);
        last = await this.readyz();
        return last.status === 200;
      }, timeoutMs, `${this.spec.name} /readyz 200`, 200);
    } catch (err) {
      throw new Error(`${this.spec.name}: ${(err as Error).message}; last /readyz ${last.status}: ${last.body.trim()}\n${this.tail()}`);
    }
  }

  /** The agent streams the process serves (`/debug/subscribers?format=json`). */
  async subscribers(): Promise<Array<{ clusterName: string; dataType: string }>> {
    const res = await fetch(`${this.adminUrl}/debug/subscribers?format=json`, { signal: AbortSignal.timeout(5_000) });
    return ((await res.json()) as { streams: Array<{ clusterName: string; dataType: string }> }).streams;
  }

  /** The sum of a Prometheus counter's series (from `/metrics`) whose labels include `labels`. */
  async metric(name: string, labels: Record<string, string>): Promise<number> {
    const res = await fetch(`${this.adminUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
    const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    let sum = 0;
    for (const line of (await res.text()).split("\n")) {
      if (!line.startsWith(`${name}{`)) continue;
      const close = line.lastIndexOf("}");
      const series = line.slice(name.length + 1, close);
      if (wanted.every((w) => series.split(",").includes(w))) sum += Number(line.slice(close + 1).trim());
    }
    return sum;
  }

  /** `kill -9` of the whole process group; resolves when the child has exited. */
  async kill9(): Promise<void> {
    killGroup(this.pid, "SIGKILL");
    await this.exited;
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`. Idempotent. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, "SIGTERM");
    const timer = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), graceMs).unref());
    if ((await Promise.race([this.exited, timer])) === "timeout") killGroup(this.pid, "SIGKILL");
    await this.exited;
  }
}

/** Starts `conductor serve` and waits for /readyz 200. */
export async function startConductor(spec: ConductorSpec, readyTimeoutMs = 60_000): Promise<ConductorChild> {
  const child = new ConductorChild(spec);
  try {
    await child.waitReady(readyTimeoutMs);
  } catch (err) {
    await child.stop(2_000);
    throw err;
  }
  return child;
}
