/**
 * Acceptance: the real `conductor serve` binary serving the `maestro` source, from its embedded
 * PostgreSQL (default) and from an external one (`DATABASE_URL`, a harness PostgreSQL). A resource
 * written by SQL as Maestro writes it must reach a gRPC subscriber of its cluster.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CloudEventService, DataTypes, Extension, fromProto } from "@ocm-conductor/protocol";
import { createDatabase, getFreePort, startPostgres, type PostgresServer } from "@ocm-conductor/test-harness";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD_FILE } from "../src/embedded-database.js";
import { eventually, openStream } from "./support.js";

const bin = fileURLToPath(new URL("../bin/conductor.js", import.meta.url));
const children = new Set<ChildProcess>();

type LogLine = Record<string, unknown> & { msg?: string };

/** Starts `conductor serve` with `env` (DATABASE_URL cleared unless given) and collects its JSON log lines. */
function serve(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [bin, "serve", "--grpc-port", "0", "--admin-port", "0", "--broker-heartbeat-disabled", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DATABASE_URL: "", ...env },
  });
  children.add(child);
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => (children.delete(child), resolve(code))));
  const lines = (): LogLine[] => stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as LogLine);
  const line = (msg: string) => eventually(() => lines().find((l) => l.msg === msg), 60_000, `log line "${msg}"\n${stderr}`);
  return { child, exited, line, stderr: () => stderr };
}

afterEach(() => {
  for (const child of children) child.kill("SIGKILL"); // by PID; PostgreSQL follows by its parent-death signal
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const payload = (id: string) => ({
  specversion: "1.0", id: `e-${id}`, source: "mw-client", type: `${DataTypes.manifestBundles}.spec.create_request`,
  datacontenttype: "application/json", resourceid: id, resourceversion: 0, clustername: "cluster1",
  metadata: { name: `work-${id}`, namespace: "cluster1", uid: id },
  data: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "default" } }] },
});

/** Writes as Maestro does (maestro-db.md §3.1): consumer, resource row, `events` row, NOTIFY. */
async function maestroCreate(url: string, id: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`insert into consumers (id, created_at, updated_at, name) values ('c-1', now(), now(), 'cluster1') on conflict do nothing`;
    await sql`insert into resources (id, created_at, updated_at, source, consumer_name, version, type, payload, status)
      values (${id}, now(), now(), 'mw-client', 'cluster1', 1, '', ${sql.json(payload(id))}, 'null'::jsonb)`;
    const eventId = randomUUID();
    await sql`insert into events (id, created_at, updated_at, source, source_id, event_type) values (${eventId}, now(), now(), 'Resources', ${id}, 'Create')`;
    await sql`select pg_notify('events', ${eventId})`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Subscribes to cluster1's manifestbundles, writes a resource by SQL, and expects its spec event from source `maestro`. */
async function expectDelivery(grpcUrl: string, databaseUrl: string, id: string): Promise<void> {
  const client = createClient(CloudEventService, createGrpcTransport({ baseUrl: grpcUrl }));
  const stream = openStream(client, "cluster1", DataTypes.manifestBundles);
  try {
    await eventually(() => stream.header(), 5000, "subscription headers");
    await maestroCreate(databaseUrl, id);
    const received = await eventually(() => stream.events().map(fromProto).find((e) => e.extensions[Extension.resourceId] === id), 10_000, `spec event of ${id}`);
    expect(received.source).toBe("maestro");
    expect(received.type).toBe(`${DataTypes.manifestBundles}.spec.create_request`);
    expect(received.extensions[Extension.clusterName]).toBe("cluster1");
  } finally {
    stream.cancel();
  }
}

const tables = async (url: string) => {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return (await sql<{ table_name: string }[]>`select table_name from information_schema.tables where table_schema = 'public' order by 1`).map((r) => r.table_name);
  } finally {
    await sql.end({ timeout: 5 });
  }
};

