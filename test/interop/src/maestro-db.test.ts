import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  CloudEventService,
  DataTypes,
  Extension,
  fromProto,
  integerExtension,
  newEvent,
  stringExtension,
  toProto,
  type CloudEvent,
  type PbCloudEvent,
} from "@ocm-conductor/protocol";
import {
  AGENTSIM_VERSIONS,
  createDatabase,
  eventually,
  startAgentSim,
  startPostgres,
  type AgentSimEvent,
  type AgentSimHandle,
  type AgentSimVersion,
  type PostgresServer,
} from "@ocm-conductor/test-harness";
import postgres, { type Sql } from "postgres";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  MaestroConductorUnderTest,
  MaestroWriter,
  SOURCE_CLIENT,
  listenStatusEvents,
  maestroPayload,
  snowflakeId,
} from "./maestro-conductor-under-test.js";

// The issue "DB service" acceptance: the conductor on Maestro's PostgreSQL (maestro-db.md) with
// real sdk-go work agents. The test plays Maestro by writing the database exactly as Maestro's
// ResourceService does (§3), and checks what Maestro's readers rely on (§3.6, §5.1, §8.3, §9).

let pg: PostgresServer;
let databases = 0;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  pg = await startPostgres();
}, 120_000);

afterEach(async () => {
  // Last started, first stopped: agents, then listeners and writers, then conductors.
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
}, 60_000);

afterAll(async () => {
  await pg?.stop();
});

/** A fresh, empty database on the file's server; the conductor creates Maestro's schema in it. */
const database = () => createDatabase(pg, `maestro_${++databases}`);

async function replica(url: string, name?: string): Promise<MaestroConductorUnderTest> {
  const c = await MaestroConductorUnderTest.start({ url, ...(name === undefined ? {} : { name }) });
  cleanups.push(() => c.stop());
  return c;
}

/** A postgres.js client of the test itself (Maestro's writes and the checks). */
function client(url: string, max = 4): Sql {
  const sql = postgres(url, { max, onnotice: () => {} });
  cleanups.push(() => sql.end({ timeout: 1 }));
  return sql;
}

async function agentsOn(conductor: MaestroConductorUnderTest, version: AgentSimVersion, clusters: string[]): Promise<AgentSimHandle> {
  const agents = await startAgentSim({ version, server: conductor.address, clusters, reconnectDelay: "1s", duration: "5m" });
  cleanups.push(() => agents.stop(5000));
  await eventually(() => clusters.every((c) => conductor.isSubscribed(c)), 30_000, `${clusters.join(",")} to subscribe`);
  return agents;
}

const is = (event: string, fields: Record<string, unknown> = {}) => (e: AgentSimEvent) =>
  e.event === event && Object.entries(fields).every(([k, v]) => e[k] === v);

/** `agents.waitFor` for an `event` line with `fields`; the error names what was awaited. */
async function line(agents: AgentSimHandle, event: string, fields: Record<string, unknown>, timeoutMs = 30_000): Promise<AgentSimEvent> {
  return agents.waitFor(is(event, fields), timeoutMs).catch((err: Error) => {
    throw new Error(`waiting for ${event} ${JSON.stringify(fields)}: ${err.message}`);
  });
}

interface StatusJson {
  resourceid?: string;
  resourceversion?: number | string;
  sequenceid?: string;
  metadata?: unknown;
  data?: { conditions?: Array<{ type: string; status: string }> };
}

async function resourceRow(sql: Sql, id: string) {
  const [row] = await sql<Array<{ version: string; kind: string; status: StatusJson | null }>>`
    select version, jsonb_typeof(status) as kind, status from resources where id = ${id}`;
  return row;
}

const reconciled = (sql: Sql, eventId: string) => async () =>
  ((await sql`select reconciled_date from events where id = ${eventId}`)[0]?.reconciled_date ?? null) !== null;

interface StatusEventRow {
  id: string;
  resource_source: string;
  resource_type: string;
  /** `jsonb_typeof(payload)`: `'null'` for jsonb null, SQL NULL otherwise (gotcha 1). */
  payload_kind: string | null;
  status_kind: string | null;
  payload: Record<string, unknown> | null;
  status: StatusJson | null;
}

