/**
 * Child-process plumbing for the control-plane harness: spawning a binary in its own process group,
 * keeping the tail of its output for error messages, bounded polling, and ending a process group
 * (SIGTERM, then SIGKILL after a timeout).
 *
 * @packageDocumentation
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { createServer } from "node:net";

/** A child process started by {@link spawnGroup}, leader of its own process group. */
export interface GroupChild {
  /** Short name used in messages, e.g. `etcd`. */
  readonly name: string;
  /** The child's PID, which is also its process-group ID (it was spawned with `detached: true`). */
  readonly pid: number;
  /** The underlying Node child process. */
  readonly process: ChildProcess;
  /** Path of the file receiving the child's stdout and stderr. */
  readonly logFile: string;
  /** Resolves with the exit code (or the signal name) once the child has exited. */
  readonly exited: Promise<number | string>;
  /** True once the child has exited. */
  hasExited(): boolean;
  /** The last lines the child wrote to stdout/stderr (at most 40). */
  tail(): string;
}

const TAIL_LINES = 40;

/**
 * Spawns `binary args...` with `detached: true`, so it leads its own process group and can be ended
 * as a group with {@link killGroup}. Its stdout and stderr go to `logFile`; the last lines are kept
 * in memory for error messages.
 *
 * @param name - short name for messages.
 * @param binary - absolute path of the executable.
 * @param args - command-line arguments.
 * @param logFile - file to write the child's output to (created or truncated).
 */
export function spawnGroup(name: string, binary: string, args: string[], logFile: string): GroupChild {
  const log: WriteStream = createWriteStream(logFile);
  const lines: string[] = [];
  let partial = "";
  let logEnded = false;
  const endLog = (): void => {
    if (logEnded) return;
    logEnded = true;
    log.end();
  };
  const collect = (chunk: Buffer): void => {
    // Output can still arrive between "exit" and "close" (the pipes drain after the process ends).
    if (!logEnded) log.write(chunk);
    const parts = (partial + chunk.toString("utf8")).split("\n");
    partial = parts.pop() ?? "";
    lines.push(...parts);
    if (lines.length > TAIL_LINES) lines.splice(0, lines.length - TAIL_LINES);
  };
  const child = spawn(binary, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once("error", (err) => {
      done = true;
      lines.push(`spawn error: ${err.message}`);
      endLog();
      resolve(`spawn error: ${err.message}`);
    });
    child.once("exit", (code, signal) => {
      done = true;
      resolve(code ?? signal ?? "unknown");
    });
  });
  // "close" comes after "exit" once stdout and stderr are drained; only then is the log complete.
  child.once("close", endLog);
  if (child.pid === undefined) {
    // spawn failed synchronously (e.g. ENOENT); the "error" event carries the reason.
    return {
      name, pid: -1, process: child, logFile, exited, hasExited: () => true,
      tail: () => [...lines, partial].join("\n").trim(),
    };
  }
  return {
    name,
    pid: child.pid,
    process: child,
    logFile,
    exited,
    hasExited: () => done,
    tail: () => [...lines, partial].filter((l) => l.length > 0).join("\n"),
  };
}

/** True if a process with this PID exists (signal 0 probe). A zombie still counts as existing. */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** True if any process is still in process group `pgid`. */
export function groupExists(pgid: number): boolean {
  return pidExists(-pgid);
}

/** Sends `signal` to every process of group `pgid`, ignoring "no such process". */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/**
 * Ends the process group led by `child`: SIGTERM, then SIGKILL if the group is still alive after
 * `graceMs`. Resolves once the leader has exited and no process of the group is left (bounded by
 * a further 10 s, after which it rejects).
 */
export async function killGroup(child: GroupChild, graceMs = 10_000): Promise<void> {
  if (child.pid <= 0) return;
  signalGroup(child.pid, "SIGTERM");
  const gone = (): boolean => child.hasExited() && !groupExists(child.pid);
  if (await pollUntil(gone, graceMs)) return;
  signalGroup(child.pid, "SIGKILL");
  if (await pollUntil(gone, 10_000)) return;
  throw new Error(`${child.name} (process group ${child.pid}) is still alive after SIGKILL`);
}

/** Polls `check` every `intervalMs` until it returns true (→ true) or `timeoutMs` passes (→ false). */
export async function pollUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits until `probe` succeeds, failing fast with the child's output if the child exits first, and
 * with a timeout error naming `what` after `timeoutMs`.
 *
 * @param child - the process that must stay alive while waiting.
 * @param what - description for error messages, e.g. `etcd /health`.
 * @param probe - resolves true when ready; may throw (treated as "not ready yet").
 * @param timeoutMs - overall bound.
 */
export async function waitReady(
  child: GroupChild,
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const start = Date.now();
  let lastError = "";
  for (;;) {
    if (child.hasExited()) {
      const status = await child.exited;
      throw new Error(
        `${child.name} exited (${status}) while waiting for ${what}; last output (${child.logFile}):\n${child.tail()}`,
      );
    }
    try {
      if (await probe()) return;
      lastError = "";
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() - start > timeoutMs) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}; ` +
          `last output of ${child.name} (${child.logFile}):\n${child.tail()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Returns a TCP port that is free on 127.0.0.1 right now (kernel-assigned, probe socket closed). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close((err) => (err || port === 0 ? reject(err ?? new Error("no port")) : resolve(port)));
    });
  });
}

/** True if the text looks like a failed bind on an address that is already taken. */
export function isAddressInUse(text: string): boolean {
  return /address already in use/i.test(text);
}
