/**
 * Process plumbing for the PostgreSQL harness: run `initdb`, spawn the postmaster and wait until it
 * accepts connections, stop it by PID, and make sure no postmaster outlives the test process.
 *
 * Three layers keep a crashed run from leaving a server behind:
 * 1. the postmaster is started through util-linux `setpriv --pdeathsig`, so the kernel signals it
 *    when the spawning thread dies — even on SIGKILL/OOM of the test process;
 * 2. an `exit` hook (and SIGINT/SIGTERM/SIGHUP handlers that re-raise the signal) signals every
 *    running postmaster and deletes non-persistent data directories synchronously;
 * 3. {@link reapStaleRuns} deletes temp data directories whose owning process is gone.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import type { PostgresBinaries, RunAs } from "./postgres-binaries.js";

const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
const READY = "database system is ready to accept connections";
/** Prefix of the temp directories the harness creates under `os.tmpdir()`. */
export const TEMP_PREFIX = "ocm-conductor-pg-";
const OWNER_FILE = "owner";

/** Thrown when `initdb` or the postmaster fails; `logTail` holds the last lines they printed. */
export class PostgresProcessError extends Error {
  /** `EADDRINUSE` when the port was taken (the caller may retry with another port). */
  readonly code: string | undefined;
  constructor(message: string, readonly logTail: string[]) {
    super(`${message}${logTail.length ? `\n--- last log lines ---\n${logTail.join("\n")}` : ""}`);
    this.name = "PostgresProcessError";
    this.code = logTail.some((l) => /could not bind|Address already in use/.test(l)) ? "EADDRINUSE" : undefined;
  }
}

/** Keeps the last `max` lines written by a child process. */
export class LogTail {
  private readonly lines: string[] = [];
  private partial = "";
  constructor(private readonly max = 200, private readonly onLine?: (line: string) => void) {}
  /** Feeds a stdout/stderr chunk; complete lines are stored (and passed to `onLine`). */
  push(chunk: Buffer | string): string[] {
    const parts = (this.partial + chunk.toString()).split("\n");
    this.partial = parts.pop() ?? "";
    for (const line of parts) {
      this.lines.push(line);
      this.onLine?.(line);
    }
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
    return parts;
  }
  /** The last `n` lines, including an unterminated one. */
  tail(n = 30): string[] {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].slice(-n);
  }
}

/** Spawns `binary` as `runAs` (or the current user) with English messages and a parent-death signal. */
function spawnAs(binary: string, args: string[], runAs: RunAs | undefined, deathSignal: string): ChildProcess {
  const env = { ...process.env, LC_ALL: "C", LANG: "C", LC_MESSAGES: "C" };
  const stdio: ["ignore", "pipe", "pipe"] = ["ignore", "pipe", "pipe"];
  if (SETPRIV) {
    const ids = runAs ? ["--reuid", String(runAs.uid), "--regid", String(runAs.gid), "--clear-groups"] : [];
    return spawn(SETPRIV, [...ids, `--pdeathsig=${deathSignal}`, "--", binary, ...args], { env, stdio });
  }
  return spawn(binary, args, { env, stdio, ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}) });
}

const rootHint = (runAs: RunAs | undefined, dataDir: string) =>
  runAs ? ` (as user ${runAs.name}, uid ${runAs.uid}: every parent directory of ${dataDir} must be traversable by it)` : "";

/** Options of {@link initCluster}. */
export interface InitClusterOptions {
  readonly binaries: PostgresBinaries;
  readonly runAs: RunAs | undefined;
  readonly dataDir: string;
  readonly user: string;
  readonly password: string;
}

/**
 * Creates a cluster in `dataDir` with `initdb`: superuser `user` with a SCRAM password (host
 * connections require it), UTF-8, C locale (deterministic sorting, no OS locale needed) and
 * `--no-sync` (tests do not need the fresh files fsynced).
 */