async function statusEvents(sql: Sql, resourceId: string, type: "StatusUpdate" | "StatusDelete"): Promise<StatusEventRow[]> {
  return sql<StatusEventRow[]>`
    select id, resource_source, resource_type, jsonb_typeof(payload) as payload_kind, jsonb_typeof(status) as status_kind, payload, status
    from status_events where resource_id = ${resourceId} and status_event_type = ${type} order by created_at`;
}

/** The `n` column of a one-row `count(*)` query. */
const count = async (query: Promise<Array<{ n: string }>>) => Number((await query)[0]!.n);

/**
 * Every accepted status gives exactly one `StatusUpdate` row with jsonb `null` payload and status
 * (maestro-db.md §5.1). Each `status-published` line is a status the conductor answered OK, and
 * while the agent's generation equals the row version each of them is accepted (§3.3), so the row
 * count must equal the line count.
 */
async function expectOneStatusUpdatePerPublishedStatus(sql: Sql, agents: AgentSimHandle, id: string): Promise<number> {
  let published = 0;
  let rows: StatusEventRow[] = [];
  await eventually(async () => {
    published = agents.events.filter(is("status-published", { uid: id })).length;
    rows = await statusEvents(sql, id, "StatusUpdate");
    return published > 0 && rows.length === published;
  }, 10_000, `one StatusUpdate row per published status of ${id}`).catch((err: Error) => {
    throw new Error(`${err.message}: ${rows.length} rows for ${published} published statuses`);
  });
  for (const row of rows) {
    expect(row).toMatchObject({ resource_source: "", resource_type: "", payload_kind: "null", status_kind: "null" });
  }
  return rows.length;
}

