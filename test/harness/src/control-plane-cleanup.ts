/**
 * Leftover-process protection for the control-plane harness.
 *
 * Three layers, so a crashed test run does not leave etcd or kube-apiserver running:
 * 1. an `exit` hook plus SIGINT/SIGTERM/SIGHUP handlers in this Node process, which SIGKILL every
 *    registered process group synchronously and remove run directories;
 * 2. a detached `bash` reaper per control plane that polls this Node process's PID once a second
 *    and, when it is gone (e.g. SIGKILL, OOM), ends the process groups listed in the run
 *    directory's `pgids` file — only if `/proc/<pgid>/exe` is still the binary that was started,
 *    so a reused PID is never signalled;
 * 3. `stop()` itself (in control-plane.ts), the normal path.
 *
 * @packageDocumentation
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { signalGroup } from "./control-plane-process.js";

/** What the in-process hooks must clean up for one running control plane. */
export interface CleanupEntry {
  /** Process-group IDs to SIGKILL. */
  readonly pgids: number[];
  /** Run directory to remove, or undefined to keep it. */
  readonly runDir: string | undefined;
  /** The reaper child, killed so it does not outlive a clean exit. */
  reaper: ChildProcess | undefined;
}

const registry = new Set<CleanupEntry>();
let hooksInstalled = false;

/** Synchronously SIGKILLs everything registered and removes run directories. */
function cleanupAllSync(): void {
  for (const entry of registry) {
    for (const pgid of entry.pgids) {
      try {
        signalGroup(pgid, "SIGKILL");
      } catch {
        // best effort during exit
      }
    }
    entry.reaper?.kill("SIGKILL");
    if (entry.runDir) rmSync(entry.runDir, { recursive: true, force: true });
  }
  registry.clear();
}

function onSignal(signal: NodeJS.Signals): void {
  cleanupAllSync();
  process.removeListener(signal, onSignal);
  // Keep the default behaviour (terminate) unless someone else handles this signal.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", cleanupAllSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, onSignal);
}

/** Registers a control plane with the in-process exit hooks; returns the entry for later removal. */
export function registerCleanup(entry: CleanupEntry): CleanupEntry {
  installHooks();
  registry.add(entry);
  return entry;
}

/** Removes an entry from the in-process exit hooks (after a clean stop). */
export function unregisterCleanup(entry: CleanupEntry): void {
  registry.delete(entry);
}

const REAPER_SCRIPT = `
parent=$1; pgfile=$2; rundir=$3
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
sweep() {
  [ -f "$pgfile" ] || return 0
  while read -r pg exe; do
    [ -n "$pg" ] || continue
    if [ "$(readlink "/proc/$pg/exe" 2>/dev/null)" = "$exe" ]; then kill "-$1" -- "-$pg" 2>/dev/null; fi
  done < "$pgfile"
}
sweep TERM; sleep 5; sweep KILL
if [ -n "$rundir" ]; then rm -rf -- "$rundir"; fi
`;

/**
 * Starts the reaper for a run directory. Process groups are added later with
 * {@link recordGroupForReaper}. The reaper runs in its own process group and is unref'd, so it
 * neither keeps Node alive nor dies with a Ctrl-C sent to the terminal's foreground group.
 *
 * @param runDir - the control plane's run directory (the `pgids` file lives there).
 * @param removeRunDir - whether the reaper removes the run directory after the sweep.
 */
export function startReaper(runDir: string, removeRunDir: boolean): ChildProcess {
  const reaper = spawn(
    "bash",
    ["-c", REAPER_SCRIPT, "ocm-control-plane-reaper", String(process.pid), join(runDir, "pgids"), removeRunDir ? runDir : ""],
    { detached: true, stdio: "ignore" },
  );
  reaper.on("error", () => undefined); // bash missing: the in-process hooks still apply
  reaper.unref();
  return reaper;
}

/** Tells the reaper about a process group led by `exe` (its resolved path, as `/proc/<pid>/exe` shows). */
export function recordGroupForReaper(runDir: string, pgid: number, exe: string): void {
  appendFileSync(join(runDir, "pgids"), `${pgid} ${exe}\n`);
}

/**
 * Replaces the reaper's list of process groups with `groups` (used after a child was replaced, e.g.
 * by a kube-apiserver restart, so the reaper never signals a process group that was already ended).
 * The file is written to a temporary name and renamed, so the reaper never reads half a list.
 */
export function rewriteGroupsForReaper(runDir: string, groups: ReadonlyArray<{ readonly pgid: number; readonly exe: string }>): void {
  const file = join(runDir, "pgids");
  writeFileSync(`${file}.tmp`, groups.map((g) => `${g.pgid} ${g.exe}\n`).join(""));
  renameSync(`${file}.tmp`, file);
}
