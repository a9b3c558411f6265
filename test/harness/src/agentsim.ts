/**
 * Driver for `agentsim`, the Go program in `test/peers/agentsim` that simulates managed-cluster work agents with the
 * real `open-cluster-management.io/sdk-go` clients, and for its self-test reference server (sdk-go's own broker).
 *
 * Both programs print one JSON object per line on stdout and take JSON-line commands on stdin. The binaries are
 * built by `test/peers/agentsim/build.sh` into `$OCM_TESTBIN_DIR/bin` (default `/var/tmp/ocm-conductor-testbins`).
 *
 * @packageDocumentation
 */
import { spawn, type ChildProcess } from "node:child_process";
import { constants as fsConstants } from "node:fs";
import { access, realpath } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The sdk-go generations agentsim is built against: v1.1.0, v1.2.0 and the newest v1.3.x tag. */
export type AgentSimVersion = "v1.1.0" | "v1.2.0" | "v1.3";

/** Every {@link AgentSimVersion}, oldest first. */
export const AGENTSIM_VERSIONS: readonly AgentSimVersion[] = ["v1.1.0", "v1.2.0", "v1.3"];

/**
 * One JSON line printed by agentsim or the reference server. Every line has `t` (RFC 3339 with nanoseconds, UTC)
 * and `event`; most have `cluster`. The other fields depend on the event (see `test/peers/agentsim/README.md`).
 */
export interface AgentSimEvent {
  /** Time the line was written, RFC 3339 with nanoseconds, UTC. */
  t: string;
  /** Event name, e.g. `ready`, `work-added`, `status-published`, `reply`. */
  event: string;
  /** Simulated cluster the fact is about, when there is one. */
  cluster?: string;
  /** Event-specific fields. */
  [field: string]: unknown;
}

/** A predicate over output lines, as used by {@link JsonLinePeer.waitFor}. */
export type AgentSimPredicate = (event: AgentSimEvent) => boolean;

/** A Go duration string such as `"500ms"` or `"2s"`, or a number of milliseconds. */
export type GoDuration = string | number;

/** Options of {@link startAgentSim}. */
export interface AgentSimOptions {
  /** Which sdk-go build to run. */
  version: AgentSimVersion;
  /** gRPC server address, `host:port` (loopback). Plaintext h2c unless TLS flags are given in `extraArgs`. */
  server: string;
  /** Clusters to start at once; each gets its own gRPC connection. More can be started with `start-cluster`. */
  clusters: readonly string[];
  /**
   * What each cluster runs: `"work"` (work agent, the default), `"registration"` (the registration agent: the
   * ManagedCluster, CSR, lease, event and addon clients on one shared gRPC options object, doing the agent's half of
   * the join flow) or `"both"` (both agents, each on its own gRPC options).
   */
  mode?: "work" | "registration" | "both";
  /** Registration: lease renewal period (agentsim's default `"10s"`). */
  leaseInterval?: GoDuration;
  /**
   * Registration: whether the agent patches its ManagedCluster status (`ManagedClusterConditionAvailable=True`,
   * version, capacity) once the hub has sent the cluster (agentsim's default `true`). With `false` every condition
   * comes from the hub, so `managedcluster-joined` / `managedcluster-available` show only what the hub set.
   */
  clusterStatusPatch?: boolean;
  /** Registration: bound on waiting for CSR approval and the certificate (agentsim's default `"2m"`). */
  csrWait?: GoDuration;
  /** Registration: `spec.signerName` of the join CSR (agentsim's default `open-cluster-management.io/grpc`). */
  csrSigner?: string;
  /**
   * Registration: `<agent>` in the requested certificate CN `system:open-cluster-management:<cluster>:<agent>`
   * (agentsim's default `agentsim`).
   */
  agentName?: string;
  /** Registration: write the issued certificate and key to `<certDir>/<cluster>/tls.crt` and `tls.key`. */
  certDir?: string;
  /** sdk-go reconnect backoff (its `DelayFn`), default `"2s"` in agentsim. */
  reconnectDelay?: GoDuration;
  /** Reconnect when no server heartbeat arrives for this long. Default: off (sdk-go's default). */
  serverHealthinessTimeout?: GoDuration;
  /** Hard upper bound on the process' run time; it exits by itself. agentsim's default is 10 minutes. */
  duration?: GoDuration;
  /** Further agentsim flags, e.g. `["--auto-status=false"]` or TLS flags. */
  extraArgs?: readonly string[];
  /** Use this binary instead of the one from {@link agentSimBinary}. */
  binary?: string;
  /** How long to wait for the `ready` line, in milliseconds. Default 60 000. */
  startTimeoutMs?: number;
}