describe.each(AGENTSIM_VERSIONS)("golden sequence with sdk-go %s work agents (maestro-db.md §9)", (version) => {
  it("create, spec update and delete leave the database exactly as Maestro expects", async () => {
    const url = await database();
    const conductor = await replica(url);
    const sql = client(url);
    const maestro = new MaestroWriter(sql);
    await maestro.createConsumer("cluster1"); // step 0
    const notified = await listenStatusEvents(url);
    cleanups.push(() => notified.end());
    const agents = await agentsOn(conductor, version, ["cluster1"]);
    const id = randomUUID();

    // Steps 1–2: Maestro creates the resource; the conductor sends it and reconciles the event.
    const created = maestroPayload(id, "cluster1", { labels: { step: "create" } });
    const createEvent = await maestro.create(id, "cluster1", created);
    const added = await line(agents, "work-added", { uid: id, generation: 1 });
    expect(added.name).toBe(id); // metadata.name from the payload
    await eventually(reconciled(sql, createEvent), 10_000, "reconciled_date of the Create event");

    // Step 3: the agent's status is written with the spec's metadata, version and sequence id.
    await line(agents, "status-published", { uid: id, generation: 1 });
    const first = await resourceRow(sql, id);
    expect(first?.kind).toBe("object");
    expect(Number(first?.version)).toBe(1); // a status never bumps the version (§3.2)
    expect(first?.status?.metadata).toEqual(created.metadata);
    expect(String(first?.status?.resourceversion)).toBe("1");
    expect(first?.status?.sequenceid).toMatch(/^\d+$/);
    expect(first?.status?.resourceid).toBe(id);
    expect(first?.status?.data?.conditions).toContainEqual(expect.objectContaining({ type: "Applied", status: "True" }));
    let statusUpdates = await expectOneStatusUpdatePerPublishedStatus(sql, agents, id);

    // Spec update variant: version 2 reaches the agent as generation 2; its status is written.
    const updated = maestroPayload(id, "cluster1", { action: "update_request", data: { a: "c" }, labels: { step: "update" } });
    const updateEvent = await maestro.update(id, updated);
    await line(agents, "work-updated", { uid: id, generation: 2 });
    await eventually(reconciled(sql, updateEvent), 10_000, "reconciled_date of the Update event");
    await line(agents, "status-published", { uid: id, generation: 2 });
    const second = await resourceRow(sql, id);
    expect(Number(second?.version)).toBe(2);
    expect(String(second?.status?.resourceversion)).toBe("2");
    expect(second?.status?.metadata).toEqual(updated.metadata); // copied from the current payload
    expect(BigInt(second!.status!.sequenceid!)).toBeGreaterThan(BigInt(first!.status!.sequenceid!));
    statusUpdates = await expectOneStatusUpdatePerPublishedStatus(sql, agents, id);

    // Delete variant: soft delete + Delete event; the agent confirms with Deleted=True, the
    // conductor writes StatusDelete (carrying source, payload and status), NOTIFY, then hard-deletes.
    const deleteEvent = await maestro.markDeleting(id);
    await line(agents, "work-deleted", { uid: id });
    await eventually(async () => (await resourceRow(sql, id)) === undefined, 10_000, "the hard delete of the resource row");
    const deletes = await statusEvents(sql, id, "StatusDelete");
    expect(deletes).toHaveLength(1);
    const [deletion] = deletes;
    expect(deletion).toMatchObject({ resource_source: SOURCE_CLIENT, resource_type: "", payload_kind: "object", status_kind: "object" });
    expect(deletion!.payload).toEqual(updated); // gotcha 12: Maestro broadcasts from this row alone
    expect(deletion!.status?.resourceid).toBe(id);
    expect(deletion!.status?.metadata).toEqual(updated.metadata);
    expect(deletion!.status?.data?.conditions).toContainEqual(expect.objectContaining({ type: "Deleted", status: "True" }));
    await eventually(reconciled(sql, deleteEvent), 10_000, "reconciled_date of the Delete event");

    // The NOTIFYs on status_events are exactly the status events, by id (§5.1, §9 NOTIFY #2).
    const all = await sql<Array<{ id: string }>>`select id from status_events`;
    expect(all).toHaveLength(statusUpdates + 1);
    await eventually(() => notified.ids.length >= all.length, 5000, "a NOTIFY per status event");
    await new Promise((r) => setTimeout(r, 200)); // a duplicate NOTIFY would arrive right behind
    expect([...notified.ids].sort()).toEqual(all.map((r) => r.id).sort());

    // The end state Maestro expects: no resource, nothing to deliver, and the conductor wrote
    // nothing into Maestro's own bookkeeping (§8.4).
    expect(await count(sql`select count(*) as n from resources`)).toBe(0);
    expect(await count(sql`select count(*) as n from events where reconciled_date is null`)).toBe(0);
    expect(await count(sql`select count(*) as n from server_instances`)).toBe(0);
    expect(await count(sql`select count(*) as n from event_instances`)).toBe(0);
    expect(agents.events.filter(is("error"))).toEqual([]);
    expect(conductor.logged.filter((l) => l.level === "error")).toEqual([]);
  });
});

/** Writes `ids.length` resources as Maestro does, `concurrency` creates at a time; `onWritten` sees the running count. */
async function createMany(maestro: MaestroWriter, ids: string[], clusterOf: (i: number) => string, concurrency: number,
  onWritten: (written: number) => void = () => {}): Promise<void> {
  let next = 0;
  let written = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < ids.length; i = next++) {
      await maestro.create(ids[i]!, clusterOf(i));
      onWritten(++written);
    }
  }));
}

/** Waits until each agent process holds (`work-added`) every expected resource of each of its clusters. */
function missingWorks(agents: AgentSimHandle[], expected: Map<string, Set<string>>): Map<string, number> {
  const missing = new Map<string, number>();
  for (const [cluster, ids] of expected) {
    const seen = new Set(agents.flatMap((a) => a.events.filter(is("work-added", { cluster })).map((e) => e.uid as string)));
    missing.set(cluster, [...ids].filter((id) => !seen.has(id)).length);
  }
  return missing;
}

const describeMissing = (missing: Map<string, number>) => [...missing].map(([c, n]) => `${c}: ${n} missing`).join(", ");

