import type { Sql } from "postgres";

/**
 * Maestro's migration IDs, in order, as gormigrate records them in `migrations.id`
 * (maestro-db.md §1.1). A database holding exactly these is the schema this package speaks.
 */
export const MAESTRO_MIGRATIONS = [
  "201911212019", "202309020925", "202311151850", "202311151856", "202311151859",
  "202401151014", "202406241426", "202406241506", "202412171429", "202412181141",
] as const;

/**
 * The final schema of those migrations (maestro-db.md §1.2): table, column and index names, types,
 * column order and foreign keys exactly as gorm creates them, so Maestro started later on this
 * database sees nothing to migrate. Do not "fix" the types (§1.3).
 */
export const MAESTRO_SCHEMA_DDL = `
-- gormigrate bookkeeping (gormigrate.DefaultOptions)
CREATE TABLE migrations (
    id varchar(255) NOT NULL,
    CONSTRAINT migrations_pkey PRIMARY KEY (id)
);

-- 202309020925 add_events
CREATE TABLE events (
    id              text NOT NULL,
    created_at      timestamptz,
    updated_at      timestamptz,
    deleted_at      timestamptz,
    source          text,
    source_id       text,
    event_type      text,
    reconciled_date timestamptz,
    CONSTRAINT events_pkey PRIMARY KEY (id)
);
CREATE INDEX idx_events_source          ON events USING btree (source);
CREATE INDEX idx_events_deleted_at      ON events USING btree (deleted_at);
CREATE INDEX idx_events_reconciled_date ON events USING btree (reconciled_date);
CREATE INDEX idx_events_source_id       ON events USING btree (source_id);

-- 202311151850 add_resources   (column order as gorm creates it: "name" first)
CREATE TABLE resources (
    name          text,
    id            text NOT NULL,
    created_at    timestamptz,
    updated_at    timestamptz,
    deleted_at    timestamptz,
    source        text,
    consumer_name text,
    version       bigint NOT NULL,
    type          text,
    payload       jsonb,
    status        jsonb,
    CONSTRAINT resources_pkey PRIMARY KEY (id)
);
CREATE INDEX        idx_resources_deleted_at    ON resources USING btree (deleted_at);
CREATE UNIQUE INDEX idx_resources_name          ON resources USING btree (name);
CREATE INDEX        idx_resources_type          ON resources USING btree (type);
CREATE INDEX        idx_resources_consumer_name ON resources USING btree (consumer_name);
CREATE INDEX        idx_resources_source        ON resources USING btree (source);

-- 202311151856 add_consumers  (+ FK resources.consumer_name -> consumers.name)
CREATE TABLE consumers (
    id         text NOT NULL,
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz,
    name       text NOT NULL,
    labels     jsonb,
    CONSTRAINT consumers_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX idx_consumers_name       ON consumers USING btree (name);
CREATE INDEX        idx_consumers_deleted_at ON consumers USING btree (deleted_at);
ALTER TABLE resources ADD CONSTRAINT fk_resources_consumers
    FOREIGN KEY (consumer_name) REFERENCES consumers(name) ON DELETE RESTRICT ON UPDATE RESTRICT;

-- 201911212019 add_dinosaurs + 202311151859 drop_dinosaurs: net effect none

-- 202401151014 add_server_instances + 202412171429 last_heartbeat/ready
CREATE TABLE server_instances (
    id             text NOT NULL,
    created_at     timestamptz,
    updated_at     timestamptz,
    deleted_at     timestamptz,
    last_heartbeat timestamptz,
    ready          boolean DEFAULT false,
    CONSTRAINT server_instances_pkey PRIMARY KEY (id)
);
CREATE INDEX idx_server_instances_deleted_at ON server_instances USING btree (deleted_at);

-- 202406241426 add_status_events
CREATE TABLE status_events (
    id                text NOT NULL,
    created_at        timestamptz,
    updated_at        timestamptz,
    deleted_at        timestamptz,
    resource_id       text,
    resource_source   text,
    resource_type     text,
    payload           jsonb,
    status            jsonb,
    status_event_type text,
    reconciled_date   timestamptz,
    CONSTRAINT status_events_pkey PRIMARY KEY (id)
);
CREATE INDEX idx_status_events_reconciled_date ON status_events USING btree (reconciled_date);
CREATE INDEX idx_status_events_resource_id     ON status_events USING btree (resource_id);
CREATE INDEX idx_status_events_deleted_at      ON status_events USING btree (deleted_at);

-- 202406241506 add_event_instances + 202412181141 alter_event_instances  (no primary key)
CREATE TABLE event_instances (
    event_id      text,
    instance_id   text,
    spec_event_id text
);
CREATE INDEX idx_event_instances_instance_id   ON event_instances USING btree (instance_id);
CREATE INDEX idx_event_instances_event_id      ON event_instances USING btree (event_id);
CREATE INDEX idx_status_event_instance         ON event_instances USING btree (event_id, instance_id);
CREATE INDEX idx_event_instances_spec_event_id ON event_instances USING btree (spec_event_id);
ALTER TABLE event_instances ADD CONSTRAINT fk_event_instances_server_instances
    FOREIGN KEY (instance_id) REFERENCES server_instances(id) ON DELETE CASCADE;
ALTER TABLE event_instances ADD CONSTRAINT fk_event_instances_status_events
    FOREIGN KEY (event_id) REFERENCES status_events(id) ON DELETE CASCADE;
ALTER TABLE event_instances ADD CONSTRAINT fk_event_instances_events
    FOREIGN KEY (spec_event_id) REFERENCES events(id) ON DELETE CASCADE;
`;

