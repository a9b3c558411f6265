/**
 * R7: a backlog of Delete events does not starve creates (maestro PR #562: 100k orphaned deletes
 * ahead of every create in Maestro's single FIFO). 10,000 soft-deleted resources of one consumer
 * and their Delete events are committed in one transaction with a NOTIFY each (so the conductor
 * is handed the whole backlog at once); right after the commit, Creates for another consumer are
 * written as Maestro writes them. The creates reach their sdk-go agent before the backlog is
 * drained (the last backlog event's `reconciled_date`), and the backlog's subscriber gets every
 * delete. `DRILL_R7_BACKLOG=100000` runs the 100k size (outside CI; about 10× the time).
 */
import { randomUUID } from "node:crypto";
import { eventually } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import type { ConductorChild } from "@ocm-conductor/test-harness";
import { Subscriber, ceClient } from "./grpc.js";
import { SOURCE_CLIENT, createPayload } from "./maestro.js";
import { agentErrors, allSpec, converge, dump, log, startAgents, startAll, startWorld, stopWorld, waitSubscribed, type World } from "./world.js";

let w: World;
let conductor: ConductorChild;
const BACKLOG = Number(process.env.DRILL_R7_BACKLOG ?? 10_000);
const CREATES = 20;

beforeAll(async () => {
  w = await startWorld("backlog");
  conductor = await startAll(w, await allSpec(w, "all"));
}, 180_000);
afterAll(async () => {
  await stopWorld(w);
}, 120_000);
beforeEach((ctx) => {
  ctx.onTestFailed(() => dump(w));
});

it(`R7: ${BACKLOG} queued Delete events of one consumer do not hold back Creates of another written after them`, async () => {
  const backlog = "drill-r7-backlog";
  const fresh = "drill-r7-fresh";
  await w.maestro.ensureConsumer(backlog);
  await w.maestro.ensureConsumer(fresh);
  const agent = await startAgents(w, "v1.3", [fresh], conductor.spec.grpcPort, conductor);
  const backlogSub = new Subscriber(ceClient(conductor.grpcUrl), backlog);
  await waitSubscribed(conductor, [backlog]);

  // The backlog: soft-deleted resources and their Delete events, one transaction, a NOTIFY per event.
  const t0 = Date.now();
  const ids = Array.from({ length: BACKLOG }, () => randomUUID());
  await w.sql.begin(async (tx) => {
    for (let i = 0; i < ids.length; i += 1_000) {
      const chunk = ids.slice(i, i + 1_000);
      await tx`insert into resources ${tx(chunk.map((id) => ({ id, created_at: new Date(), updated_at: new Date(), deleted_at: new Date(), version: 1, source: SOURCE_CLIENT,
        consumer_name: backlog, type: "", payload: tx.json(createPayload(id, backlog) as never), status: null, name: id })) as never)}`;
      await tx`insert into events ${tx(chunk.map((id) => ({ id: randomUUID(), created_at: new Date(), updated_at: new Date(), deleted_at: null, source: "Resources", source_id: id, event_type: "Delete", reconciled_date: null })))}`;
    }
    await tx`select pg_notify('events', e.id) from events e join resources r on r.id = e.source_id where r.consumer_name = ${backlog} and e.reconciled_date is null`;
  });
  const committed = Date.now();
  log(`R7: backlog of ${BACKLOG} committed in ${committed - t0} ms`);

  // Creates written after the backlog.
  const created: string[] = [];
  for (let i = 0; i < CREATES; i++) created.push(await w.maestro.create(fresh));
  const arrivals = await Promise.all(created.map((id) => agent.waitFor((e) => e.event === "work-added" && e.uid === id, 120_000)));
  const lastCreate = Math.max(...arrivals.map((e) => Date.parse(e.t)));

  await eventually(async () => (await w.maestro.unreconciled(backlog)) === 0, 240_000, "the backlog to drain", 250);
  const [row] = await w.sql<Array<{ last: Date; first: Date }>>`select max(e.reconciled_date) as last, min(e.reconciled_date) as first from events e
    join resources r on r.id = e.source_id where r.consumer_name = ${backlog}`;
  const drained = row!.last.getTime();
  await eventually(() => new Set(backlogSub.received.filter((r) => r.event.type.endsWith("spec.delete_request")).map((r) => r.event.extensions["resourceid"])).size === BACKLOG,
    60_000, `${BACKLOG} delete requests on the backlog's subscriber`, 250);
  backlogSub.close();
  log(`R7: creates all on the agent ${lastCreate - committed} ms after the backlog commit; backlog drained ${drained - committed} ms after it (first reconciled at +${row!.first.getTime() - committed} ms); the backlog's subscriber got all ${BACKLOG} deletes`);
  expect(lastCreate, "every create reached its agent before the backlog drained").toBeLessThan(drained);
  await converge(w, [[agent, fresh]], 60_000);
  expect(agentErrors(w)).toEqual([]);
}, 300_000);
