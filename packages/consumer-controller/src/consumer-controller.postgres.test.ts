import { ensureSchema } from "@ocm-conductor/db-service";
import { createDatabase, eventually, startPostgres, type PostgresServer } from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConsumerController, type SyncResult } from "./consumer-controller.js";
import type { ManagedClusterLike } from "./managed-cluster.js";

// Two conductor replicas (two controllers, two connection pools) on one real Maestro database.

let pg: PostgresServer;
const clients: Sql[] = [];
const controllers: ConsumerController[] = [];

beforeAll(async () => {
  pg = await startPostgres();
}, 120_000);

afterAll(async () => {
  await Promise.all(controllers.map((c) => c.stop()));
  await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
  await pg?.stop();
});

function client(url: string): Sql {
  const sql = postgres(url, { max: 3, onnotice: () => {} });
  clients.push(sql);
  return sql;
}

function replica(sql: Sql, initialBackoffMs = 5_000) {
  const results: SyncResult[] = [];
  const controller = new ConsumerController({ sql, initialBackoffMs, maxBackoffMs: 4 * initialBackoffMs, onSync: (r) => results.push(r) });
  controllers.push(controller);
  return { controller, results };
}

const cluster = (name: string, joined: boolean): ManagedClusterLike => ({
  metadata: { name },
  status: { conditions: [{ type: "HubAcceptedManagedCluster", status: "True" }, { type: "ManagedClusterJoined", status: joined ? "True" : "False" }] },
});