/** Latest `work-added` time (agent clock, same host) for each of `ids` on `cluster`. */
function arrivalTimes(agents: AgentSimHandle[], cluster: string, ids: Iterable<string>): Map<string, number> {
  const want = new Set(ids);
  const at = new Map<string, number>();
  for (const e of agents.flatMap((a) => a.events)) {
    if (e.event === "work-added" && e.cluster === cluster && want.has(e.uid as string) && !at.has(e.uid as string)) {
      at.set(e.uid as string, Date.parse(e.t));
    }
  }
  return at;
}

/** The agent's cache (`list`) holds exactly `ids` for `cluster`. */
async function expectListed(agents: AgentSimHandle, cluster: string, ids: Set<string>): Promise<void> {
  const reply = await agents.command({ cmd: "list", cluster });
  expect(reply.ok).toBe(true);
  const uids = (reply.works as Array<{ uid: string }>).map((w) => w.uid);
  expect(uids.length).toBe(ids.size);
  expect(new Set(uids)).toEqual(ids);
}

/** What {@link writeWhileKillingListen} observed. */
interface ListenKill {
  /** When pg_stat_activity first showed the replica's new LISTEN backend (client clock, ms). */
  reconnectedAt: number;
  /** When the last create was written (client clock, ms). */
  lastWriteAt: number;
  /** Resources whose Create NOTIFY was sent while the replica had no LISTEN backend. */
  lostIds: Set<string>;
}

/**
 * Writes every resource as Maestro does, 8 creates at a time, and after the 150th terminates the
 * replica's LISTEN backend (`pg_terminate_backend`, found in pg_stat_activity by `query ilike
 * 'listen%'` and the replica's application name) while creates keep streaming in.
 */
async function writeWhileKillingListen(sql: Sql, maestro: MaestroWriter, victim: MaestroConductorUnderTest, ids: string[],
  clusterOf: (i: number) => string): Promise<ListenKill> {
  const listenBackends = () => sql<Array<{ pid: number; query_start: Date }>>`
    select pid, query_start from pg_stat_activity
    where datname = current_database() and application_name = ${victim.name} and query ilike 'listen%'`;
  const [before, ...others] = await listenBackends();
  expect(before, `${victim.name}'s LISTEN backend`).toBeDefined();
  expect(others).toEqual([]);
  let killedAt: Date | undefined;
  let kill: Promise<void> | undefined;
  const writing = createMany(maestro, ids, clusterOf, 8, (written) => {
    if (written !== 150) return;
    kill = (async () => {
      const [row] = await sql<Array<{ ok: boolean; at: Date }>>`select pg_terminate_backend(${before!.pid}) as ok, clock_timestamp() as at`;
      expect(row?.ok).toBe(true);
      killedAt = row!.at;
    })();
  });
  // The reconnect time is when pg_stat_activity first shows a new LISTEN backend.
  const reconnect = await eventually(async () => {
    const [now] = (await listenBackends()).filter((b) => b.pid !== before!.pid);
    return now === undefined ? undefined : { observedAt: Date.now(), listenStart: now.query_start };
  }, 30_000, "a new LISTEN backend after pg_terminate_backend", 5);
  await writing;
  await kill;
  const lastWriteAt = Date.now();
  // NOTIFYs committed between the kill and the new LISTEN reached nobody on this replica; only its
  // catch-up after the reconnect can deliver those resources to its agents.
  const lostEvents = new Set([...maestro.notifiedAt].filter(([, at]) => at > killedAt! && at < reconnect.listenStart).map(([id]) => id));
  const creates = await sql<Array<{ id: string; source_id: string }>>`select id, source_id from events where event_type = 'Create'`;
  const lostIds = new Set(creates.filter((r) => lostEvents.has(r.id)).map((r) => r.source_id));
  return { reconnectedAt: reconnect.observedAt, lastWriteAt, lostIds };
}

/** Waits (bounded) until each cluster's agent holds every expected resource; the error says how many are missing where. */
async function converge(agents: AgentSimHandle[], expected: Map<string, Set<string>>, timeoutMs: number): Promise<void> {
  await eventually(() => [...missingWorks(agents, expected).values()].every((n) => n === 0), timeoutMs, "every resource on its agent")
    .catch((err: Error) => {
      throw new Error(`${err.message} (${describeMissing(missingWorks(agents, expected))})`);
    });
}

