import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureSchema } from "@ocm-conductor/db-service";
import { createDatabase, eventually, startPostgres, type PostgresServer } from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { ConsumerController, type SyncResult } from "./consumer-controller.js";
import type { ManagedClusterLike } from "./managed-cluster.js";

// Acceptance: "DB down for 30 s → created after recovery". The PostgreSQL server really goes away
// for OUTAGE_MS (stopped by PID, data kept), then a new postmaster starts on the same data directory
// and port. The issue asks for 30 s, so the test takes that long.

/** How long the database is down. */
const OUTAGE_MS = 30_000;
/** The controller's back-off for this test: 500 ms doubling to 4 s, so recovery is seen within seconds. */
const BACKOFF = { initialBackoffMs: 500, maxBackoffMs: 4_000 };

let parent: string | undefined;
let servers: PostgresServer[] = [];
let sql: Sql | undefined;
let controller: ConsumerController | undefined;

afterAll(async () => {
  await controller?.stop();
  await sql?.end({ timeout: 1 });
  await Promise.all(servers.map((s) => s.stop()));
  if (parent !== undefined) await rm(parent, { recursive: true, force: true });
});

const joined = (name: string): ManagedClusterLike => ({
  metadata: { name },
  status: { conditions: [{ type: "ManagedClusterJoined", status: "True" }] },
});

describe("ConsumerController across a database outage", () => {
  it(`acceptance: clusters that join (or go) while the database is down for ${OUTAGE_MS / 1000} s are reconciled after recovery`, async () => {
    parent = await mkdtemp(join(tmpdir(), "consumer-controller-outage-"));
    await chmod(parent, 0o755); // the postgres user (when run as root) must reach the data dir
    const dataDir = join(parent, "data");
    const first = await startPostgres({ dataDir, persistent: true });
    servers.push(first);
    const url = await createDatabase(first, "maestro");
    // postgres.js delays reconnects by its own back-off (default up to 20 s after many failures),
    // which adds to the controller's; the README recommends capping it, as here.
    sql = postgres(url, { max: 2, connect_timeout: 2, backoff: (attempt) => Math.min(0.1 * 2 ** attempt, 2), onnotice: () => {} });
    await ensureSchema(sql);
    const results: SyncResult[] = [];
    controller = new ConsumerController({ sql, ...BACKOFF, onSync: (r) => results.push(r) });
    controller.upsert(joined("before"));
    controller.upsert(joined("leaving"));
    await controller.whenIdle();
    expect(results.map((r) => r.outcome)).toEqual(["created", "created"]);

    await first.stop(); // keeps the data directory (persistent)
    servers = [];
    const downSince = Date.now();
    controller.upsert(joined("during-1"));
    controller.upsert(joined("during-2"));
    controller.remove("leaving");
    const names = ["during-1", "during-2", "leaving"];
    await eventually(() => names.every((n) => results.filter((r) => r.name === n).length >= 2), 20_000, "two failed attempts each");
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - downSince))));

    const duringOutage = results.slice(2);
    expect(duringOutage.length).toBeGreaterThanOrEqual(6);
    for (const r of duringOutage) {
      expect(r.outcome === "failed" && [r.error.code, r.retryInMs !== undefined]).toEqual(["database-unavailable", true]);
    }
    // Per-cluster back-off, doubling up to the cap: every name kept being retried throughout the outage.
    for (const name of names) {
      const delays = duringOutage.filter((r) => r.name === name).map((r) => (r.outcome === "failed" ? r.retryInMs : undefined));
      expect(delays.slice(0, 5), name).toEqual([500, 1_000, 2_000, 4_000, 4_000]);
      expect(new Set(delays.slice(4)), name).toEqual(new Set([4_000]));
    }

    const second = await startPostgres({ dataDir, port: first.port, persistent: true });
    servers.push(second);
    const upAt = Date.now();
    // Only results after the outage began count ("leaving" was created before it).
    const since = (n: string) => results.slice(2).filter((r) => r.name === n);
    await eventually(() => names.every((n) => since(n).some((r) => r.outcome !== "failed")), 30_000, "every cluster after recovery", 50);
    console.log(`database down ${upAt - downSince} ms; all reconciled ${Date.now() - upAt} ms after it was back`);
    const final = Object.fromEntries(names.map((n) => [n, since(n).at(-1)?.outcome]));
    // "exists"/"absent" are right too: an attempt whose commit raced with a dropped connection
    // reports a failure although its write landed, and the retry then finds the row (or its absence).
    expect(final).toEqual({
      "during-1": expect.stringMatching(/^(created|exists)$/),
      "during-2": expect.stringMatching(/^(created|exists)$/),
      leaving: expect.stringMatching(/^(deleted|absent)$/),
    });
    expect((await sql`select name from consumers order by name`).map((r) => r.name)).toEqual(["before", "during-1", "during-2"]);
    expect(controller.pendingRetries().size).toBe(0);
  }, OUTAGE_MS + 90_000);
});
