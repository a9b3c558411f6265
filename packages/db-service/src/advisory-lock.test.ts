import { startPostgres, type PostgresServer, type Sql } from "@ocm-conductor/test-harness";
import type { TransactionSql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  advisoryLockKeys,
  fnv1a32,
  LockType,
  maestroLockHash,
  SingletonLockId,
  tryAdvisoryLock,
  withAdvisoryLock,
  withTryAdvisoryLock,
} from "./advisory-lock.js";

/**
 * A second, deliberately naive FNV-1a-32 (BigInt arithmetic, Buffer's UTF-8), then Go's
 * `int32(uint32)` conversion via `BigInt.asIntN`, to cross-check the Math.imul implementation.
 */
function referenceHash(s: string): number {
  let h = 2166136261n;
  for (const b of Buffer.from(s, "utf8")) {
    h = ((h ^ BigInt(b)) * 16777619n) % 2n ** 32n;
  }
  return Number(BigInt.asIntN(32, h));
}

/**
 * Produced by a throw-away Go 1.26.8 program (not committed) that hashes each string exactly as
 * Maestro's `hash()` in pkg/db/advisory_locks.go does:
 *   h := fnv.New32a(); h.Write([]byte(s)); fmt.Println(int32(h.Sum32()), h.Sum32())
 * Columns: input, int32 (the lock key), uint32 (Sum32, what pg_locks shows as an oid).
 */
const GO_VECTORS: ReadonlyArray<readonly [string, number, number]> = [
  ["migrations", 457026696, 457026696],
  ["resources", 1893056498, 1893056498],
  ["resource_status", -1890629248, 2404338048],
  ["events", 316203908, 316203908],
  ["instances", 105446707, 105446707],
  ["55c61e54-a3f6-563d-9fec-b1fe297bdfdb", 797376220, 797376220],
  ["56473765-fd73-4ecb-aa95-72a944bfba10", -1208186427, 3086780869],
  ["maestro-instances-liveness-check", -63087106, 4231880190],
  ["maestro-undelivered-check", -534849769, 3760117527],
  ["maestro-stale-delete-check", -1780146569, 2514820727],
  ["", -2128831035, 2166136261],
  ["a", -468965076, 3826002220],
  ["foobar", -1080231576, 3214735720],
  ["héllo-wörld", -1265350843, 3029616453],
  ["日本語", -2141233945, 2153733351],
  ["🦀", 135463398, 135463398],
];

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

describe("Maestro lock key derivation", () => {
  it("has Maestro's lock type strings", () => {
    expect(LockType).toEqual({
      Migrations: "migrations",
      Resources: "resources",
      ResourceStatus: "resource_status",
      Events: "events",
      Instances: "instances",
    });
    expect(SingletonLockId).toEqual({
      InstancesLivenessCheck: "maestro-instances-liveness-check",
      UndeliveredCheck: "maestro-undelivered-check",
      StaleDeleteCheck: "maestro-stale-delete-check",
    });
  });

  it("matches the published FNV-1a 32 vectors (unsigned)", () => {
    const enc = new TextEncoder();
    expect(fnv1a32(enc.encode(""))).toBe(0x811c9dc5);
    expect(fnv1a32(enc.encode("a"))).toBe(0xe40c292c);
    expect(fnv1a32(enc.encode("foobar"))).toBe(0xbf9cf968);
  });

  it.each(GO_VECTORS)("hash(%j) = %i as Go computes it", (input, int32, uint32) => {
    expect(maestroLockHash(input)).toBe(int32);
    expect(fnv1a32(new TextEncoder().encode(input))).toBe(uint32);
    expect(referenceHash(input)).toBe(int32);
  });

  it("agrees with the naive implementation on many ids, always within int4", () => {
    const ids = [...Array(500).keys()].map((i) => `${crypto.randomUUID()}-${i}-${"é".repeat(i % 7)}`);
    for (const id of ids) {
      const h = maestroLockHash(id);
      expect(h).toBe(referenceHash(id));
      expect(Number.isInteger(h) && h >= INT32_MIN && h <= INT32_MAX).toBe(true);
    }
  });

  it("keys are [hash(id), hash(type)]", () => {
    expect(advisoryLockKeys("56473765-fd73-4ecb-aa95-72a944bfba10", LockType.ResourceStatus)).toEqual([-1208186427, -1890629248]);
    expect(advisoryLockKeys("55c61e54-a3f6-563d-9fec-b1fe297bdfdb", LockType.Resources)).toEqual([797376220, 1893056498]);
    expect(advisoryLockKeys(SingletonLockId.InstancesLivenessCheck, LockType.Instances)).toEqual([-63087106, 105446707]);
    expect(advisoryLockKeys("", LockType.Events)).toEqual([-2128831035, 316203908]);
  });
});

