import { DataTypes, Extension, newEvent, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError } from "@ocm-conductor/router";
import { createDatabase, eventually, startPostgres, type PostgresServer } from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MaestroWorkBackend } from "./maestro-work-backend.js";
import { ensureSchema } from "./schema.js";
import { isNewerSequenceId } from "./sequence-id.js";

let pg: PostgresServer;
let sql: Sql;
let backend: MaestroWorkBackend;
const notified: string[] = [];
const signal = new AbortController().signal;

const metadata = { uid: "r1", name: "work-1", namespace: "cluster1", labels: { a: "b" } };
const payload = {
  specversion: "1.0", id: "e1", source: "mw-client", type: "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request",
  datacontenttype: "application/json", resourceid: "r1", resourceversion: 0, clustername: "cluster1", metadata,
  data: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "default" } }] },
};

/** A snowflake id of node `node` (agents use node 1), increasing with `step`. */
const SNOWFLAKE_MS = BigInt(Date.now() - 1288834974657);
const snowflake = (step: number, node = 1) => String((SNOWFLAKE_MS << 22n) | (BigInt(node) << 12n) | BigInt(step));

beforeAll(async () => {
  pg = await startPostgres();
  sql = postgres(await createDatabase(pg, "maestro"), { max: 5, onnotice: () => {} });
  await ensureSchema(sql);
  await sql.listen("status_events", (id) => notified.push(id));
  backend = new MaestroWorkBackend({ sql });
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 0 });
  await pg?.stop();
});

beforeEach(async () => {
  notified.length = 0;
  await sql`delete from status_events`;
  await sql`delete from resources`;
  await sql`delete from consumers`;
  // Rows as Maestro writes them (maestro-db.md §3.1): status is jsonb null, version starts at 1.
  await sql`insert into consumers (id, created_at, updated_at, name) values ('c-1', now(), now(), 'cluster1'), ('c-2', now(), now(), 'cluster2')`;
  await sql`insert into resources (id, created_at, updated_at, source, consumer_name, version, type, payload, status)
    values ('r1', now(), now(), 'mw-client', 'cluster1', 1, '', ${sql.json(payload)}, 'null'::jsonb)`;
});

function status(extensions: Record<string, string | number | undefined>, conditions = [{ type: "Applied", status: "True" }]): CloudEvent {
  return newEvent({
    type: `${DataTypes.manifestBundles}.status.update_request`, source: "cluster1-work-agent", clusterName: "cluster1", originalSource: "maestro",
    extensions: { resourceid: "r1", resourceversion: 1, sequenceid: snowflake(1), metadata: '{"name":"agent-side"}', ...extensions },
    data: { conditions, resourceStatus: [] },
  });
}

const resource = async () => (await sql`select version, status, jsonb_typeof(status) as kind from resources where id = 'r1'`)[0];
const statusEvents = () => sql`select id, status_event_type, resource_id, resource_source, jsonb_typeof(payload) as payload_kind, jsonb_typeof(status) as status_kind, payload, status from status_events order by created_at`;

async function refusal(call: Promise<unknown>): Promise<BackendError> {
  const err = await call.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BackendError);
  return err as BackendError;
}

describe("resync list", () => {
  it("lists the consumer's resources, soft-deleted ones as deletions, with the row version", async () => {
    await sql`insert into resources (id, created_at, updated_at, deleted_at, source, consumer_name, version, type, payload, status)
      values ('r2', now(), now(), now(), 'mw-client', 'cluster1', 4, '', ${sql.json({ ...payload, id: "e2" })}, 'null'::jsonb)`;
    const listed = await backend.list({ clusterName: "cluster1", dataType: DataTypes.manifestBundles });
    const byId = Object.fromEntries(listed.map((e) => [e.extensions[Extension.resourceId], e]));
    expect(Object.keys(byId).sort()).toEqual(["r1", "r2"]);
    expect(byId.r1!.extensions[Extension.resourceVersion]).toBe(1);
    expect(byId.r2!.extensions[Extension.deletionTimestamp]).toBeDefined();
    expect(await backend.list({ clusterName: "cluster2", dataType: DataTypes.manifestBundles })).toEqual([]);
  });
});