/**
 * The bound of the LISTEN catch-up (maestro-db.md gotcha 7; db-service README: "a missed NOTIFY
 * costs seconds"): what the gap lost reaches the agents within 5 s of the reconnect — without the
 * catch-up it would wait for the 10-minute periodic sync, so the bound separates the two by two
 * orders of magnitude. Creates written after the reconnect ride on their own NOTIFYs, so for every
 * resource the clock starts at the later of the reconnect and the last write. Arrival is the
 * agent's `work-added` time (same host clock). No slack is added: 5 s is already generous for a
 * queue of 1,000 small events on loopback.
 */
function expectWithinBound(agents: AgentSimHandle[], expected: Map<string, Set<string>>, kill: ListenKill): void {
  const bound = 5000;
  for (const [cluster, clusterIds] of expected) {
    const times = arrivalTimes(agents, cluster, clusterIds);
    const lost = [...clusterIds].filter((id) => kill.lostIds.has(id)).map((id) => times.get(id)!);
    expect(Math.max(0, ...lost) - kill.reconnectedAt, `ms from the reconnect to the last lost create on ${cluster}`).toBeLessThanOrEqual(bound);
    expect(Math.max(...times.values()) - Math.max(kill.reconnectedAt, kill.lastWriteAt), `ms from the reconnect or last write to the last create on ${cluster}`)
      .toBeLessThanOrEqual(bound);
  }
}

const spread = (ids: string[], clusters: string[]) =>
  new Map(clusters.map((c, k) => [c, new Set(ids.filter((_, i) => i % clusters.length === k))]));

describe("LISTEN connection killed under load (maestro-db.md §4.4, gotcha 7)", () => {
  it("every agent gets every one of 1,000 resources within 5 s of the reconnect", async () => {
    const url = await database();
    const conductor = await replica(url);
    const sql = client(url, 10);
    const maestro = new MaestroWriter(sql);
    const clusters = ["c1", "c2", "c3"];
    for (const c of clusters) await maestro.createConsumer(c);
    // One agent process per sdk-go generation, one cluster each.
    const agents = await Promise.all(clusters.map((c, i) => agentsOn(conductor, AGENTSIM_VERSIONS[i]!, [c])));

    const ids = Array.from({ length: 1000 }, () => randomUUID());
    const kill = await writeWhileKillingListen(sql, maestro, conductor, ids, (i) => clusters[i % clusters.length]!);
    // Without a lost NOTIFY this run would not test the catch-up at all.
    expect(kill.lostIds.size, "creates whose NOTIFY was sent while the LISTEN connection was down").toBeGreaterThan(0);

    const expected = spread(ids, clusters);
    await converge(agents, expected, 60_000);
    expectWithinBound(agents, expected, kill);
    for (const [i, c] of clusters.entries()) await expectListed(agents[i]!, c, expected.get(c)!);
    expect(await count(sql`select count(*) as n from events where reconciled_date is null`)).toBe(0);
  });
});