/** Options of {@link startAgentSimRefServer}. */
export interface AgentSimRefServerOptions {
  /** Broker heartbeat interval (sdk-go's default is `"10s"`; shorter values are allowed here). */
  heartbeatInterval?: GoDuration;
  /** Turn the broker's heartbeat off. */
  heartbeatDisabled?: boolean;
  /** Validity of the certificates its test CA issues for CSRs without `spec.expirationSeconds` (default `"24h"`). */
  certDuration?: GoDuration;
  /** Hard upper bound on the process' run time. Default `"10m"`. */
  duration?: GoDuration;
  /** Further refserver flags. */
  extraArgs?: readonly string[];
  /** Use this binary instead of the one from {@link agentSimRefServerBinary}. */
  binary?: string;
  /** How long to wait for the `listening` line, in milliseconds. Default 30 000. */
  startTimeoutMs?: number;
}

/** How a peer process ended. */
export interface PeerExit {
  /** Exit code, or null when ended by a signal. */
  code: number | null;
  /** Signal that ended it, or null. */
  signal: NodeJS.Signals | null;
}

/** Directory holding the content-addressed test binaries: `$OCM_TESTBIN_DIR` or `/var/tmp/ocm-conductor-testbins`. */
export function testBinDir(): string {
  return process.env.OCM_TESTBIN_DIR || "/var/tmp/ocm-conductor-testbins";
}

/** Absolute path of the script that builds the agentsim binaries. */
export const AGENTSIM_BUILD_SCRIPT: string = fileURLToPath(new URL("../../peers/agentsim/build.sh", import.meta.url));

async function resolveBinary(linkName: string, what: string): Promise<string> {
  const link = join(testBinDir(), "bin", linkName);
  try {
    const target = await realpath(link);
    await access(target, fsConstants.X_OK);
    return target;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `${what} is not built: ${link} is missing or not executable (${reason}). ` +
        `Build it with: bash ${AGENTSIM_BUILD_SCRIPT} ` +
        `(set OCM_TESTBIN_DIR to use another cache than ${testBinDir()}).`,
    );
  }
}

/**
 * Resolves the agentsim binary for an sdk-go version through its stable symlink
 * `$OCM_TESTBIN_DIR/bin/agentsim-<version>`.
 *
 * @throws Error naming the build script when the binary has not been built.
 */
export async function agentSimBinary(version: AgentSimVersion): Promise<string> {
  if (!AGENTSIM_VERSIONS.includes(version)) {
    throw new Error(`unknown agentsim version ${String(version)}; known: ${AGENTSIM_VERSIONS.join(", ")}`);
  }
  return resolveBinary(`agentsim-${version}`, `agentsim for sdk-go ${version}`);
}

/**
 * Resolves the reference server binary (`$OCM_TESTBIN_DIR/bin/agentsim-refserver`).
 *
 * @throws Error naming the build script when the binary has not been built.
 */
export async function agentSimRefServerBinary(): Promise<string> {
  return resolveBinary("agentsim-refserver", "the agentsim reference server");
}

