/**
 * PostgreSQL advisory locks shared with a running Maestro (`pkg/db/advisory_locks.go`).
 *
 * Maestro serialises its read–compare–write cycles (spec `version`, `status`, heartbeats) and picks
 * one replica per event with transaction-level advisory locks keyed by `(id, lock type)`. The
 * conductor's `maestro` source writes the same tables next to a live Maestro, so it must take the
 * *same* locks: same function, same overload, same two keys. A lock on any other key (`hashtext`,
 * the single-`bigint` overload, unsigned values, another hash) would be a different lock, and
 * Maestro and the conductor would not exclude each other.
 *
 * What Maestro does, and what this module reproduces:
 * - Key: two `int4` arguments `pg_advisory_xact_lock(hash(id), hash(lockType))`, where
 *   `hash(s)` is 32-bit FNV-1a (Go `hash/fnv` `New32a`) over the UTF-8 bytes of `s`, and the
 *   unsigned `Sum32()` is reinterpreted as a signed `int32` (two's complement), so it may be negative.
 * - Lock: `pg_advisory_xact_lock` (blocking) or `pg_try_advisory_xact_lock` (non-blocking), each
 *   in a transaction on a connection of its own; the lock is released when that transaction
 *   commits. Maestro never uses session-level locks or `pg_advisory_unlock`.
 * - In `pg_locks` such a lock shows `locktype = 'advisory'`, `classid = hash(id)` and
 *   `objid = hash(type)` read as unsigned oids, `objsubid = 2` (the two-key form).
 *
 * @module
 */
import type { Sql, TransactionSql } from "postgres";

/**
 * Maestro's `LockType` constants (`pkg/db/advisory_locks.go`). The string itself is hashed, so the
 * spelling must match Maestro's exactly.
 */
export const LockType = {
  /** Declared by Maestro, unused. */
  Migrations: "migrations",
  /** Spec read–compare–write of a resource (`ResourceService.Update`, `MarkAsDeleting`); key id: resource id. */
  Resources: "resources",
  /** Status read–compare–write of a resource (`ResourceService.UpdateStatus`); key id: resource id. */
  ResourceStatus: "resource_status",
  /** One replica per spec event (try-lock); key id: event id. */
  Events: "events",
  /** Heartbeats (key id: instance id) and the singleton checkers (key ids in {@link SingletonLockId}). */
  Instances: "instances",
} as const;

/** One of Maestro's lock type strings. */
export type LockType = (typeof LockType)[keyof typeof LockType];

/**
 * The fixed ids Maestro try-locks with {@link LockType.Instances} so that only one replica runs a
 * periodic job.
 */
export const SingletonLockId = {
  /** `HealthCheckServer.checkInstances`. */
  InstancesLivenessCheck: "maestro-instances-liveness-check",
  /** `UndeliveredDetector.Run`. */
  UndeliveredCheck: "maestro-undelivered-check",
  /** `StaleDeleteDetector.Run`. */
  StaleDeleteCheck: "maestro-stale-delete-check",
} as const;

const FNV32_OFFSET_BASIS = 0x811c9dc5;
const FNV32_PRIME = 0x01000193;
const utf8 = new TextEncoder();

/**
 * 32-bit FNV-1a of `bytes` as an unsigned integer (what Go's `fnv.New32a().Sum32()` returns):
 * start at the offset basis 2166136261, then for every byte XOR it in and multiply by the prime
 * 16777619 modulo 2^32.
 */
export function fnv1a32(bytes: Uint8Array): number {
  let h = FNV32_OFFSET_BASIS;
  for (const b of bytes) {
    h ^= b;
    h = Math.imul(h, FNV32_PRIME); // low 32 bits of the product, as a signed int32
  }
  return h >>> 0;
}

/**
 * Maestro's `hash(s)`: 32-bit FNV-1a over the UTF-8 bytes of `s`, reinterpreted as a signed
 * `int32` (Go `int32(h.Sum32())`), i.e. values ≥ 2^31 become `value - 2^32`. The result always
 * fits PostgreSQL `integer`.
 *
 * Go hashes a string's bytes as they are. The ids Maestro locks on are UUIDs and fixed ASCII names,
 * so UTF-8 encoding here is the same thing; a JS string with lone surrogates (not valid UTF-8 in
 * Go either) is encoded with U+FFFD replacements.
 */
