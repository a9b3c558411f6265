/**
 * `conductor ctl maestro apply|delete`: writes a Maestro resource the way Maestro's
 * `ResourceService` writes it (maestro-db.md §3.1, §3.2, §3.4, §4.1) — the `resources` row, an
 * `events` row, then `select pg_notify('events', id)`, three autocommits — so a conductor sharing the
 * database delivers it to the cluster's agents. Maestro has no REST create for resource bundles
 * (only its gRPC source API), so this is the quickest way to try the `maestro` route, locally or
 * against a test database. Production sources keep going through Maestro.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isValidConsumerName } from "@ocm-conductor/consumer-controller";
import { DataTypes } from "@ocm-conductor/protocol";
import postgres from "postgres";
import { parse as parseYaml } from "yaml";
import { DEFAULT_DATA_DIR, parseDatabaseUrl, type DatabaseConnection } from "../database-config.js";
import { runningEmbeddedConnection } from "../embedded-database.js";
import { postgresOptions } from "../maestro-database.js";

/** A mistake in the input or flags (exit status 2). */
export class MaestroResourceInputError extends Error {
  override readonly name = "MaestroResourceInputError";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FORBIDDEN_METADATA = ["generateName", "resourceVersion", "deletionGracePeriodSeconds"] as const;

/** What {@link maestroApply} did. */
export interface ApplyResult {
  readonly resourceId: string;
  readonly eventId: string;
  readonly action: "created" | "updated";
  readonly version: number;
  /** True when the cluster had no consumer and one was created (as `POST /consumers` would). */
  readonly consumerCreated: boolean;
}

/**
 * The manifests of an input document: a list of manifests, one manifest, or a ManifestBundle
 * (`{manifests, deleteOption?, manifestConfigs?}`), in JSON or YAML. Validated as Maestro's
 * `ValidateManifestBundle` does (§3.1 step 1): `apiVersion`, `kind` and `metadata.name` required;
 * `generateName`, `resourceVersion` and `deletionGracePeriodSeconds` refused; no duplicates.
 *
 * @throws MaestroResourceInputError naming the first problem.
 */
export function readManifestBundle(text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new MaestroResourceInputError(`the input is neither JSON nor YAML: ${(err as Error).message}`);
  }
  const bundle: Record<string, unknown> = Array.isArray(doc) ? { manifests: doc }
    : isObject(doc) && Array.isArray(doc.manifests) ? { ...doc }
    : isObject(doc) && typeof doc.kind === "string" ? { manifests: [doc] }
    : (() => { throw new MaestroResourceInputError("the input must be a manifest, a list of manifests or {manifests: [...]}"); })();
  const manifests = bundle.manifests as unknown[];
  if (manifests.length === 0) throw new MaestroResourceInputError("the bundle has no manifests");
  const seen = new Set<string>();
  manifests.forEach((m, i) => {
    const at = `manifests[${i}]`;
    if (!isObject(m)) throw new MaestroResourceInputError(`${at} is not an object`);
    if (typeof m.apiVersion !== "string" || m.apiVersion === "") throw new MaestroResourceInputError(`${at}: apiVersion is required`);
    if (typeof m.kind !== "string" || m.kind === "") throw new MaestroResourceInputError(`${at}: kind is required`);
    const meta = m.metadata;
    if (!isObject(meta) || typeof meta.name !== "string" || meta.name === "") throw new MaestroResourceInputError(`${at}: metadata.name is required`);
    for (const key of FORBIDDEN_METADATA) if (meta[key] !== undefined) throw new MaestroResourceInputError(`${at}: metadata.${key} is not allowed`);
    const key = `${m.apiVersion}/${m.kind}/${typeof meta.namespace === "string" ? meta.namespace : ""}/${meta.name}`;
    if (seen.has(key)) throw new MaestroResourceInputError(`${at}: duplicate manifest ${key}`);
    seen.add(key);
  });
  bundle.deleteOption ??= { propagationPolicy: "Foreground" };
  return bundle;
}

/** The `payload` Maestro stores: the source's CloudEvent in JSON form, `metadata` as an object (§3.6). */
export function maestroPayload(resourceId: string, cluster: string, source: string, bundle: Record<string, unknown>, action: "create_request" | "update_request"): Record<string, unknown> {
  return {
    specversion: "1.0",
    id: randomUUID(),
    source,
    type: `${DataTypes.manifestBundles}.spec.${action}`,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    resourceid: resourceId,
    resourceversion: 0,
    clustername: cluster,
    metadata: { uid: resourceId, name: resourceId, namespace: cluster, labels: {}, resourceVersion: "0" },
    data: bundle,
  };
}

/** Options of {@link maestroApply}. */
export interface ApplyOptions {
  cluster: string;
  bundle: Record<string, unknown>;
  /** Update this resource (it must exist and belong to `cluster`); default: create one with a new id. */
  id?: string;
  /** The resource's `source` column (Maestro's source client id). Default `maestro-ctl`. */
  source?: string;
}

/**
 * Creates (or, with `id`, updates) a resource exactly as Maestro does; the consumer of `cluster`
 * is created first if missing, as `POST /api/maestro/v1/consumers` would.
 *
 * @throws MaestroResourceInputError for a bad cluster name, id, or an id of another cluster or a deleting resource.
 */