describe("two conductor replicas on one database (maestro-db.md §8.3)", () => {
  async function twoReplicas() {
    const url = await database();
    const a = await replica(url, "replica-a");
    const b = await replica(url, "replica-b");
    const sql = client(url, 10);
    const maestro = new MaestroWriter(sql);
    const clusters = ["c1", "c2", "c3", "c4"];
    for (const c of clusters) await maestro.createConsumer(c);
    const agents = [await agentsOn(a, "v1.3", ["c1", "c2"]), await agentsOn(b, "v1.1.0", ["c3", "c4"])];
    const ids = Array.from({ length: 1000 }, () => randomUUID());
    return { a, b, sql, maestro, clusters, agents, ids, expected: spread(ids, clusters), clusterOf: (i: number) => clusters[i % clusters.length]! };
  }

  /** Every agent holds exactly its cluster's resources, and every resource has a status written by whichever replica took it. */
  async function expectConverged(t: Awaited<ReturnType<typeof twoReplicas>>): Promise<void> {
    for (const [i, pair] of [["c1", "c2"], ["c3", "c4"]].entries()) {
      for (const c of pair) await expectListed(t.agents[i]!, c, t.expected.get(c)!);
    }
    await eventually(async () => (await count(t.sql`select count(*) as n from resources
      where jsonb_typeof(status) = 'object' and status->>'resourceversion' = '1' and status ? 'sequenceid'`)) === t.ids.length,
    30_000, "a status for every resource");
    expect(await count(t.sql`select count(distinct resource_id) as n from status_events where status_event_type = 'StatusUpdate'`))
      .toBe(t.ids.length);
  }

  // Written before the SpecDelivery redesign (7ecfc05, "every replica delivers spec events to its own
  // agents") and failing against the design before it, where the replica that won an event's
  // advisory lock sent it only to its own subscribers and reconciled it, so agents on the other
  // replica got it only at their next resync (c1–c4: 114–133 of 250 missing each).
  it("every agent gets every resource of its cluster, whichever replica it is connected to", async () => {
    const t = await twoReplicas();
    await createMany(t.maestro, t.ids, t.clusterOf, 8);

    // Converged, or stuck: every event reconciled and no agent received anything for 15 s. Nothing
    // would deliver the rest before a resync, so waiting longer proves nothing.
    let progress = { received: -1, at: Date.now() };
    const received = () => t.agents.reduce((n, ag) => n + ag.events.filter(is("work-added")).length, 0);
    await eventually(async () => {
      if ([...missingWorks(t.agents, t.expected).values()].every((n) => n === 0)) return true;
      if (received() !== progress.received) progress = { received: received(), at: Date.now() };
      const unreconciled = await count(t.sql`select count(*) as n from events where reconciled_date is null`);
      return unreconciled === 0 && Date.now() - progress.at > 15_000;
    }, 120_000, "every agent to converge or delivery to stop", 250);
    const missing = missingWorks(t.agents, t.expected);
    expect(describeMissing(missing)).toBe(describeMissing(new Map(t.clusters.map((c) => [c, 0]))));
    await expectConverged(t);
  });

  // The other replica reconciles what replica B's LISTEN gap lost; B must still deliver it to its
  // own agents, from the events it re-reads after the reconnect.
  it("one replica's LISTEN connection killed under load: its agents still get every resource within 5 s of the reconnect", async () => {
    const t = await twoReplicas();
    const kill = await writeWhileKillingListen(t.sql, t.maestro, t.b, t.ids, t.clusterOf);
    const lostOnB = [...kill.lostIds].filter((id) => t.expected.get("c3")!.has(id) || t.expected.get("c4")!.has(id));
    expect(lostOnB.length, "creates for replica B's agents whose NOTIFY B missed").toBeGreaterThan(0);
    await converge(t.agents, t.expected, 60_000);
    expectWithinBound(t.agents, t.expected, kill);
    await expectConverged(t);
  });
});