export function maestroLockHash(s: string): number {
  return fnv1a32(utf8.encode(s)) | 0;
}

/**
 * The two `int4` keys Maestro passes to `pg_advisory_xact_lock(key1, key2)` /
 * `pg_try_advisory_xact_lock(key1, key2)` for `(id, lockType)`: `[hash(id), hash(lockType)]`.
 */
export function advisoryLockKeys(id: string, lockType: LockType): [number, number] {
  return [maestroLockHash(id), maestroLockHash(lockType)];
}

/**
 * Takes Maestro's blocking lock `(id, lockType)` in the open transaction `tx`, waiting until it is
 * granted. It is held until `tx` ends (commit or rollback). Re-entrant within the same session.
 */
export async function advisoryXactLock<T extends Record<string, unknown>>(
  tx: TransactionSql<T>,
  id: string,
  lockType: LockType,
): Promise<void> {
  const [k1, k2] = advisoryLockKeys(id, lockType);
  // Explicit int4 casts: the two-int4 overload, as Maestro's literals resolve to.
  await tx`select pg_advisory_xact_lock(${k1}::int4, ${k2}::int4)`;
}

/**
 * Tries Maestro's lock `(id, lockType)` in the open transaction `tx` without waiting
 * (`pg_try_advisory_xact_lock`, like Maestro's `NewNonBlockingLock`). Returns whether it was
 * acquired; if so it is held until `tx` ends. A session that already holds the lock gets it again
 * (advisory locks are re-entrant per session), so only *other* connections — another Maestro or
 * conductor replica, or another `sql.begin` of this pool — are excluded.
 */
export async function tryAdvisoryLock<T extends Record<string, unknown>>(
  tx: TransactionSql<T>,
  id: string,
  lockType: LockType,
): Promise<boolean> {
  const [k1, k2] = advisoryLockKeys(id, lockType);
  const rows = await tx<{ acquired: boolean }[]>`
    select pg_try_advisory_xact_lock(${k1}::int4, ${k2}::int4) as acquired`;
  return rows[0]?.acquired === true;
}

/**
 * Runs `fn(tx)` while holding Maestro's lock `(id, lockType)`, like Maestro's
 * `NewAdvisoryLock` … `Unlock`: opens a transaction with `sql.begin` (a pooled connection reserved
 * for it), takes `pg_advisory_xact_lock` (blocking), runs `fn`, and commits, which releases the
 * lock. If `fn` throws, the transaction rolls back (also releasing the lock) and the error is
 * rethrown.
 *
 * Doing the row writes through `tx` makes them atomic with the lock, which is stronger than
 * Maestro (it writes on other connections) and compatible with it. Queries `fn` sends through
 * `sql` instead need a second pooled connection: with `max: 1` they would wait forever.
 */
export async function withAdvisoryLock<T extends Record<string, unknown>, R>(
  sql: Sql<T>,
  id: string,
  lockType: LockType,
  fn: (tx: TransactionSql<T>) => Promise<R>,
): Promise<R> {
  let result: R | undefined;
  await sql.begin(async (tx) => {
    await advisoryXactLock(tx, id, lockType);
    result = await fn(tx);
  });
  return result as R;
}

/** Outcome of {@link withTryAdvisoryLock}. */
export type TryLockResult<R> = { readonly acquired: true; readonly result: R } | { readonly acquired: false };

/**
 * Runs `fn(tx)` only if Maestro's lock `(id, lockType)` is free right now, like Maestro's
 * `NewNonBlockingLock` (e.g. one replica per spec event with {@link LockType.Events}): opens a
 * transaction, tries `pg_try_advisory_xact_lock`, and either runs `fn` and commits (releasing the
 * lock) or returns `{ acquired: false }` at once, without calling `fn`. What to do on a miss is the
 * caller's choice; Maestro re-queues the event with back-off rather than dropping it.
 */
export async function withTryAdvisoryLock<T extends Record<string, unknown>, R>(
  sql: Sql<T>,
  id: string,
  lockType: LockType,
  fn: (tx: TransactionSql<T>) => Promise<R>,
): Promise<TryLockResult<R>> {
  let outcome: TryLockResult<R> = { acquired: false };
  await sql.begin(async (tx) => {
    if (!(await tryAdvisoryLock(tx, id, lockType))) return;
    outcome = { acquired: true, result: await fn(tx) };
  });
  return outcome;
}