export async function initCluster(o: InitClusterOptions): Promise<void> {
  await mkdir(o.dataDir, { recursive: true, mode: 0o700 });
  if (o.runAs) await chown(o.dataDir, o.runAs.uid, o.runAs.gid);
  const pwDir = await mkdtemp(join(tmpdir(), `${TEMP_PREFIX}pw-`));
  try {
    await chmod(pwDir, 0o711);
    const pwFile = join(pwDir, "pw");
    await writeFile(pwFile, `${o.password}\n`, { mode: 0o600 });
    if (o.runAs) await chown(pwFile, o.runAs.uid, o.runAs.gid);
    const args = [`--pgdata=${o.dataDir}`, `--username=${o.user}`, `--pwfile=${pwFile}`, "--auth=scram-sha-256",
      "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"];
    const log = new LogTail();
    const child = spawnAs(o.binaries.initdb, args, o.runAs, "KILL");
    child.stdout?.on("data", (c: Buffer) => log.push(c));
    child.stderr?.on("data", (c: Buffer) => log.push(c));
    const code = await new Promise<number | string>((resolve) => {
      child.once("error", (err) => resolve(err.message));
      child.once("close", (c, signal) => resolve(c ?? signal ?? "unknown"));
    });
    if (code !== 0) {
      throw new PostgresProcessError(`initdb failed (${code})${rootHint(o.runAs, o.dataDir)}`, log.tail());
    }
  } finally {
    await rm(pwDir, { recursive: true, force: true });
  }
}

/** A running postmaster started by {@link startPostmaster}. */
export interface Postmaster {
  /** The postmaster's PID (setpriv execs into postgres, so it is the spawned child's PID). */
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves when the postmaster has exited (and was reaped). */
  readonly exited: Promise<void>;
  readonly log: LogTail;
}

/** Options of {@link startPostmaster}. */
export interface StartPostmasterOptions {
  readonly binaries: PostgresBinaries;
  readonly runAs: RunAs | undefined;
  readonly dataDir: string;
  readonly port: number;
  /** `-c name=value` server settings. */
  readonly settings: Readonly<Record<string, string>>;
  /** Signal the kernel sends the postmaster when the spawning thread dies (`INT` fast, `QUIT` immediate). */
  readonly deathSignal: "INT" | "QUIT";
  readonly timeoutMs: number;
  readonly onLog?: (line: string) => void;
}

/**
 * Spawns `postgres -D dataDir -p port -c …` and resolves once it logs "ready to accept
 * connections". Rejects with the last log lines if it exits first or does not get ready in time.
 */
export function startPostmaster(o: StartPostmasterOptions): Promise<Postmaster> {
  const settings = Object.entries(o.settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
  const log = new LogTail(200, o.onLog);
  const child = spawnAs(o.binaries.postgres, ["-D", o.dataDir, "-p", String(o.port), ...settings], o.runAs, o.deathSignal);
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  // A forgotten server must not keep the process alive: it exits, and the exit hook stops postgres.
  setRef(child, false);
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      const where = `postgres -D ${o.dataDir} -p ${o.port}`;
      reject(new PostgresProcessError(`${where} ${why}${rootHint(o.runAs, o.dataDir)}`, log.tail()));
    };
    const timer = setTimeout(() => {
      child.kill("SIGQUIT");
      fail(`was not ready after ${o.timeoutMs} ms`);
    }, o.timeoutMs);
    const onData = (chunk: Buffer) => {
      if (log.push(chunk).some((line) => line.includes(READY)) && child.pid !== undefined) {
        clearTimeout(timer);
        resolve({ pid: child.pid, child, exited, log });
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("error", (err) => fail(`could not be spawned: ${err.message}`));
    child.once("exit", (code, signal) => fail(`exited during startup (code ${code}, signal ${signal})`));
  });
}

/**
 * Stops a postmaster by PID: SIGINT (fast shutdown: disconnect clients, checkpoint, exit), then
 * SIGQUIT (immediate) and finally SIGKILL if it does not exit within `timeoutMs` each.
 */