/** A promise with its resolve function exposed. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe("advisory locks on a real PostgreSQL", () => {
  let pg: PostgresServer;
  let sql: Sql;

  beforeAll(async () => {
    pg = await startPostgres();
    sql = pg.sql({ max: 6, onnotice: () => {} });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  /** Tries the lock in a fresh transaction on another connection and rolls back. */
  const probe = (id: string, type: LockType) =>
    withTryAdvisoryLock(sql, id, type, async () => "got").then((r) => r.acquired);

  /** Runs `body` while another transaction holds (id, type) via withAdvisoryLock, then lets it commit. */
  async function whileHeld(id: string, type: LockType, body: (holder: TransactionSql) => Promise<void>): Promise<void> {
    const held = gate();
    const release = gate();
    let holderTx: TransactionSql | undefined;
    const holder = withAdvisoryLock(sql, id, type, async (tx) => {
      holderTx = tx;
      held.open();
      await release.promise;
      return "done";
    });
    await held.promise;
    try {
      await body(holderTx as TransactionSql);
    } finally {
      release.open();
      expect(await holder).toBe("done");
    }
  }

  it("a second transaction cannot take the same (id, type) until the first commits", async () => {
    const id = crypto.randomUUID();
    await whileHeld(id, LockType.Resources, async () => {
      await sql.begin(async (tx) => {
        expect(await tryAdvisoryLock(tx, id, LockType.Resources)).toBe(false);
      });
    });
    await sql.begin(async (tx) => {
      expect(await tryAdvisoryLock(tx, id, LockType.Resources)).toBe(true);
      // re-entrant within the same transaction/session
      expect(await tryAdvisoryLock(tx, id, LockType.Resources)).toBe(true);
    });
    // and it was released by that commit as well
    expect(await probe(id, LockType.Resources)).toBe(true);
  });

  it("different lock types on the same id do not block each other", async () => {
    const id = crypto.randomUUID();
    await whileHeld(id, LockType.Resources, async () => {
      expect(await probe(id, LockType.ResourceStatus)).toBe(true);
      expect(await probe(id, LockType.Events)).toBe(true);
      expect(await probe(crypto.randomUUID(), LockType.Resources)).toBe(true);
      expect(await probe(id, LockType.Resources)).toBe(false);
    });
  });

  it("uses the (int4, int4) key space: pg_locks and Maestro's literal form see the same lock", async () => {
    const id = "56473765-fd73-4ecb-aa95-72a944bfba10";
    await whileHeld(id, LockType.ResourceStatus, async (holder) => {
      const rows = await sql<{ classid: string; objid: string; objsubid: number }[]>`
        select classid::text as classid, objid::text as objid, objsubid
        from pg_locks where locktype = 'advisory' and granted`;
      expect(rows).toContainEqual({ classid: "3086780869", objid: "2404338048", objsubid: 2 });
      expect((await holder`select count(*)::int as n from pg_locks where locktype = 'advisory'`)[0]?.n).toBeGreaterThan(0);
      // What gorm sends for Maestro (simple protocol, integer literals → int4 overload).
      await sql.begin(async (tx) => {
        const [row] = await tx.unsafe<{ ok: boolean }[]>("select pg_try_advisory_xact_lock(-1208186427, -1890629248) as ok");
        expect(row?.ok).toBe(false);
      });
    });
    // And the reverse: a Maestro-style literal lock excludes our helper.
    const held = gate();
    const release = gate();
    const maestro = sql.begin(async (tx) => {
      await tx.unsafe("select pg_advisory_xact_lock(-1208186427, -1890629248)");
      held.open();
      await release.promise;
    });
    await held.promise;
    expect(await probe(id, LockType.ResourceStatus)).toBe(false);
    release.open();
    await maestro;
    expect(await probe(id, LockType.ResourceStatus)).toBe(true);
  });

  it("withAdvisoryLock waits for the holder, then runs", async () => {
    const id = crypto.randomUUID();
    const order: string[] = [];
    let waiter: Promise<string> | undefined;
    await whileHeld(id, LockType.ResourceStatus, async () => {
      waiter = withAdvisoryLock(sql, id, LockType.ResourceStatus, async (tx) => {
        order.push("waiter");
        return (await tx<{ v: number }[]>`select 7 as v`)[0]?.v === 7 ? "ran" : "wrong";
      });
      // the waiter is blocked in pg_advisory_xact_lock
      await expect.poll(async () => (await sql`select 1 from pg_locks where locktype = 'advisory' and not granted`).length).toBe(1);
      order.push("holder commits");
    });
    expect(await waiter).toBe("ran");
    expect(order).toEqual(["holder commits", "waiter"]);
  });

  it("withTryAdvisoryLock does not call fn on a miss; a throwing fn rolls back and releases", async () => {
    const id = crypto.randomUUID();
    await whileHeld(id, LockType.Events, async () => {
      let called = false;
      const r = await withTryAdvisoryLock(sql, id, LockType.Events, async () => {
        called = true;
      });
      expect(r).toEqual({ acquired: false });
      expect(called).toBe(false);
    });
    expect(await withTryAdvisoryLock(sql, id, LockType.Events, async () => 42)).toEqual({ acquired: true, result: 42 });

    await expect(
      withAdvisoryLock(sql, id, LockType.Events, async () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await probe(id, LockType.Events)).toBe(true);
  });
});
