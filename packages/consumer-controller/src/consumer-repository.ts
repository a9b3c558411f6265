import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { assertValidConsumerName } from "./consumer-name.js";
import { ConsumerControllerError, databaseError } from "./errors.js";

/** A row of Maestro's `consumers` table (maestro-db.md §1.2, §7). */
export interface ConsumerRow {
  /** UUIDv4 text. */
  readonly id: string;
  /** The consumer (= cluster) name; unique over all rows, soft-deleted ones included. */
  readonly name: string;
  /** `{"k":"v"}` or SQL NULL (the controller always writes NULL). */
  readonly labels: Readonly<Record<string, string>> | null;
  /** Insert time (the controller writes `now()`, as Maestro writes Go's `time.Now()`). */
  readonly createdAt: Date | null;
  /** Equal to `createdAt` for rows the controller writes. */
  readonly updatedAt: Date | null;
  /** Set if the row is soft-deleted (Maestro never does this in practice). */
  readonly deletedAt: Date | null;
}

/** What {@link ConsumerStore.ensureConsumer} found or did. */
export interface EnsureConsumerResult {
  /** `created`: this call inserted the row; `exists`: a live row was already there (left untouched). */
  readonly outcome: "created" | "exists";
  readonly consumer: ConsumerRow;
}

/** Where the controller keeps consumers; {@link ConsumerRepository} is the PostgreSQL one. */
export interface ConsumerStore {
  /**
   * Makes sure a live consumer named `name` exists, without modifying an existing row.
   *
   * @throws ConsumerControllerError `invalid-name`, `soft-deleted-consumer`, `database-unavailable`
   * or `database-error`.
   */
  ensureConsumer(name: string): Promise<EnsureConsumerResult>;
}

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
 * now, `deleted_at` NULL, `name` = the cluster name, `labels` NULL. It never updates, renames or
 * deletes a consumer (maestro-db.md §8.4). Needs `SELECT, INSERT` on `consumers`.
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
}

function live(row: ConsumerRow): ConsumerRow {
  if (row.deletedAt === null) return row;
  throw new ConsumerControllerError(
    "soft-deleted-consumer",
    `consumer ${JSON.stringify(row.name)} (id ${row.id}) is soft-deleted and still holds the name; ` +
      "the controller does not modify existing consumers, so remove the row (a hard delete) to let it be recreated",
  );
}