export async function stopPostmaster(pm: Postmaster, timeoutMs = 10_000): Promise<void> {
  setRef(pm.child, true); // keep the event loop alive until the postmaster has exited
  for (const signal of ["SIGINT", "SIGQUIT", "SIGKILL"] as const) {
    if (pm.child.exitCode !== null || pm.child.signalCode !== null) break;
    pm.child.kill(signal);
    const timedOut = await Promise.race([pm.exited.then(() => false), sleep(timeoutMs).then(() => true)]);
    if (!timedOut) break;
  }
  await pm.exited;
}

function setRef(child: ChildProcess, ref: boolean): void {
  for (const h of [child, child.stdout, child.stderr] as Array<{ ref?(): void; unref?(): void } | null>) {
    if (ref) h?.ref?.();
    else h?.unref?.();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** What the exit hook needs to know about a running server. */
export interface ExitEntry {
  /** Current postmaster PID, if one is running. */
  pid(): number | undefined;
  readonly dataDir: string;
  /** Directory to delete after the postmaster is gone (non-persistent servers). */
  readonly removeDir: string | undefined;
}

const entries = new Set<ExitEntry>();
let hooked = false;

const sleepSync = (ms: number) => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Signals every tracked postmaster and deletes non-persistent data; synchronous (runs in `exit`). */
export function cleanupSync(): void {
  for (const e of entries) {
    const pid = e.pid();
    if (pid !== undefined) {
      try {
        process.kill(pid, e.removeDir ? "SIGQUIT" : "SIGINT");
      } catch {
        /* already gone */
      }
    }
  }
  for (const e of entries) {
    if (!e.removeDir) continue;
    // The postmaster removes postmaster.pid as its last act; our zombie child can't be reaped here.
    const deadline = Date.now() + 3_000;
    while (e.pid() !== undefined && existsSync(join(e.dataDir, "postmaster.pid")) && Date.now() < deadline) sleepSync(20);
    rmSync(e.removeDir, { recursive: true, force: true });
  }
  entries.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupSync();
  // Our listener suppressed Node's default action; restore it unless someone else handles the signal.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

/** Registers a server with the exit hook; returns the function that unregisters it. */
export function trackForExit(entry: ExitEntry): () => void {
  if (!hooked) {
    hooked = true;
    process.once("exit", cleanupSync);
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, onSignal);
  }
  entries.add(entry);
  return () => entries.delete(entry);
}

/** Creates a 0755 temp directory for one server and records which process owns it. */
export async function makeRunDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), TEMP_PREFIX));
  await chmod(dir, 0o755); // mkdtemp makes 0700: the postgres user could not reach the data dir
  writeFileSync(join(dir, OWNER_FILE), `${hostname()} ${process.pid}\n`);
  return dir;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * Deletes run directories under `root` left by processes that died without cleaning up (SIGKILL),
 * first ending their postmaster if it still runs (only if `/proc/<pid>/cmdline` shows our data
 * dir, so a reused PID is never signalled). Directories of other hosts sharing `/tmp` are skipped.
 */
export function reapStaleRuns(root = tmpdir()): void {
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => n.startsWith(TEMP_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(root, name);
    try {
      const [host, owner] = readFileSync(join(dir, OWNER_FILE), "utf8").trim().split(" ");
      if (host !== hostname() || alive(Number(owner))) continue;
      const dataDir = join(dir, "data");
      const pm = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0] ?? NaN);
      if (pm > 0 && alive(pm) && readFileSync(`/proc/${pm}/cmdline`, "utf8").includes(dataDir)) {
        process.kill(pm, "SIGQUIT");
        const deadline = Date.now() + 3_000;
        while (alive(pm) && existsSync(join(dataDir, "postmaster.pid")) && Date.now() < deadline) sleepSync(20);
      }
      rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" && existsSync(join(dir, OWNER_FILE))) {
        rmSync(dir, { recursive: true, force: true }); // no postmaster.pid: nothing runs there
      }
    }
  }
}