/** Why {@link ensureSchema} refused a database. */
export type SchemaErrorCode = "older-schema" | "unknown-migrations" | "unmanaged-tables";

/** A database the conductor must not touch: its schema is not Maestro's final one, and was not created empty. */
export class SchemaError extends Error {
  override readonly name = "SchemaError";

  constructor(readonly code: SchemaErrorCode, message: string) {
    super(message);
  }
}

const MAESTRO_TABLES = ["events", "resources", "consumers", "server_instances", "status_events", "event_instances"];

/**
 * Makes sure the database has Maestro's schema, creating it only in a database that has none of
 * Maestro's tables (the embedded default and tests). A database Maestro already migrated is never
 * altered: it is accepted when its migration list is exactly {@link MAESTRO_MIGRATIONS}, and refused
 * with a {@link SchemaError} when it is older (run `maestro migration`), has migrations this
 * conductor does not know (a newer Maestro), or has Maestro tables without gormigrate's bookkeeping.
 * Concurrent callers are serialised by a transaction-scoped advisory lock.
 *
 * @returns `created` when the schema was created, `current` when it was already there.
 */
export async function ensureSchema(sql: Sql): Promise<"created" | "current"> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext('ocm-conductor/db-service/schema'))`;
    const [{ exists }] = (await tx`select to_regclass('migrations') is not null as exists`) as unknown as [{ exists: boolean }];
    if (!exists) {
      const present = (await tx`
        select table_name from information_schema.tables
        where table_schema = current_schema() and table_name = any(${MAESTRO_TABLES})
        order by table_name`) as unknown as Array<{ table_name: string }>;
      if (present.length > 0) {
        throw new SchemaError("unmanaged-tables",
          `the database has Maestro tables (${present.map((t) => t.table_name).join(", ")}) but no migrations table; refusing to touch it`);
      }
      await tx.unsafe(MAESTRO_SCHEMA_DDL);
      for (const id of MAESTRO_MIGRATIONS) await tx`insert into migrations (id) values (${id})`;
      return "created" as const;
    }
    const rows = (await tx`select id from migrations order by id`) as unknown as Array<{ id: string }>;
    const applied = new Set(rows.map((r) => r.id));
    const known = new Set<string>(MAESTRO_MIGRATIONS);
    const unknown = [...applied].filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new SchemaError("unknown-migrations",
        `the database has migrations this conductor does not know (${unknown.join(", ")}): it was migrated by a newer Maestro`);
    }
    const missing = MAESTRO_MIGRATIONS.filter((id) => !applied.has(id));
    if (missing.length > 0) {
      throw new SchemaError("older-schema",
        `the database lacks Maestro migrations ${missing.join(", ")}: run \`maestro migration\` against it first`);
    }
    return "current" as const;
  });
}