export async function maestroApply(sql: postgres.Sql, options: ApplyOptions): Promise<ApplyResult> {
  const { cluster, bundle } = options;
  if (!isValidConsumerName(cluster)) throw new MaestroResourceInputError(`--cluster must be a DNS label (a Maestro consumer name), got ${JSON.stringify(cluster)}`);
  const source = options.source ?? "maestro-ctl";
  if (options.id === undefined) {
    const consumerCreated = (await sql`insert into consumers (id, created_at, updated_at, deleted_at, name, labels)
      values (${randomUUID()}, now(), now(), null, ${cluster}, null) on conflict (name) do nothing returning id`).length > 0;
    const id = randomUUID();
    const payload = maestroPayload(id, cluster, source, bundle, "create_request");
    await sql`insert into resources (id, created_at, updated_at, deleted_at, version, source, consumer_name, type, payload, status, name)
      values (${id}, now(), now(), null, 1, ${source}, ${cluster}, '', ${sql.json(payload as never)}, 'null'::jsonb, ${id})`;
    return { resourceId: id, eventId: await notify(sql, id, "Create"), action: "created", version: 1, consumerCreated };
  }
  const id = options.id;
  if (!UUID.test(id)) throw new MaestroResourceInputError(`--id must be a resource UUID, got ${JSON.stringify(id)}`);
  const [found] = await sql<Array<{ consumer_name: string; source: string; deleted_at: Date | null }>>`select consumer_name, source, deleted_at from resources where id = ${id}`;
  if (found === undefined) throw new MaestroResourceInputError(`resource ${id} does not exist (leave out --id to create one)`);
  if (found.consumer_name !== cluster) throw new MaestroResourceInputError(`resource ${id} belongs to cluster ${found.consumer_name}, not ${cluster}`);
  if (found.deleted_at !== null) throw new MaestroResourceInputError(`resource ${id} is being deleted`);
  const payload = maestroPayload(id, cluster, found.source, bundle, "update_request");
  const [row] = await sql<Array<{ version: number }>>`update resources set updated_at = now(), version = version + 1, payload = ${sql.json(payload as never)}
    where id = ${id} returning version`;
  return { resourceId: id, eventId: await notify(sql, id, "Update"), action: "updated", version: Number(row!.version), consumerCreated: false };
}

/**
 * Marks a resource deleting as Maestro's `MarkAsDeleting` does (soft delete + `Delete` event); the
 * conductor hard-deletes it once the agent confirms. Returns the event id.
 *
 * @throws MaestroResourceInputError for an unknown id.
 */
export async function maestroDelete(sql: postgres.Sql, id: string): Promise<string> {
  if (!UUID.test(id)) throw new MaestroResourceInputError(`--id must be a resource UUID, got ${JSON.stringify(id)}`);
  const rows = await sql`update resources set deleted_at = now() where id = ${id} and deleted_at is null returning id`;
  if (rows.length === 0) {
    const [exists] = await sql`select 1 from resources where id = ${id}`;
    if (exists === undefined) throw new MaestroResourceInputError(`resource ${id} does not exist`);
  }
  return notify(sql, id, "Delete");
}

/** The `events` row, then the NOTIFY: two autocommits, as Maestro (§4.1). */
async function notify(sql: postgres.Sql, resourceId: string, type: "Create" | "Update" | "Delete"): Promise<string> {
  const eventId = randomUUID();
  await sql`insert into events (id, created_at, updated_at, deleted_at, source, source_id, event_type, reconciled_date)
    values (${eventId}, now(), now(), null, 'Resources', ${resourceId}, ${type}, null)`;
  await sql`select pg_notify('events', ${eventId})`;
  return eventId;
}

/**
 * The database `ctl maestro` writes: `--database-url`, else `DATABASE_URL`, else the embedded
 * database a running `conductor serve` keeps in `--data-dir` (default `.data/pg`).
 */
export async function ctlDatabase(flags: { databaseUrl?: string; dataDir?: string }, env: NodeJS.ProcessEnv): Promise<DatabaseConnection> {
  const url = flags.databaseUrl ?? (env.DATABASE_URL === "" ? undefined : env.DATABASE_URL);
  if (url !== undefined) return parseDatabaseUrl(url, flags.databaseUrl !== undefined ? "--database-url" : "DATABASE_URL");
  return runningEmbeddedConnection(flags.dataDir ?? DEFAULT_DATA_DIR);
}

/** Opens a small client on `connection` for one ctl command. */
export function ctlSql(connection: DatabaseConnection): postgres.Sql {
  return postgres(postgresOptions(connection, 10, 1));
}

/** Reads `-f FILE` (or `-` for standard input) as a ManifestBundle. */
export async function readBundleFile(file: string, stdin: () => Promise<string>): Promise<Record<string, unknown>> {
  const text = file === "-" ? await stdin() : await readFile(file, "utf8").catch((err: Error) => {
    throw new MaestroResourceInputError(`cannot read ${file}: ${err.message}`);
  });
  return readManifestBundle(text);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
