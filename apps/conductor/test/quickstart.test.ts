/**
 * The README quickstart, with the real binary: `conductor serve` on its embedded database, `conductor
 * ctl subscribe` waiting on cluster1, `conductor ctl maestro apply` writing a resource as Maestro
 * does — the subscriber prints the spec event. Then update and delete, and the ctl's bad input:
 * exit 2 with the reason, nothing written.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PASSWORD_FILE } from "../src/embedded-database.js";
import { eventually } from "./support.js";

const bin = fileURLToPath(new URL("../bin/conductor.js", import.meta.url));
const children = new Set<ChildProcess>();

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DATABASE_URL: "", ...env } });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => (children.delete(child), resolve(code))));
  return { child, exited, out: () => stdout, err: () => stderr };
}

let dir: string;
let dataDir: string;
let server: ReturnType<typeof run>;
let grpcUrl: string;
let databaseUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "conductor-quickstart-"));
  await chmod(dir, 0o755); // the postgres user (when running as root) must traverse it
  dataDir = join(dir, "pg");
  server = run(["serve", "--data-dir", dataDir, "--grpc-port", "0", "--admin-port", "0"]);
  const listening = await eventually(() => server.err().split("\n").find((l) => l.includes("gRPC server listening")), 90_000, `gRPC listening\n${server.err()}`);
  grpcUrl = (JSON.parse(listening) as { url: string }).url;
  const ready = server.err().split("\n").find((l) => l.includes("embedded PostgreSQL ready"))!;
  const password = (await readFile(join(dataDir, PASSWORD_FILE), "utf8")).trim();
  databaseUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${(JSON.parse(ready) as { port: number }).port}/maestro`;
}, 120_000);

afterAll(async () => {
  server?.child.kill("SIGTERM");
  await server?.exited;
  for (const child of children) child.kill("SIGKILL");
  if (dir) await rm(dir, { recursive: true, force: true });
});

const counts = async () => {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`select (select count(*) from resources)::int as resources, (select count(*) from events)::int as events, (select count(*) from consumers)::int as consumers`;
    return row;
  } finally {
    await sql.end({ timeout: 5 });
  }
};

describe("quickstart: ctl subscribe sees what ctl maestro apply writes", () => {
  it("delivers a create, an update and a delete to the subscriber of the cluster", async () => {
    const manifests = join(dir, "configmap.yaml");
    await writeFile(manifests, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n  namespace: default\ndata:\n  greeting: hi\n");
    const sub = run(["ctl", "subscribe", "--server", grpcUrl, "--cluster", "cluster1", "--count", "3", "--timeout", "60s"]);
    await eventually(() => sub.err().includes("subscription-id:"), 20_000, `subscription\n${sub.err()}`);

    const apply = run(["ctl", "maestro", "apply", "--data-dir", dataDir, "--cluster", "cluster1", "-f", manifests]);
    expect(await apply.exited, apply.err()).toBe(0);
    expect(apply.err()).toContain("created consumer cluster1");
    const id = /created resource ([0-9a-f-]{36}) \(version 1, event [0-9a-f-]{36}\)/.exec(apply.out())?.[1];
    expect(id, apply.out()).toBeDefined();

    await writeFile(manifests, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n  namespace: default\ndata:\n  greeting: hello again\n");
    const update = run(["ctl", "maestro", "apply", "--database-url", databaseUrl, "--cluster", "cluster1", "--id", id!, "-f", manifests]);
    expect(await update.exited, update.err()).toBe(0);
    expect(update.out()).toMatch(new RegExp(`updated resource ${id} \\(version 2,`));
    const del = run(["ctl", "maestro", "delete", "--data-dir", dataDir, "--id", id!]);
    expect(await del.exited, del.err()).toBe(0);

    expect(await sub.exited, sub.err()).toBe(0);
    const events = sub.out().trim().split(/\n(?=\{)/).map((t) => JSON.parse(t) as { source: string; type: string; attributes: Record<string, { ceString?: string; ceInteger?: number }>; binaryData?: string; textData?: string });
    expect(events.map((e) => e.type.split(".").slice(-2).join("."))).toEqual(["spec.create_request", "spec.update_request", "spec.delete_request"]);
    expect(events.map((e) => [e.source, e.attributes["ce-resourceid"]])).toEqual(Array(3).fill(["maestro", { ceString: id }]));
    const data = (e: (typeof events)[number]) => e.textData ?? Buffer.from(e.binaryData ?? "", "base64").toString("utf8");
    expect(data(events[0]!)).toContain('"greeting":"hi"');
    expect(data(events[1]!)).toContain('"greeting":"hello again"');
  }, 120_000);

  it.each([
    [["maestro"], /ctl maestro needs apply or delete/],
    [["maestro", "apply", "--cluster", "c1"], /needs -f FILE/],
    [["maestro", "apply", "-f", "/nonexistent.yaml"], /needs --cluster/],
    [["maestro", "apply", "-f", "/nonexistent.yaml", "--cluster", "c1"], /cannot read \/nonexistent.yaml/],
    [["maestro", "delete"], /needs --id/],
    [["maestro", "apply", "-f", "BAD", "--cluster", "c1"], /duplicate manifest/],
    [["maestro", "apply", "-f", "GOOD", "--cluster", "Not_A_Label"], /--cluster must be a DNS label/],
    [["maestro", "apply", "-f", "GOOD", "--cluster", "c1", "--id", "x'; drop table resources; --"], /--id must be a resource UUID/],
    [["maestro", "apply", "-f", "GOOD", "--cluster", "c1", "--id", "00000000-0000-4000-8000-000000000000"], /does not exist/],
    [["maestro", "delete", "--id", "00000000-0000-4000-8000-000000000000"], /does not exist/],
    [["maestro", "apply", "-f", "GOOD", "--cluster", "c1", "--database-url", "mysql://x@y/z"], /--database-url/],
  ])("exits 2 and writes nothing for ctl %j", async (args, message) => {
    const good = join(dir, "good.yaml");
    const bad = join(dir, "bad.json");
    await writeFile(good, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
    await writeFile(bad, JSON.stringify([{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a" } }, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a" } }]));
    const before = await counts();
    const argv = args.map((a) => (a === "GOOD" ? good : a === "BAD" ? bad : a));
    const p = run(["ctl", ...argv, ...(argv.includes("--database-url") ? [] : ["--data-dir", dataDir])]);
    expect(await p.exited).toBe(2);
    expect(p.err()).toMatch(message);
    expect(await counts()).toEqual(before);
  }, 30_000);

  it("exits 1 with a clear message when no conductor runs in the data directory", async () => {
    const p = run(["ctl", "maestro", "delete", "--id", "00000000-0000-4000-8000-000000000000", "--data-dir", join(dir, "nothing-here")]);
    expect(await p.exited).toBe(1);
    expect(p.err()).toMatch(/is not an embedded database of the conductor/);
  });
});