describe("ConsumerController on real PostgreSQL", () => {
  it("two replicas racing on the same clusters create one consumer each; skipped and invalid clusters get none", async () => {
    const url = await createDatabase(pg, "race");
    const [sqlA, sqlB] = [client(url), client(url)];
    await ensureSchema(sqlA);
    const a = replica(sqlA);
    const b = replica(sqlB);
    const names = Array.from({ length: 10 }, (_, i) => `cluster-${i}`);
    for (const name of names) {
      a.controller.upsert(cluster(name, true));
      b.controller.upsert(cluster(name, true));
    }
    for (const c of [a.controller, b.controller]) {
      c.upsert(cluster("not-joined", false));
      c.upsert(cluster("Bad_Name", true));
    }
    await Promise.all([a.controller.whenIdle(), b.controller.whenIdle()]);

    const rows = await sqlA`select name, labels, deleted_at from consumers order by name`;
    expect(rows.map((r) => r.name)).toEqual([...names].sort());
    expect(rows.every((r) => r.labels === null && r.deleted_at === null)).toBe(true);
    for (const name of names) {
      const outcomes = [...a.results, ...b.results].filter((r) => r.name === name).map((r) => r.outcome).sort();
      expect(outcomes, name).toEqual(["created", "exists"]);
    }
    const bad = [...a.results, ...b.results].filter((r) => r.name === "Bad_Name");
    expect(bad.map((r) => r.outcome === "failed" && r.error.code)).toEqual(["invalid-name", "invalid-name"]);
    expect(a.controller.pendingRetries().size + b.controller.pendingRetries().size).toBe(0);

    // Both replicas see the removal: one deletes the consumer, the other finds it gone.
    a.controller.remove("cluster-0");
    b.controller.remove("cluster-0");
    await Promise.all([a.controller.whenIdle(), b.controller.whenIdle()]);
    expect((await sqlA`select count(*)::int as n from consumers where name = 'cluster-0'`)[0]!.n).toBe(0);
    const removal = [a.results, b.results].map((rs) => rs.filter((r) => r.name === "cluster-0").at(-1)?.outcome).sort();
    expect(removal).toEqual(["absent", "deleted"]);
  });

  it("acceptance: a deleted cluster's consumer with resources is kept and reported, and deleted on a retry once they are gone", async () => {
    const url = await createDatabase(pg, "kept");
    const sql = client(url);
    await ensureSchema(sql);
    const { controller, results } = replica(sql, 100);
    controller.upsert(cluster("cluster1", true));
    await controller.whenIdle();
    const [{ id }] = await sql<[{ id: string }]>`select id from consumers where name = 'cluster1'`;
    // A ManifestWork's resource (live) and one being deleted (soft-deleted, waiting for the agent).
    await sql`insert into resources (id, created_at, updated_at, deleted_at, source, consumer_name, version, type, payload, status, name) values
      ('r1', now(), now(), null, 'mw-client', 'cluster1', 1, '', '{}', 'null', 'r1'),
      ('r2', now(), now(), now(), 'mw-client', 'cluster1', 1, '', '{}', 'null', 'r2')`;
    controller.remove("cluster1");
    await eventually(() => results.filter((r) => r.outcome === "kept").length >= 2, 10_000, "the consumer kept twice");
    expect(results.filter((r) => r.outcome === "kept").slice(0, 2)).toEqual([100, 200].map((retryInMs) =>
      ({ name: "cluster1", outcome: "kept", reason: "has-resources", consumerId: id, resources: 2, retryInMs })));
    expect((await sql`select id from consumers`).map((r) => r.id)).toEqual([id]);
    expect(controller.pendingRetries().get("cluster1")).toBeGreaterThanOrEqual(2);

    await sql`delete from resources`; // both hard-deleted once the agent confirmed the deletions
    await eventually(() => results.some((r) => r.outcome === "deleted"), 10_000, "the delete on a retry");
    expect(results.at(-1)).toEqual({ name: "cluster1", outcome: "deleted", consumerId: id });
    expect(await sql`select id from consumers`).toEqual([]);
    expect(controller.pendingRetries().size).toBe(0);

    // Re-joining under the same name works: Maestro's delete is a hard delete, so the name is free.
    controller.upsert(cluster("cluster1", true));
    await controller.whenIdle();
    const rows = await sql`select id from consumers where name = 'cluster1'`;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id).not.toBe(id);
  });

  it("acceptance: 1,000 clusters joining at once get exactly 1,000 consumers, and a cluster joining meanwhile is not held up by them", async () => {
    const url = await createDatabase(pg, "burst");
    const sql = client(url);
    await ensureSchema(sql);
    const { controller, results } = replica(sql);
    const names = Array.from({ length: 1_000 }, (_, i) => `burst-${String(i).padStart(4, "0")}`);
    for (const name of names) controller.upsert(cluster(name, true)); // one delivery, as the informer's list
    await eventually(() => results.length >= 50, 60_000, "the burst under way");
    const doneBefore = results.length;
    controller.upsert(cluster("late-joiner", true));
    await eventually(() => results.some((r) => r.name === "late-joiner"), 60_000, "the late joiner's consumer");
    const doneAtLate = results.findIndex((r) => r.name === "late-joiner");
    // Served round-robin with the burst: a few burst clusters (the two running, one more) finish first, not the other ~950.
    expect(doneAtLate - doneBefore).toBeLessThanOrEqual(5);
    expect(results.find((r) => r.name === "late-joiner")?.outcome).toBe("created");
    expect(doneAtLate).toBeLessThan(names.length);
    await controller.whenIdle();
    expect(results.filter((r) => r.outcome === "created")).toHaveLength(1_001);
    const [{ n, distinct }] = await sql<[{ n: number; distinct: number }]>`
      select count(*)::int as n, count(distinct name)::int as distinct from consumers where name like 'burst-%'`;
    expect({ n, distinct }).toEqual({ n: 1_000, distinct: 1_000 });
    expect(controller.pendingRetries().size).toBe(0);
  });

  it("retries a database failure with back-off until the schema appears", async () => {
    const url = await createDatabase(pg, "late_schema");
    const sql = client(url);
    const { controller, results } = replica(sql, 100);
    controller.upsert(cluster("cluster1", true));
    await eventually(() => results.length >= 2, 10_000, "two failed attempts");
    expect(results.slice(0, 2).map((r) => (r.outcome === "failed" ? [r.error.code, r.retryInMs] : r.outcome)))
      .toEqual([["database-error", 100], ["database-error", 200]]);
    await ensureSchema(sql);
    await eventually(() => results.some((r) => r.outcome === "created"), 10_000, "the consumer after the schema appeared");
    expect((await sql`select name from consumers`).map((r) => r.name)).toEqual(["cluster1"]);
    expect(controller.pendingRetries().size).toBe(0);
  });
});
