import { ensureSchema } from "@ocm-conductor/db-service";
import { createDatabase, eventually, getFreePort, startPostgres, type PostgresServer } from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConsumerRepository } from "./consumer-repository.js";
import { ConsumerControllerError } from "./errors.js";

// Acceptance on a real PostgreSQL with Maestro's schema (created by db-service's ensureSchema).

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let pg: PostgresServer;
let url: string;
let sql: Sql;
let repo: ConsumerRepository;

beforeAll(async () => {
  pg = await startPostgres();
  url = await createDatabase(pg, "maestro");
  sql = postgres(url, { max: 4, onnotice: () => {} });
  await ensureSchema(sql);
  repo = new ConsumerRepository(sql);
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 5 });
  await pg?.stop();
});

beforeEach(async () => {
  await sql`delete from resources`;
  await sql`delete from consumers`;
});

/** A resource row as Maestro's `ResourceService.Create` writes it; `deleting`: soft-deleted (`MarkAsDeleting`). */
async function insertResource(db: Sql | postgres.TransactionSql, id: string, consumer: string, deleting = false): Promise<void> {
  await db`insert into resources (id, created_at, updated_at, deleted_at, source, consumer_name, version, type, payload, status, name)
    values (${id}, now(), now(), ${deleting ? new Date() : null}, 'mw-client', ${consumer}, 1, '', '{}', 'null', ${id})`;
}

async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ConsumerControllerError) return err.code;
    throw err;
  }
  throw new Error("expected a ConsumerControllerError");
}