describe("bad status input over gRPC (maestro-db.md §3.3, §5.1)", () => {
  const statusType = `${DataTypes.manifestBundles}.status.update_request`;
  const conditions = [{ type: "Applied", status: "True", reason: "AppliedManifestWorkComplete", message: "", lastTransitionTime: new Date().toISOString() }];

  /** An agent-like status event; `undefined` extensions are left out. */
  function statusEvent(o: { id: string; cluster?: string; version?: number | string; sequenceId?: string; data?: unknown }): PbCloudEvent {
    const cluster = o.cluster ?? "c1";
    return toProto(newEvent({
      type: statusType,
      source: `${cluster}-work-agent`,
      clusterName: cluster,
      originalSource: "maestro",
      extensions: {
        [Extension.resourceId]: o.id,
        [Extension.resourceVersion]: o.version ?? 1,
        [Extension.sequenceId]: o.sequenceId,
        [Extension.statusHash]: "0".repeat(64),
      },
      data: o.data ?? { conditions, resourceStatus: [] },
    }));
  }

  async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
    const err = await call.then(() => undefined, (e: unknown) => e);
    if (err === undefined) throw new Error("expected the call to fail");
    return ConnectError.from(err);
  }

  it("refuses or drops each bad status, changes no row, and keeps serving", async () => {
    const url = await database();
    const conductor = await replica(url);
    const sql = client(url);
    const maestro = new MaestroWriter(sql);
    await maestro.createConsumer("c1");
    await maestro.createConsumer("c2");

    const rpc = createClient(CloudEventService, createGrpcTransport({ baseUrl: conductor.server.url }));
    const abort = new AbortController();
    cleanups.push(async () => abort.abort());
    const received: CloudEvent[] = [];
    const stream = (async () => {
      for await (const m of rpc.subscribe({ clusterName: "c1", dataType: DataTypes.manifestBundles }, { signal: abort.signal })) {
        if (m.attributes[`ce-${Extension.resourceId}`] !== undefined) received.push(fromProto(m));
      }
    })();
    stream.catch(() => {});
    await eventually(() => conductor.isSubscribed("c1"), 5000, "the test's subscription");

    const r1 = randomUUID();
    await maestro.create(r1, "c1");
    await eventually(() => received.some((e) => e.extensions[Extension.resourceId] === r1), 10_000, "r1 on the stream");
    const spec = received.find((e) => e.extensions[Extension.resourceId] === r1)!;
    expect(spec.source).toBe("maestro");
    expect(integerExtension(spec, Extension.resourceVersion)).toBe(1);
    expect(stringExtension(spec, Extension.clusterName)).toBe("c1");

    const snapshot = async () => ({
      resources: await sql`select id, version, deleted_at, updated_at, payload, status, jsonb_typeof(status) as kind from resources order by id`,
      statusEvents: await sql`select * from status_events order by id`,
    });
    const before = await snapshot();
    const publish = (event: PbCloudEvent) => rpc.publish({ event });

    // Unknown resource: dropped without error, as Maestro ignores a 404 (§5.1).
    await publish(statusEvent({ id: randomUUID(), sequenceId: snowflakeId() }));
    // Wrong version: a stale status, silently disregarded (§3.3 step 3).
    await publish(statusEvent({ id: r1, version: 7, sequenceId: snowflakeId() }));
    // Another cluster's resource: an error (§5.1 "consumer_name must equal clustername").
    const wrongCluster = await rpcError(publish(statusEvent({ id: r1, cluster: "c2", sequenceId: snowflakeId() })));
    expect(wrongCluster.code).toBe(Code.FailedPrecondition);
    expect(wrongCluster.rawMessage).toMatch(/does not belong to cluster c2/);
    // Data that is not JSON.
    const notJson = await rpcError(publish(statusEvent({ id: r1, sequenceId: snowflakeId(), data: new TextEncoder().encode("{not json") })));
    expect(notJson.code).toBe(Code.FailedPrecondition);
    expect(notJson.rawMessage).toMatch(/failed to unmarshal event data/);
    // No sequenceid: Maestro errors (§3.3 step 5; gotcha 10: it would break every later update).
    const noSequence = await rpcError(publish(statusEvent({ id: r1 })));
    expect(noSequence.code).toBe(Code.FailedPrecondition);
    expect(noSequence.rawMessage).toMatch(/sequence id/);
    // Over the 4 MiB receive limit, though otherwise a valid, newer status.
    const pad = "x".repeat(4 * 1024 * 1024 + 1024);
    const huge = await rpcError(publish(statusEvent({ id: r1, sequenceId: snowflakeId(), data: { conditions, resourceStatus: [], pad } })));
    expect(huge.code).toBe(Code.ResourceExhausted);

    expect(await snapshot()).toEqual(before);
    expect(before.resources[0]?.kind).toBe("null");
    expect(before.statusEvents).toEqual([]);

    // Still serving: a good status is written, and a new resource reaches the stream.
    await publish(statusEvent({ id: r1, version: "1", sequenceId: snowflakeId() }));
    const row = await resourceRow(sql, r1);
    expect(row?.kind).toBe("object");
    expect(row?.status?.metadata).toEqual(maestroPayload(r1, "c1").metadata);
    expect(await statusEvents(sql, r1, "StatusUpdate")).toHaveLength(1);
    const r2 = randomUUID();
    await maestro.create(r2, "c1");
    await eventually(() => received.some((e) => e.extensions[Extension.resourceId] === r2), 10_000, "r2 on the stream after the bad input");
    expect(conductor.logged.filter((l) => l.level === "error")).toEqual([]);
  });
});
