import { randomUUID } from "node:crypto";
import { DataTypes, Extension, type CloudEvent } from "@ocm-conductor/protocol";
import { createDatabase, eventually, startPostgres, type PostgresServer } from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { LockType, advisoryLockKeys } from "./advisory-lock.js";
import { ensureSchema } from "./schema.js";
import { SpecDelivery } from "./spec-delivery.js";

let pg: PostgresServer;
let sql: Sql;
let maestro: Sql; // a second client, writing as Maestro does
let delivery: SpecDelivery | undefined;
const sent: CloudEvent[] = [];
const sink = { publish: (e: CloudEvent) => (sent.push(e), 1) };

const payload = (id: string) => ({
  specversion: "1.0", id: `e-${id}`, source: "mw-client", type: `${DataTypes.manifestBundles}.spec.create_request`,
  datacontenttype: "application/json", resourceid: id, resourceversion: 0, clustername: "cluster1",
  metadata: { name: `work-${id}`, namespace: "cluster1", uid: id },
  data: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "default" } }] },
});

/** Maestro's create: resource row, event row, then NOTIFY, as three autocommits (maestro-db.md §3.1). */
async function maestroCreate(id: string, notify = true, eventSource = "Resources"): Promise<string> {
  await maestro`insert into resources (id, created_at, updated_at, source, consumer_name, version, type, payload, status)
    values (${id}, now(), now(), 'mw-client', 'cluster1', 1, '', ${maestro.json(payload(id))}, 'null'::jsonb)`;
  const eventId = randomUUID();
  await maestro`insert into events (id, created_at, updated_at, source, source_id, event_type) values (${eventId}, now(), now(), ${eventSource}, ${id}, 'Create')`;
  if (notify) await maestro`select pg_notify('events', ${eventId})`;
  return eventId;
}

const reconciled = async (eventId: string) => ((await sql`select reconciled_date from events where id = ${eventId}`)[0]?.reconciled_date ?? null) !== null;
const sentFor = (id: string) => sent.filter((e) => e.extensions[Extension.resourceId] === id);

beforeAll(async () => {
  pg = await startPostgres();
  const url = await createDatabase(pg, "maestro");
  sql = postgres(url, { max: 8, onnotice: () => {} });
  maestro = postgres(url, { max: 2, onnotice: () => {} });
  await ensureSchema(sql);
  await maestro`insert into consumers (id, created_at, updated_at, name) values ('c-1', now(), now(), 'cluster1')`;
}, 120_000);

afterAll(async () => {
  await Promise.all([sql?.end({ timeout: 0 }), maestro?.end({ timeout: 0 })]);
  await pg?.stop();
});

beforeEach(() => {
  sent.length = 0;
});

afterEach(async () => {
  await delivery?.stop();
  delivery = undefined;
});

describe("spec delivery from LISTEN events (maestro-db.md §4.2, §8.3)", () => {
  it("delivers a created resource as source maestro with the row version, and reconciles the event", async () => {
    delivery = new SpecDelivery({ sql, sink });
    await delivery.start();
    const eventId = await maestroCreate("r-create");
    await eventually(() => sentFor("r-create").length === 1, 5000, "delivery");
    const [event] = sentFor("r-create");
    expect(event!.type).toBe(`${DataTypes.manifestBundles}.spec.create_request`);
    expect(event!.source).toBe("maestro");
    expect(event!.extensions[Extension.resourceVersion]).toBe(1);
    await eventually(() => reconciled(eventId), 5000, "reconciled_date");
  });

  it("catches up on events written while it was not listening, at start-up", async () => {
    const eventId = await maestroCreate("r-missed", false);
    delivery = new SpecDelivery({ sql, sink });
    await delivery.start();
    await eventually(() => sentFor("r-missed").length === 1, 5000, "catch-up delivery");
    await eventually(() => reconciled(eventId), 5000, "reconciled_date");
  });

  it("catches up after its LISTEN connection is killed, so a missed NOTIFY costs seconds", async () => {
    delivery = new SpecDelivery({ sql, sink });
    await delivery.start();
    const killed = await maestro`select pg_terminate_backend(pid) as ok from pg_stat_activity where query ilike 'listen%' and pid <> pg_backend_pid()`;
    expect(killed.length).toBeGreaterThanOrEqual(1);
    const ids = Array.from({ length: 20 }, (_, i) => `r-gap-${i}`);
    for (const id of ids) await maestroCreate(id); // some NOTIFYs land while nobody listens
    await eventually(() => ids.every((id) => sentFor(id).length >= 1), 10_000, "every resource after the reconnect");
  });

  it("waits for a busy event lock and delivers once it is free (the reference drops the event)", async () => {
    delivery = new SpecDelivery({ sql, sink, retryBaseMs: 20 });
    await delivery.start();
    const eventId = randomUUID();
    // Hold the event's lock as another replica would, then announce the event.
    const [k1, k2] = advisoryLockKeys(eventId, LockType.Events);
    let release!: () => void;
    const holding = maestro.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${k1}::int4, ${k2}::int4)`;
      await new Promise<void>((r) => (release = r));
    });
    await eventually(() => release !== undefined, 5000, "the other replica's lock");
    await maestro`insert into resources (id, created_at, updated_at, source, consumer_name, version, type, payload, status)
      values ('r-locked', now(), now(), 'mw-client', 'cluster1', 1, '', ${maestro.json(payload("r-locked"))}, 'null'::jsonb)`;
    await maestro`insert into events (id, created_at, updated_at, source, source_id, event_type) values (${eventId}, now(), now(), 'Resources', 'r-locked', 'Create')`;
    await maestro`select pg_notify('events', ${eventId})`;
    await new Promise((r) => setTimeout(r, 300));
    expect(sentFor("r-locked")).toHaveLength(0);
    release();
    await holding;
    await eventually(() => sentFor("r-locked").length === 1, 5000, "delivery after the lock is released");
  });

  it("sends a deletion for a soft-deleted resource, and leaves events of unknown source unreconciled", async () => {
    delivery = new SpecDelivery({ sql, sink });
    await delivery.start();
    await maestroCreate("r-del");
    await eventually(() => sentFor("r-del").length === 1, 5000, "create");
    await maestro`update resources set deleted_at = now() where id = 'r-del'`;
    const del = randomUUID();
    await maestro`insert into events (id, created_at, updated_at, source, source_id, event_type) values (${del}, now(), now(), 'Resources', 'r-del', 'Delete')`;
    await maestro`select pg_notify('events', ${del})`;
    await eventually(() => sentFor("r-del").length === 2, 5000, "delete");
    expect(sentFor("r-del")[1]!.extensions[Extension.deletionTimestamp]).toBeDefined();
    const odd = await maestroCreate("r-odd", true, "Consumers");
    await delivery.idle();
    expect(sentFor("r-odd")).toHaveLength(0);
    expect(await reconciled(odd)).toBe(false);
  });
});
