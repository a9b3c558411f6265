/**
 * The conductor's `maestro` source: it shares Maestro's PostgreSQL database (schema, advisory locks,
 * `events` / `status_events` with LISTEN/NOTIFY) and never calls the Maestro server: spec delivery
 * to agents ({@link SpecDelivery}) and status write-back ({@link MaestroWorkBackend}).
 *
 * @packageDocumentation
 */
export { MAESTRO_MIGRATIONS, MAESTRO_SCHEMA_DDL, SchemaError, ensureSchema, type SchemaErrorCode } from "./schema.js";
export { catalogDump } from "./catalog-dump.js";
export {
  LockType,
  SingletonLockId,
  advisoryLockKeys,
  maestroLockHash,
  advisoryXactLock,
  tryAdvisoryLock,
  withAdvisoryLock,
  withTryAdvisoryLock,
  type TryLockResult,
} from "./advisory-lock.js";
export {
  MAESTRO_SOURCE,
  ResourceRowError,
  resourceToSpecEvent,
  statusEventToJson,
  type ResourceRow,
} from "./resource-codec.js";
export { MaestroWorkBackend, type MaestroWorkBackendOptions } from "./maestro-work-backend.js";
export { isNewerSequenceId } from "./sequence-id.js";
export { SpecDelivery, type SpecDeliveryOptions } from "./spec-delivery.js";