describe("conductor serve with the embedded database (default)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "conductor-embedded-"));
    await chmod(dir, 0o755); // the postgres user (when running as root) must traverse it
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("creates the cluster and the schema, delivers specs, stops PostgreSQL on SIGTERM, and reuses the data on the next start", async () => {
    const dataDir = join(dir, "pg");
    const first = serve(["--data-dir", dataDir]);
    const ready = (await first.line("embedded PostgreSQL ready")) as { port: number; pid: number; created: boolean; dataDir: string };
    expect(ready).toMatchObject({ created: true, dataDir });
    expect((await first.line("maestro database ready"))["schema"]).toBe("created");
    const { url } = (await first.line("gRPC server listening")) as { url: string };
    const password = (await readFile(join(dataDir, PASSWORD_FILE), "utf8")).trim();
    const databaseUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${ready.port}/maestro`;
    expect(await tables(databaseUrl)).toEqual(expect.arrayContaining(["consumers", "events", "resources", "status_events"]));
    await expectDelivery(url, databaseUrl, "r-embedded");
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(alive(ready.pid)).toBe(false);

    const second = serve(["--data-dir", dataDir]);
    const again = (await second.line("embedded PostgreSQL ready")) as { port: number; pid: number; created: boolean };
    expect(again.created).toBe(false);
    expect((await second.line("maestro database ready"))["schema"]).toBe("current");
    const sql = postgres(`postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${again.port}/maestro`, { max: 1, onnotice: () => {} });
    try {
      expect(await sql`select id from resources`).toEqual([{ id: "r-embedded" }]);
    } finally {
      await sql.end({ timeout: 5 });
    }
    second.child.kill("SIGINT");
    expect(await second.exited).toBe(0);
    expect(alive(again.pid)).toBe(false);
  }, 120_000);

  it("refuses a data directory that is not empty and holds no cluster, with exit 1", async () => {
    const junk = join(dir, "junk");
    await mkdir(junk);
    await writeFile(join(junk, "notes.txt"), "not a database\n");
    const p = serve(["--data-dir", junk]);
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toMatch(/conductor: .*junk is neither empty nor a PostgreSQL data directory/);
    expect(await readdir(junk)).toEqual(["notes.txt"]);
  }, 60_000);
});

describe("conductor serve with an external database (DATABASE_URL)", () => {
  let pg: PostgresServer;
  beforeAll(async () => {
    pg = await startPostgres();
  }, 120_000);
  afterAll(async () => pg?.stop());

  it("creates Maestro's schema in an empty database and delivers specs written by SQL to the subscriber", async () => {
    const databaseUrl = await createDatabase(pg, "maestro_ext");
    const p = serve([], { DATABASE_URL: databaseUrl });
    expect((await p.line("maestro database ready"))["schema"]).toBe("created");
    const { url } = (await p.line("gRPC server listening")) as { url: string };
    expect(await tables(databaseUrl)).toEqual(expect.arrayContaining(["consumers", "events", "migrations", "resources", "status_events"]));
    await expectDelivery(url, databaseUrl, "r-external");
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    expect(p.stderr()).not.toContain("embedded PostgreSQL");
  }, 60_000);

  it("exits 1 naming the schema problem for a database with Maestro tables but no migrations", async () => {
    const databaseUrl = await createDatabase(pg, "unmanaged");
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    await sql`create table resources (id text primary key)`;
    await sql.end({ timeout: 5 });
    const p = serve([], { DATABASE_URL: databaseUrl });
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toMatch(/conductor: database postgres:\/\/postgres@127\.0\.0\.1:\d+\/unmanaged\?sslmode=disable \(unmanaged-tables\)/);
    expect(p.stderr()).not.toMatch(/gRPC server listening/);
  }, 60_000);

  it("exits 1 quickly with a clear message for a wrong password and for a closed port, without printing the password", async () => {
    const wrong = new URL(pg.url);
    wrong.password = "not-the-password";
    const started = Date.now();
    const bad = serve([], { DATABASE_URL: wrong.toString() });
    const closed = serve([], { DATABASE_URL: `postgres://u:secret-pw@127.0.0.1:${await getFreePort()}/maestro` });
    expect(await bad.exited).toBe(1);
    expect(await closed.exited).toBe(1);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(bad.stderr()).toMatch(/conductor: cannot connect to postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres\?sslmode=disable: .*password authentication failed/);
    expect(closed.stderr()).toMatch(/cannot connect to .*ECONNREFUSED/);
    expect(bad.stderr() + closed.stderr()).not.toMatch(/not-the-password|secret-pw/);
  }, 60_000);
});
