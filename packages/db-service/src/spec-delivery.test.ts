import { randomUUID } from "node:crypto";
import { DataTypes, Extension, type CloudEvent } from "@ocm-conductor/protocol";
import { createDatabase, eventually, startPostgres, type PostgresServer } from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ensureSchema } from "./schema.js";
import { SpecDelivery } from "./spec-delivery.js";

let pg: PostgresServer;
let sql: Sql;
let maestro: Sql; // a second client, writing as Maestro does
let delivery: SpecDelivery | undefined;
let url: string;
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
  url = await createDatabase(pg, "maestro");
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
  it("serves consumers round-robin: a delete backlog on one cluster does not starve another's create (maestro#562)", async () => {
    await maestro`insert into consumers (id, created_at, updated_at, name) values ('c-busy', now(), now(), 'busy') on conflict do nothing`;
    // 2,000 soft-deleted resources of cluster "busy" with their Delete events, 1,000 orphaned Delete
    // events (resource already gone), then one Create for cluster1, all written while nobody listens.
    await maestro`insert into resources (id, created_at, updated_at, deleted_at, source, consumer_name, version, type, payload, status)
      select 'busy-' || i, now(), now(), now(), 'mw-client', 'busy', 1, '', ${maestro.json(payload("busy"))}, 'null'::jsonb from generate_series(1, 2000) i`;
    await maestro`insert into events (id, created_at, updated_at, source, source_id, event_type)
      select gen_random_uuid()::text, now() - interval '1 minute' + i * interval '1 millisecond', now(), 'Resources', 'busy-' || i, 'Delete' from generate_series(1, 2000) i`;
    await maestro`insert into events (id, created_at, updated_at, source, source_id, event_type)
      select gen_random_uuid()::text, now() - interval '1 minute', now(), 'Resources', 'gone-' || i, 'Delete' from generate_series(1, 1000) i`;
    await maestroCreate("r-starved", false);
    delivery = new SpecDelivery({ sql, sink, concurrency: 1, batchSize: 50 });
    await delivery.start();
    await delivery.idle();
    const order = sent.map((e) => String(e.extensions[Extension.resourceId]));
    expect(order.filter((id) => id.startsWith("busy-"))).toHaveLength(2000);
    // A single FIFO would send it last, after 2,000 deletions; round-robin sends it within a few batches.
    expect(order.indexOf("r-starved")).toBeGreaterThanOrEqual(0);
    expect(order.indexOf("r-starved")).toBeLessThan(1000);
    const [left] = await sql`select count(*)::int as n from events where reconciled_date is null and source = 'Resources'`;
    expect(left!.n).toBe(0); // orphaned deletes are reconciled too
    await maestro`delete from resources where consumer_name = 'busy'`;
  });

  it("sends the current row once for several events of one resource handled together", async () => {
    const create = await maestroCreate("r-coalesce", false);
    await maestro`update resources set version = 2, deleted_at = now() where id = 'r-coalesce'`;
    const update = randomUUID();
    const del = randomUUID();
    await maestro`insert into events (id, created_at, updated_at, source, source_id, event_type) values
      (${update}, now(), now(), 'Resources', 'r-coalesce', 'Update'), (${del}, now(), now(), 'Resources', 'r-coalesce', 'Delete')`;
    delivery = new SpecDelivery({ sql, sink, concurrency: 1 });
    await delivery.start();
    await delivery.idle();
    expect(sentFor("r-coalesce")).toHaveLength(1);
    expect(sentFor("r-coalesce")[0]!.type).toBe(`${DataTypes.manifestBundles}.spec.delete_request`);
    expect(sentFor("r-coalesce")[0]!.extensions[Extension.resourceVersion]).toBe(2);
    for (const id of [create, update, del]) expect(await reconciled(id)).toBe(true);
  });
});

describe("several conductor replicas on one database", () => {
  let other: SpecDelivery | undefined;
  const sentB: CloudEvent[] = [];
  const sinkB = { publish: (e: CloudEvent) => (sentB.push(e), 1) };
  let sqlB: Sql;
  beforeAll(async () => {
    sqlB = postgres(url, { max: 4, onnotice: () => {}, connection: { application_name: "replica-b" } });
  });
  afterAll(async () => {
    await sqlB?.end({ timeout: 0 });
  });
  beforeEach(() => {
    sentB.length = 0;
  });
  afterEach(async () => {
    await other?.stop();
    other = undefined;
  });
  const sentByB = (id: string) => sentB.filter((e) => e.extensions[Extension.resourceId] === id);

  it("every replica delivers every event to its own agents, and each event is reconciled once", async () => {
    delivery = new SpecDelivery({ sql, sink });
    other = new SpecDelivery({ sql: sqlB, sink: sinkB });
    await Promise.all([delivery.start(), other.start()]);
    const ids = Array.from({ length: 100 }, (_, i) => `r-both-${i}`);
    const events = [];
    for (const id of ids) events.push(await maestroCreate(id));
    await eventually(() => ids.every((id) => sentFor(id).length === 1 && sentByB(id).length === 1), 10_000, "both replicas to deliver everything");
    for (const e of events) expect(await reconciled(e)).toBe(true);
  });

  it("a replica whose LISTEN dropped still delivers what another replica reconciled meanwhile", async () => {
    delivery = new SpecDelivery({ sql, sink });
    other = new SpecDelivery({ sql: sqlB, sink: sinkB });
    await Promise.all([delivery.start(), other.start()]);
    const killed = await maestro`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'replica-b' and query ilike 'listen%'`;
    expect(killed).toHaveLength(1);
    const ids = Array.from({ length: 100 }, (_, i) => `r-deaf-${i}`);
    for (const id of ids) await maestroCreate(id);
    await eventually(() => ids.every((id) => sentFor(id).length === 1), 10_000, "replica A");
    await eventually(() => ids.every((id) => sentByB(id).length >= 1), 10_000, "replica B after its reconnect");
  });

  it("a catch-up over the retention window re-sends only what this replica has not delivered itself", async () => {
    delivery = new SpecDelivery({ sql, sink });
    await delivery.start();
    const seen = await maestroCreate("r-window-seen");
    await eventually(() => reconciled(seen), 5000, "first replica");
    other = new SpecDelivery({ sql: sqlB, sink: sinkB }); // starts after the event was reconciled
    await other.start();
    await other.idle();
    expect(sentByB("r-window-seen")).toHaveLength(0); // start-up: unreconciled events only; agents resync on connect
    await other.sync({ window: true });
    await other.idle();
    expect(sentByB("r-window-seen")).toHaveLength(1);
    await other.sync({ window: true });
    await other.idle();
    expect(sentByB("r-window-seen")).toHaveLength(1);
  });

  it("the purge keeps reconciled events for the retention window only", async () => {
    const old = await maestroCreate("r-purge-old", false);
    const recent = await maestroCreate("r-purge-recent", false);
    await maestro`update events set reconciled_date = now() - interval '2 hours' where id = ${old}`;
    await maestro`update events set reconciled_date = now() - interval '1 minute' where id = ${recent}`;
    delivery = new SpecDelivery({ sql, sink, retentionMs: 10 * 60_000 });
    await delivery.start();
    await delivery.idle();
    const left = await sql`select id from events where id in ${sql([old, recent])}`;
    expect(left.map((r) => r.id)).toEqual([recent]);
  });
});