describe("status path (maestro-db.md §3.3, §5.1)", () => {
  it("writes the status with the spec's metadata, then a StatusUpdate event and NOTIFY", async () => {
    const seq = snowflake(5);
    await backend.handle(status({ sequenceid: seq }), { signal });
    const row = await resource();
    expect(row?.status).toMatchObject({ resourceversion: 1, sequenceid: seq, metadata, data: { conditions: [{ type: "Applied" }] } });
    expect(Number(row?.version)).toBe(1); // a status never bumps the version
    const [event] = await statusEvents();
    expect(event).toMatchObject({ status_event_type: "StatusUpdate", resource_id: "r1", resource_source: "", payload_kind: "null", status_kind: "null" });
    await eventually(() => notified.includes(event!.id as string), 5000, "the status_events NOTIFY");
  });

  it("accepts resourceversion as a numeric string", async () => {
    await backend.handle(status({ resourceversion: "1" }), { signal });
    expect((await resource())?.kind).toBe("object");
  });

  it.each([
    ["a stale version", { resourceversion: 2 }],
    ["a version from before an update", { resourceversion: 0 }],
  ])("drops %s without error and writes nothing", async (_what, ext) => {
    await backend.handle(status(ext), { signal });
    expect((await resource())?.kind).toBe("null");
    expect(await statusEvents()).toHaveLength(0);
  });

  it("drops duplicate and older sequence ids", async () => {
    await backend.handle(status({ sequenceid: snowflake(9) }, [{ type: "Applied", status: "True" }]), { signal });
    await backend.handle(status({ sequenceid: snowflake(9) }, [{ type: "Available", status: "True" }]), { signal });
    await backend.handle(status({ sequenceid: snowflake(3) }, [{ type: "Available", status: "True" }]), { signal });
    expect(((await resource())?.status as { data: { conditions: Array<{ type: string }> } }).data.conditions.map((c) => c.type)).toEqual(["Applied"]);
    expect(await statusEvents()).toHaveLength(1);
  });

  it("refuses sequence ids from another snowflake node, as Maestro errors on them", async () => {
    await backend.handle(status({ sequenceid: snowflake(1, 1) }), { signal });
    const err = await refusal(backend.handle(status({ sequenceid: snowflake(2, 7) }, [{ type: "Available", status: "True" }]), { signal }));
    expect(err.message).toMatch(/different snowflake nodes/);
  });

  it("on Deleted=True writes a StatusDelete event with payload and status, NOTIFYs, then hard-deletes", async () => {
    await backend.handle(status({}, [{ type: "Deleted", status: "True" }]), { signal });
    expect(await sql`select id from resources where id = 'r1'`).toHaveLength(0);
    const [event] = await statusEvents();
    expect(event).toMatchObject({ status_event_type: "StatusDelete", resource_id: "r1", resource_source: "mw-client", payload_kind: "object", status_kind: "object" });
    expect(event!.payload).toMatchObject({ id: "e1", metadata });
    expect(event!.status).toMatchObject({ metadata, data: { conditions: [{ type: "Deleted" }] } });
    await eventually(() => notified.includes(event!.id as string), 5000, "the status_events NOTIFY");
  });
});

describe("bad statuses change nothing", () => {
  it("drops a status for an unknown resource", async () => {
    await backend.handle(status({ resourceid: "nope" }), { signal });
    expect(await statusEvents()).toHaveLength(0);
  });

  it.each([
    ["another cluster's resource", (e: CloudEvent) => { e.extensions[Extension.clusterName] = "cluster2"; }, /does not belong to cluster cluster2/],
    ["non-JSON data", (e: CloudEvent) => { e.data = new TextEncoder().encode("{nope"); }, /failed to unmarshal event data/],
    ["conditions that are not a list", (e: CloudEvent) => { e.data = new TextEncoder().encode('{"conditions":7}'); }, /conditions is not a list/],
    ["no version", (e: CloudEvent) => { delete e.extensions[Extension.resourceVersion]; }, /failed to get resource version/],
    ["no sequence id", (e: CloudEvent) => { delete e.extensions[Extension.sequenceId]; }, /sequence id/],
    ["a spec action", (e: CloudEvent) => { e.type = `${DataTypes.manifestBundles}.spec.update_request`; }, /unsupported action spec.update_request/],
  ])("refuses %s with BadRequest", async (_what, mutate, message) => {
    const event = status({});
    mutate(event);
    const err = await refusal(backend.handle(event, { signal }));
    expect(err.status.reason).toBe("BadRequest");
    expect(err.message).toMatch(message);
    expect((await resource())?.kind).toBe("null");
    expect(await statusEvents()).toHaveLength(0);
  });
});

describe("snowflake comparison", () => {
  it("compares as 64-bit integers beyond 2^53", () => {
    expect(isNewerSequenceId("1999832099518943233", "1999832099518943232")).toBe(true);
    expect(isNewerSequenceId("1999832099518943232", "1999832099518943232")).toBe(false);
    expect(isNewerSequenceId("1999832099518943232", undefined)).toBe(true);
    expect(() => isNewerSequenceId("12a", undefined)).toThrow(/invalid sequence id/);
  });
});

describe("spec delivery through the backend's sink", () => {
  it("start() refuses to run unattached, then delivers to the sink it was attached to", async () => {
    const own = new MaestroWorkBackend({ sql });
    await expect(own.start()).rejects.toThrow(/attach it to a sink first/);
    const sent: CloudEvent[] = [];
    own.attach({ publish: (e) => (sent.push(e), 1) });
    await own.start();
    expect(own.ready).toBe(true);
    const eventId = "e-backend-start";
    await sql`insert into events (id, created_at, updated_at, source, source_id, event_type) values (${eventId}, now(), now(), 'Resources', 'r1', 'Create')`;
    await sql`select pg_notify('events', ${eventId})`;
    await eventually(() => sent.some((e) => e.extensions[Extension.resourceId] === "r1"), 5000, "delivery");
    await own.stop();
    expect(own.ready).toBe(false);
  });
});
