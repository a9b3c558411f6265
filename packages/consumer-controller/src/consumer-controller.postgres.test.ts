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

    // Removing a cluster never deletes (or renames) its consumer (maestro-db.md §8.4).
    a.controller.remove("cluster-0");
    await a.controller.whenIdle();
    expect((await sqlA`select count(*)::int as n from consumers where name = 'cluster-0'`)[0]!.n).toBe(1);
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
