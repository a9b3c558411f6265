/**
 * The conductor's `maestro` source: it shares Maestro's PostgreSQL database (schema, advisory locks,
 * `events` / `status_events` with LISTEN/NOTIFY) and never calls the Maestro server. Work in
 * progress: the schema so far.
 *
 * @packageDocumentation
 */
export { MAESTRO_MIGRATIONS, MAESTRO_SCHEMA_DDL, SchemaError, ensureSchema, type SchemaErrorCode } from "./schema.js";
export { catalogDump } from "./catalog-dump.js";