describe("ConsumerRepository on Maestro's schema", () => {
  it("writes the row exactly as Maestro's ConsumerDao.Create (id UUIDv4, timestamps now, deleted_at and labels NULL)", async () => {
    const [{ before }] = await sql<[{ before: Date }]>`select now() as before`;
    const result = await repo.ensureConsumer("cluster1");
    expect(result.outcome).toBe("created");
    const rows = await sql`
      select id, created_at, updated_at, deleted_at, name, labels, labels is null as labels_sql_null,
             created_at = updated_at as same_time, created_at >= ${before} and created_at <= now() as now_ish
      from consumers`;
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row.id).toMatch(UUID_V4);
    expect(row).toMatchObject({ name: "cluster1", deleted_at: null, labels: null, labels_sql_null: true, same_time: true, now_ish: true });
    expect(result.consumer).toEqual({ id: row.id, name: "cluster1", labels: null, createdAt: row.created_at, updatedAt: row.updated_at, deletedAt: null });
    // A resource can reference it through fk_resources_consumers, as Maestro's would.
    await sql`insert into resources (id, created_at, updated_at, source, consumer_name, version, type, payload, status, name)
      values ('r1', now(), now(), 'mw-client', 'cluster1', 1, '', '{}', 'null', 'r1')`;
  });

  it("is idempotent and leaves an existing consumer (e.g. made by Maestro, with labels) untouched", async () => {
    await sql`insert into consumers (id, created_at, updated_at, deleted_at, name, labels)
      values ('52f9d341-0000-4000-8000-000000000001', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z', null, 'cluster2', '{"env":"prod"}')`;
    const before = await sql`select * from consumers order by name`;
    for (let i = 0; i < 3; i++) {
      const result = await repo.ensureConsumer("cluster2");
      expect(result.outcome).toBe("exists");
      expect(result.consumer.id).toBe("52f9d341-0000-4000-8000-000000000001");
      expect(result.consumer.labels).toEqual({ env: "prod" });
    }
    expect(await sql`select * from consumers order by name`).toEqual(before);
    const first = await repo.ensureConsumer("cluster3");
    const again = await repo.ensureConsumer("cluster3");
    expect([first.outcome, again.outcome]).toEqual(["created", "exists"]);
    expect(again.consumer).toEqual(first.consumer);
    expect((await sql`select count(*)::int as n from consumers`)[0]!.n).toBe(2);
  });

  it("finds soft-deleted rows by name and refuses to touch them", async () => {
    await sql`insert into consumers (id, created_at, updated_at, deleted_at, name)
      values ('c-old', now(), now(), now(), 'cluster4')`;
    const before = await sql`select * from consumers`;
    expect((await repo.findByName("cluster4"))?.deletedAt).toBeInstanceOf(Date);
    expect(await codeOf(repo.ensureConsumer("cluster4"))).toBe("soft-deleted-consumer");
    expect(await repo.insert("cluster4")).toBeUndefined();
    expect(await sql`select * from consumers`).toEqual(before);
  });

  it("lets exactly one of two racing writers insert", async () => {
    const other = postgres(url, { max: 4, onnotice: () => {} });
    try {
      const repo2 = new ConsumerRepository(other);
      const names = Array.from({ length: 20 }, (_, i) => `race-${i}`);
      const results = await Promise.all(names.flatMap((n) => [repo.ensureConsumer(n), repo2.ensureConsumer(n)]));
      for (const [i, name] of names.entries()) {
        const [a, b] = [results[2 * i]!, results[2 * i + 1]!];
        expect([a.outcome, b.outcome].sort(), name).toEqual(["created", "exists"]);
        expect(a.consumer.id).toBe(b.consumer.id);
      }
      // The insert itself is the arbiter: both insert at once, one gets the row, the other nothing.
      const inserted = await Promise.all([repo.insert("race-x"), repo2.insert("race-x")]);
      expect(inserted.filter((r) => r !== undefined)).toHaveLength(1);
      const counts = await sql`select name, count(*)::int as n from consumers group by name having count(*) > 1`;
      expect(counts).toEqual([]);
      expect((await sql`select count(*)::int as n from consumers`)[0]!.n).toBe(21);
    } finally {
      await other.end({ timeout: 5 });
    }
  });

  it("refuses invalid and hostile names before any SQL, and reads hostile names harmlessly", async () => {
    const hostile = ["Cluster1", "a.b", "a".repeat(64), "x'); drop table consumers; --", "' or '1'='1", "a\u0000b",
      "名前", "a".repeat(5_000_000), "", "$1", "cluster1;delete from consumers"];
    await repo.ensureConsumer("keep-me");
    for (const name of hostile) {
      expect(await codeOf(repo.ensureConsumer(name)), name.slice(0, 30)).toBe("invalid-name");
      expect(await codeOf(repo.insert(name)), name.slice(0, 30)).toBe("invalid-name");
    }
    // Parameterised reads: no injection, no match.
    expect(await repo.findByName("' or '1'='1")).toBeUndefined();
    expect(await repo.findByName("keep-me' --")).toBeUndefined();
    expect((await sql`select name from consumers`).map((r) => r.name)).toEqual(["keep-me"]);
  });

  it("deletes as Maestro's ConsumerService.Delete (a hard delete by id); absent names are reported; a re-join gets a new row", async () => {
    const { consumer } = await repo.ensureConsumer("cluster1");
    await repo.ensureConsumer("cluster2");
    expect(await repo.deleteConsumer("cluster1")).toEqual({ outcome: "deleted", consumerId: consumer.id });
    expect(await repo.deleteConsumer("cluster1")).toEqual({ outcome: "absent" });
    expect((await sql`select name from consumers`).map((r) => r.name)).toEqual(["cluster2"]); // gone, not soft-deleted
    const again = await repo.ensureConsumer("cluster1");
    expect(again.outcome).toBe("created");
    expect(again.consumer.id).not.toBe(consumer.id);
    expect(await codeOf(repo.deleteConsumer("a.b"))).toBe("invalid-name");
  });

  it("keeps a consumer while any resource references it, a soft-deleted (deleting) one included", async () => {
    const { consumer } = await repo.ensureConsumer("cluster1");
    await insertResource(sql, "r1", "cluster1");
    await insertResource(sql, "r2", "cluster1", true);
    expect(await repo.deleteConsumer("cluster1")).toEqual({ outcome: "kept", reason: "has-resources", consumerId: consumer.id, resources: 2 });
    await sql`delete from resources where id = 'r1'`;
    expect(await repo.deleteConsumer("cluster1")).toMatchObject({ outcome: "kept", resources: 1 });
    await sql`delete from resources where id = 'r2'`; // the agent confirmed: hard-deleted
    expect(await repo.deleteConsumer("cluster1")).toEqual({ outcome: "deleted", consumerId: consumer.id });
  });

  it("hard-deletes a soft-deleted consumer row, which frees the name for a re-join", async () => {
    await sql`insert into consumers (id, created_at, updated_at, deleted_at, name) values ('c-old', now(), now(), now(), 'cluster4')`;
    expect(await codeOf(repo.ensureConsumer("cluster4"))).toBe("soft-deleted-consumer");
    expect(await repo.deleteConsumer("cluster4")).toEqual({ outcome: "deleted", consumerId: "c-old" });
    expect((await repo.ensureConsumer("cluster4")).outcome).toBe("created");
  });

  it("cannot race with a resource insert: an insert in flight makes the delete wait, then keep the consumer", async () => {
    const { consumer } = await repo.ensureConsumer("cluster1");
    const other = postgres(url, { max: 2, onnotice: () => {} });
    try {
      let commit: () => void = () => {};
      const gate = new Promise<void>((r) => (commit = r));
      let inserted: () => void = () => {};
      const insertedOnce = new Promise<void>((r) => (inserted = r));
      const writer = other.begin(async (tx) => {
        await insertResource(tx, "r1", "cluster1"); // FK check: FOR KEY SHARE on the consumer row, held until commit
        inserted();
        await gate;
      });
      await insertedOnce;
      const deleting = repo.deleteConsumer("cluster1");
      // The delete's `for update` waits for the writer's row lock.
      await eventually(async () => (await other`select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like '%for update%'`).length > 0,
        5_000, "the delete waiting on the row lock");
      commit();
      await writer;
      expect(await deleting).toEqual({ outcome: "kept", reason: "has-resources", consumerId: consumer.id, resources: 1 });

      // The other order: once the consumer is deleted, Maestro's resource insert fails on the FK.
      await sql`delete from resources`;
      expect((await repo.deleteConsumer("cluster1")).outcome).toBe("deleted");
      await expect(insertResource(other, "r2", "cluster1")).rejects.toMatchObject({ code: "23503" });
    } finally {
      await other.end({ timeout: 5 });
    }
  });

  it("reports an unreachable database as database-unavailable and a missing table as database-error", async () => {
    const down = postgres(`postgres://postgres:postgres@127.0.0.1:${await getFreePort()}/maestro`, { max: 1, connect_timeout: 2, onnotice: () => {} });
    const emptyUrl = await createDatabase(pg, `empty_${Date.now()}`);
    const empty = postgres(emptyUrl, { max: 1, onnotice: () => {} });
    try {
      expect(await codeOf(new ConsumerRepository(down).ensureConsumer("cluster1"))).toBe("database-unavailable");
      expect(await codeOf(new ConsumerRepository(empty).ensureConsumer("cluster1"))).toBe("database-error");
      expect(await codeOf(new ConsumerRepository(down).deleteConsumer("cluster1"))).toBe("database-unavailable");
      expect(await codeOf(new ConsumerRepository(empty).deleteConsumer("cluster1"))).toBe("database-error");
    } finally {
      await down.end({ timeout: 1 });
      await empty.end({ timeout: 1 });
    }
  });
});
