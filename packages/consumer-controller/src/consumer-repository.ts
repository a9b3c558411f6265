import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { assertValidConsumerName } from "./consumer-name.js";
import type { ConsumerRow, ConsumerStore, DeleteConsumerResult, EnsureConsumerResult } from "./consumer-store.js";
import { ConsumerControllerError, databaseError } from "./errors.js";

/** How long the delete transaction waits for a row lock (e.g. a resource insert in flight) before it gives up and retries later. */
const DELETE_LOCK_TIMEOUT = "5s";
/** SQLSTATE foreign_key_violation: `fk_resources_consumers` refused the delete. */
const FOREIGN_KEY_VIOLATION = "23503";

interface RawRow {
  id: string;
  name: string;
  labels: Record<string, string> | null;
  created_at: Date | null;
  updated_at: Date | null;
  deleted_at: Date | null;
}

const toRow = (r: RawRow): ConsumerRow => ({
  id: r.id, name: r.name, labels: r.labels, createdAt: r.created_at, updatedAt: r.updated_at, deletedAt: r.deleted_at,
});

/**
 * Maestro's `consumers` table over a postgres.js client, writing rows exactly as Maestro's
 * `ConsumerDao.Create` does (maestro-db.md §1.4): `id` a new UUIDv4, `created_at` = `updated_at` =
 * now, `deleted_at` NULL, `name` = the cluster name, `labels` NULL. It deletes a consumer only as
 * Maestro's `ConsumerService.Delete` does (a hard delete) and only when no resource references it
 * (maestro-db.md §7, §8.4). It never updates or renames one. Needs `SELECT, INSERT, DELETE` on
 * `consumers` and `SELECT` on `resources`.
 */
export class ConsumerRepository implements ConsumerStore {
  private readonly sql: Sql;

  /** @param sql - a postgres.js client connected to Maestro's database (schema already in place). */
  constructor(sql: Sql) {
    this.sql = sql;
  }

  /**
   * The consumer named `name`, soft-deleted or not (the unique index `idx_consumers_name` covers
   * every row, so a soft-deleted row still holds the name), or `undefined`.
   */
  async findByName(name: string): Promise<ConsumerRow | undefined> {
    try {
      const rows = await this.sql<RawRow[]>`
        select id, created_at, updated_at, deleted_at, name, labels from consumers where name = ${name}`;
      return rows[0] === undefined ? undefined : toRow(rows[0]);
    } catch (err) {
      throw databaseError(err, `reading consumer ${JSON.stringify(name)}`);
    }
  }

  /**
   * Inserts a consumer as Maestro does, unless a row with that name exists (`on conflict (name) do
   * nothing`, so concurrent replicas cannot both insert). Returns the new row, or `undefined` if the
   * name was taken.
   */
  async insert(name: string): Promise<ConsumerRow | undefined> {
    assertValidConsumerName(name);
    try {
      const rows = await this.sql<RawRow[]>`
        insert into consumers (id, created_at, updated_at, deleted_at, name, labels)
        values (${randomUUID()}, now(), now(), null, ${name}, null)
        on conflict (name) do nothing
        returning id, created_at, updated_at, deleted_at, name, labels`;
      return rows[0] === undefined ? undefined : toRow(rows[0]);
    } catch (err) {
      throw databaseError(err, `creating consumer ${JSON.stringify(name)}`);
    }
  }

  /**
   * Maestro's conductor flow (`FindByNames`, then `Create`), race-safe: find the row; if absent,
   * insert; if another writer inserted first, read its row. An existing live row is left as it is.
   */
  async ensureConsumer(name: string): Promise<EnsureConsumerResult> {
    assertValidConsumerName(name);
    // A row taken by another writer can only vanish again through a hard delete; three rounds are plenty.
    for (let attempt = 0; attempt < 3; attempt++) {
      const found = await this.findByName(name);
      if (found !== undefined) return { outcome: "exists", consumer: live(found) };
      const inserted = await this.insert(name);
      if (inserted !== undefined) return { outcome: "created", consumer: inserted };
    }
    throw new ConsumerControllerError("database-error", `consumer ${JSON.stringify(name)} was inserted and deleted by others repeatedly; retrying later`);
  }

  /**
   * Deletes the consumer named `name` as Maestro's `ConsumerService.Delete` does: a hard
   * `delete from consumers where id = …` (Maestro passes `unscoped=true`, so a soft-deleted row is
   * removed too, which frees the name for a re-join). Refused, like Maestro's 403, while any
   * `resources` row references the name, soft-deleted (deleting) ones included.
   *
   * One transaction that cannot race with a resource insert:
   * 1. `select … for update` locks the consumer row. A resource insert's FK check takes `FOR KEY
   *    SHARE` on the same row, which conflicts: an insert in flight makes us wait until it commits
   *    (or rolls back), and an insert that starts after us waits until we commit — then finds no
   *    consumer and fails with Maestro's FK error, as it would after Maestro's own delete.
   * 2. `count(*)` of `resources` by `consumer_name`. Under READ COMMITTED each statement sees every
   *    transaction committed before it started, so after step 1 it sees every resource that can
   *    reference the row. A count > 0 rolls back and reports `kept`.
   * 3. `delete … where id = …`. The FK (`ON DELETE RESTRICT`) still has the last word: a 23503
   *    here is reported as `kept` as well.
   *
   * `lock_timeout` bounds the wait of step 1, so a long transaction elsewhere cannot pin this
   * cluster's reconcile (it fails with `database-error` and is retried).
   */
  async deleteConsumer(name: string): Promise<DeleteConsumerResult> {
    assertValidConsumerName(name);
    try {
      return await this.sql.begin(async (tx) => {
        await tx`select set_config('lock_timeout', ${DELETE_LOCK_TIMEOUT}, true)`;
        const [row] = await tx<Array<{ id: string }>>`select id from consumers where name = ${name} for update`;
        if (row === undefined) return { outcome: "absent" } as const;
        const [{ n }] = await tx<[{ n: number }]>`select count(*)::int as n from resources where consumer_name = ${name}`;
        if (n > 0) return { outcome: "kept", reason: "has-resources", consumerId: row.id, resources: n } as const;
        await tx`delete from consumers where id = ${row.id}`;
        return { outcome: "deleted", consumerId: row.id } as const;
      });
    } catch (err) {
      if ((err as { code?: unknown } | null)?.code === FOREIGN_KEY_VIOLATION) {
        const found = await this.findByName(name);
        if (found === undefined) return { outcome: "absent" };
        return { outcome: "kept", reason: "has-resources", consumerId: found.id, resources: await this.countResources(name) };
      }
      throw databaseError(err, `deleting consumer ${JSON.stringify(name)}`);
    }
  }

  /** Number of `resources` rows (soft-deleted ones included) that reference consumer `name`. */
  async countResources(name: string): Promise<number> {
    try {
      const [{ n }] = await this.sql<[{ n: number }]>`select count(*)::int as n from resources where consumer_name = ${name}`;
      return n;
    } catch (err) {
      throw databaseError(err, `counting resources of consumer ${JSON.stringify(name)}`);
    }
  }
}

function live(row: ConsumerRow): ConsumerRow {
  if (row.deletedAt === null) return row;
  throw new ConsumerControllerError(
    "soft-deleted-consumer",
    `consumer ${JSON.stringify(row.name)} (id ${row.id}) is soft-deleted and still holds the name; ` +
      "the controller does not modify existing consumers, so remove the row (a hard delete) to let it be recreated",
  );
}
