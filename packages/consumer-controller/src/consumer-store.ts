/** A Maestro consumer, as a row of the `consumers` table (maestro-db.md §1.2, §7) or its REST representation. */
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
  /**
   * Set if the row is soft-deleted (Maestro never does this: its consumer delete is a hard delete).
   * Always `null` over REST, whose representation has no `deleted_at`.
   */
  readonly deletedAt: Date | null;
}

/** What {@link ConsumerStore.ensureConsumer} found or did. */
export interface EnsureConsumerResult {
  /** `created`: this call inserted the row; `exists`: a live row was already there (left untouched). */
  readonly outcome: "created" | "exists";
  readonly consumer: ConsumerRow;
}

/** What {@link ConsumerStore.deleteConsumer} found or did. */
export type DeleteConsumerResult =
  /** This call deleted the consumer (a hard delete, as Maestro's `ConsumerService.Delete`). */
  | { readonly outcome: "deleted"; readonly consumerId: string }
  /** There was no consumer of that name. */
  | { readonly outcome: "absent" }
  /**
   * The consumer is still referenced by `resources` rows (soft-deleted ones included), so it was
   * kept: Maestro refuses this delete too (FK `fk_resources_consumers`, REST 403). `resources` is
   * their number, or `null` when it could not be read (REST mode).
   */
  | { readonly outcome: "kept"; readonly reason: "has-resources"; readonly consumerId: string; readonly resources: number | null };

/**
 * Where the controller keeps consumers: {@link ConsumerRepository} writes Maestro's database
 * directly, {@link MaestroRestConsumerStore} goes through Maestro's REST API.
 */
export interface ConsumerStore {
  /**
   * Makes sure a live consumer named `name` exists, without modifying an existing row.
   *
   * @throws ConsumerControllerError `invalid-name`, `soft-deleted-consumer`, `database-unavailable`,
   * `database-error`, `maestro-unavailable` or `maestro-error`.
   */
  ensureConsumer(name: string): Promise<EnsureConsumerResult>;
  /**
   * Deletes the consumer named `name` unless a resource references it.
   *
   * @throws ConsumerControllerError `invalid-name`, `database-unavailable`, `database-error`,
   * `maestro-unavailable` or `maestro-error`.
   */
  deleteConsumer(name: string): Promise<DeleteConsumerResult>;
}