function goDuration(d: GoDuration): string {
  if (typeof d === "number") {
    if (!Number.isFinite(d) || d < 0) throw new Error(`invalid duration ${d} ms`);
    return `${Math.round(d)}ms`;
  }
  return d;
}

/** Process groups of peers still running, ended when the test process exits. */
const livePeers = new Set<number>();
let exitHookInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pid of livePeers) killGroup(pid, "SIGKILL");
  });
}

interface Waiter {
  predicate: AgentSimPredicate;
  resolve: (event: AgentSimEvent) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const MAX_STDERR_LINES = 2000;

/**
 * A running JSON-lines peer process (agentsim or the reference server), started in its own process group.
 * Output lines accumulate in {@link JsonLinePeer.events}; commands are answered by `reply` lines with the same id.
 */
export class JsonLinePeer {
  /** Every stdout line parsed so far, in order. Lines that are not JSON appear as `{event: "unparsed", line}`. */
  readonly events: AgentSimEvent[] = [];
  /** The last stderr lines (sdk-go/klog logs), at most 2000. */
  readonly stderr: string[] = [];
  /** Process id, which is also the process group id. */
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<PeerExit>;

  readonly #child: ChildProcess;
  readonly #name: string;
  #waiters: Waiter[] = [];
  #exit: PeerExit | undefined;
  #nextId = 1;

  /** Starts `binary args…`; prefer {@link startAgentSim} and {@link startAgentSimRefServer}. */
  constructor(name: string, binary: string, args: readonly string[]) {
    this.#name = name;
    const child = spawn(binary, [...args], { detached: true, stdio: ["pipe", "pipe", "pipe"] });
    this.#child = child;
    if (child.pid === undefined) {
      child.on("error", () => {
        // reported by the throw below
      });
      throw new Error(`${name}: could not start ${binary}`);
    }
    this.pid = child.pid;
    installExitHook();
    livePeers.add(this.pid);
    child.stdin?.on("error", () => {
      // EPIPE after the process exited; the exit handling reports it
    });
    createInterface({ input: child.stdout! }).on("line", (line) => this.#onLine(line));
    createInterface({ input: child.stderr! }).on("line", (line) => {
      this.stderr.push(line);
      if (this.stderr.length > MAX_STDERR_LINES) this.stderr.splice(0, this.stderr.length - MAX_STDERR_LINES);
    });
    this.exited = new Promise<PeerExit>((resolve) => {
      const done = (exit: PeerExit): void => {
        if (this.#exit) return;
        this.#exit = exit;
        livePeers.delete(this.pid);
        const err = new Error(
          `${this.#name} exited (${this.#describeExit()}) before the awaited line arrived${this.#tail()}`,
        );
        for (const w of this.#waiters) {
          clearTimeout(w.timer);
          w.reject(err);
        }
        this.#waiters = [];
        resolve(exit);
      };
      // "close" fires after stdout is drained, so every line is in `events` before waiters are failed.
      child.on("close", (code, signal) => done({ code, signal }));
      child.on("error", (err) => {
        this.stderr.push(`spawn error: ${err.message}`);
        done({ code: null, signal: null });
      });
    });
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  #describeExit(): string {
    const e = this.#exit;
    if (!e) return "running";
    return e.signal ? `signal ${e.signal}` : `code ${String(e.code)}`;
  }

  #tail(): string {
    const lines = this.stderr.slice(-15);
    const events = this.events.slice(-5).map((e) => JSON.stringify(e));
    return (
      (events.length ? `\nlast output lines:\n  ${events.join("\n  ")}` : "") +
      (lines.length ? `\nlast stderr lines:\n  ${lines.join("\n  ")}` : "")
    );
  }

  #onLine(line: string): void {
    if (line.trim() === "") return;
    let event: AgentSimEvent;
    try {
      const parsed: unknown = JSON.parse(line);
      event =
        parsed !== null && typeof parsed === "object" && typeof (parsed as { event?: unknown }).event === "string"
          ? (parsed as AgentSimEvent)
          : { t: new Date().toISOString(), event: "unparsed", line };
    } catch {
      event = { t: new Date().toISOString(), event: "unparsed", line };
    }
    this.events.push(event);
    const still: Waiter[] = [];
    for (const w of this.#waiters) {
      let matched = false;
      try {
        matched = w.predicate(event);
      } catch (err) {
        clearTimeout(w.timer);
        w.reject(err instanceof Error ? err : new Error(String(err)));
        continue;
      }
      if (matched) {
        clearTimeout(w.timer);
        w.resolve(event);
      } else {
        still.push(w);
      }
    }
    this.#waiters = still;
  }

  /**
   * Resolves with the first line, past or future, that matches `predicate`. Rejects after `timeoutMs`, or when the
   * process exits first; the error shows the last output and stderr lines.
   */
  waitFor(predicate: AgentSimPredicate, timeoutMs = 30_000): Promise<AgentSimEvent> {
    const found = this.events.find(predicate);
    if (found) return Promise.resolve(found);
    if (this.#exit) {
      return Promise.reject(new Error(`${this.#name} has exited (${this.#describeExit()})${this.#tail()}`));
    }
    return new Promise<AgentSimEvent>((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(new Error(`${this.#name}: no matching line within ${timeoutMs} ms${this.#tail()}`));
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /**
   * Sends one command (a JSON object with `cmd`) and resolves with its `reply` line. An `id` is added when absent.
   * The reply has `ok: true` or `ok: false` with `error`; this method does not reject on `ok: false`.
   */
  command(
    cmd: { cmd: string; id?: number | string; [field: string]: unknown },
    timeoutMs = 30_000,
  ): Promise<AgentSimEvent> {
    const id = cmd.id ?? `c${this.#nextId++}`;
    if (!this.running || !this.#child.stdin?.writable) {
      return Promise.reject(new Error(`${this.#name} is not running; cannot send ${cmd.cmd}${this.#tail()}`));
    }
    const reply = this.waitFor((e) => e.event === "reply" && e.id === id, timeoutMs);
    this.#child.stdin.write(`${JSON.stringify({ ...cmd, id })}\n`);
    return reply;
  }

  /**
   * Ends the process: sends `quit` and closes stdin, then after `graceMs` sends SIGTERM to its process group, and
   * SIGKILL 3 s later. Resolves with how it exited.
   */
  async stop(graceMs = 15_000): Promise<PeerExit> {
    if (this.#exit) return this.#exit;
    const stdin = this.#child.stdin;
    if (stdin?.writable) {
      stdin.write(`${JSON.stringify({ id: "stop", cmd: "quit" })}\n`);
      stdin.end();
    }
    const timeout = (ms: number): Promise<"timeout"> =>
      new Promise((resolve) => setTimeout(() => resolve("timeout"), ms).unref());
    if ((await Promise.race([this.exited, timeout(graceMs)])) !== "timeout") return this.exited;
    killGroup(this.pid, "SIGTERM");
    if ((await Promise.race([this.exited, timeout(3_000)])) !== "timeout") return this.exited;
    killGroup(this.pid, "SIGKILL");
    return this.exited;
  }
}

/** A running agentsim process; see {@link startAgentSim}. */
export class AgentSimHandle extends JsonLinePeer {
  /** The sdk-go build that runs. */
  readonly version: AgentSimVersion;
  /** The `ready` line (has `sdk`, the linked sdk-go module version, and `clusters`). */
  ready: AgentSimEvent | undefined;

  /** Starts agentsim; prefer {@link startAgentSim}, which also waits for `ready`. */
  constructor(version: AgentSimVersion, binary: string, args: readonly string[]) {
    super(`agentsim ${version}`, binary, args);
    this.version = version;
  }
}

/** A running reference server; see {@link startAgentSimRefServer}. */
export class AgentSimRefServerHandle extends JsonLinePeer {
  /** The loopback `host:port` it listens on (plaintext gRPC). */
  address = "";
}

/** The command-line arguments {@link startAgentSim} passes for the given options. */
export function agentSimArgs(opts: AgentSimOptions): string[] {
  const args = ["--server", opts.server, "--clusters", opts.clusters.join(","), "--mode", opts.mode ?? "work"];
  if (opts.reconnectDelay !== undefined) args.push("--reconnect-delay", goDuration(opts.reconnectDelay));
  if (opts.serverHealthinessTimeout !== undefined) {
    args.push("--server-healthiness-timeout", goDuration(opts.serverHealthinessTimeout));
  }
  if (opts.duration !== undefined) args.push("--duration", goDuration(opts.duration));
  if (opts.leaseInterval !== undefined) args.push("--lease-interval", goDuration(opts.leaseInterval));
  if (opts.clusterStatusPatch !== undefined) args.push(`--cluster-status-patch=${String(opts.clusterStatusPatch)}`);
  if (opts.csrWait !== undefined) args.push("--csr-wait", goDuration(opts.csrWait));
  if (opts.csrSigner !== undefined) args.push("--csr-signer", opts.csrSigner);
  if (opts.agentName !== undefined) args.push("--agent-name", opts.agentName);
  if (opts.certDir !== undefined) args.push("--cert-dir", opts.certDir);
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/**
 * Starts agentsim for one sdk-go version and waits for its `ready` line. Each listed cluster dials `server` on its
 * own HTTP/2 connection, subscribes and resyncs like a klusterlet work agent (and, with `mode`, like its
 * registration agent on a second connection).
 *
 * @throws Error when the binary is missing (with the build command), or when agentsim exits or is not ready in time.
 */
export async function startAgentSim(opts: AgentSimOptions): Promise<AgentSimHandle> {
  const binary = opts.binary ?? (await agentSimBinary(opts.version));
  const handle = new AgentSimHandle(opts.version, binary, agentSimArgs(opts));
  try {
    handle.ready = await handle.waitFor((e) => e.event === "ready", opts.startTimeoutMs ?? 60_000);
  } catch (err) {
    await handle.stop(1_000);
    throw err;
  }
  return handle;
}

/**
 * Starts the self-test reference server: sdk-go's own gRPC broker (plaintext, on a free loopback port) with an
 * in-memory manifestbundles service driven by `create`/`update`/`delete`/`list` commands, and in-memory registration
 * services whose hub side of the join flow is driven by `approve-csr`/`sign-csr`/`deny-csr`/`set-cluster-conditions`
 * (a test CA made at start signs; `ca` returns it). It is a known-good peer for testing agentsim itself, not a model
 * for the conductor.
 *
 * @throws Error when the binary is missing (with the build command) or the server does not start in time.
 */
export async function startAgentSimRefServer(opts: AgentSimRefServerOptions = {}): Promise<AgentSimRefServerHandle> {
  const binary = opts.binary ?? (await agentSimRefServerBinary());
  const args = ["--listen", "127.0.0.1:0", "--duration", goDuration(opts.duration ?? "10m")];
  if (opts.heartbeatInterval !== undefined) args.push("--heartbeat-interval", goDuration(opts.heartbeatInterval));
  if (opts.heartbeatDisabled) args.push("--heartbeat-disabled");
  if (opts.certDuration !== undefined) args.push("--cert-duration", goDuration(opts.certDuration));
  args.push(...(opts.extraArgs ?? []));
  const handle = new AgentSimRefServerHandle("agentsim refserver", binary, args);
  try {
    const listening = await handle.waitFor((e) => e.event === "listening", opts.startTimeoutMs ?? 30_000);
    if (typeof listening.addr !== "string") throw new Error(`refserver: listening line without addr`);
    handle.address = listening.addr;
  } catch (err) {
    await handle.stop(1_000);
    throw err;
  }
  return handle;
}
