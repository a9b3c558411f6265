import {
  DataTypes,
  Extension,
  integerExtension,
  parseEventType,
  stringExtension,
} from "@ocm-conductor/protocol";
import { AGENTSIM_VERSIONS, startAgentSim, type AgentSimEvent, type AgentSimHandle } from "@ocm-conductor/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { ConductorUnderTest, configMapBundle, eventually } from "./conductor-under-test.js";

// The scenarios of sdk-go's own test/integration/cloudevents suite (create/update/delete with
// statuses, resync, heartbeat reconnect), with our conductor in place of the Go broker and real
// sdk-go work agents of each generation on the other end (test-infra.md §B3).

let conductor: ConductorUnderTest | undefined;
let agents: AgentSimHandle | undefined;
afterEach(async () => {
  await agents?.stop(5000);
  await conductor?.stop();
  agents = undefined;
  conductor = undefined;
});

const is = (event: string, fields: Record<string, unknown> = {}) => (e: AgentSimEvent) =>
  e.event === event && Object.entries(fields).every(([k, v]) => e[k] === v);

async function setUp(version: (typeof AGENTSIM_VERSIONS)[number], options: { heartbeatMs?: number; healthiness?: string; clusters?: string[] } = {}) {
  conductor = await new ConductorUnderTest(options.heartbeatMs ?? 1000).start();
  const clusters = options.clusters ?? ["c1"];
  agents = await startAgentSim({
    version,
    server: conductor.address,
    clusters,
    reconnectDelay: "1s",
    duration: "5m",
    ...(options.healthiness === undefined ? {} : { serverHealthinessTimeout: options.healthiness }),
  });
  const c = conductor;
  await eventually(() => clusters.every((name) => c.isSubscribed(name)), 30_000, "agents to subscribe");
  return { conductor: c, agents };
}

describe.each(AGENTSIM_VERSIONS)("sdk-go %s work agents", (version) => {
  it("receive created, updated and deleted ManifestBundles and report statuses", async () => {
    const { conductor, agents } = await setUp(version);
    const work = conductor.works.create("c1", "work1", configMapBundle("cm1"));
    await agents.waitFor(is("work-added", { uid: work.uid, name: "work1", generation: 1 }));
    await eventually(() => conductor.works.get(work.uid)?.status?.resourceVersion === 1, 30_000, "status for generation 1");
    const applied = conductor.works.get(work.uid)?.status?.payload.conditions?.find((c) => c.type === "Applied");
    expect(applied?.status).toBe("True");

    // Status events carry what the source side needs (protocol.md §2.4 Example B).
    const status = conductor.works.received.find((e) => e.extensions[Extension.resourceId] === work.uid)!;
    expect(parseEventType(status.type)).toMatchObject({ resource: "manifestbundles", subResource: "status", action: "update_request" });
    expect(stringExtension(status, Extension.clusterName)).toBe("c1");
    expect(stringExtension(status, Extension.originalSource)).toBe("kube");
    expect(integerExtension(status, Extension.resourceVersion)).toBe(1);
    expect(stringExtension(status, Extension.sequenceId)).toMatch(/^\d+$/);
    expect(status.source).toBe("c1-work-agent");

    conductor.works.update(work.uid, configMapBundle("cm1", { a: "c" }));
    await agents.waitFor(is("work-updated", { uid: work.uid, generation: 2 }));
    await eventually(() => conductor.works.get(work.uid)?.status?.resourceVersion === 2, 30_000, "status for generation 2");

    conductor.works.delete(work.uid);
    await agents.waitFor(is("work-deleted", { uid: work.uid }), 30_000);
    // The agent's Deleted=True status makes the source forget the work.
    await eventually(() => conductor.works.get(work.uid) === undefined, 30_000, "the source to forget the deleted work");
    expect(agents.events.some(is("error"))).toBe(false);
  });

  it("resync after a reconnect restores state, including deletions the agent missed", async () => {
    const { conductor, agents } = await setUp(version);
    const names = ["kept", "deleted", "vanished"];
    const works = Object.fromEntries(names.map((n) => [n, conductor.works.create("c1", n, configMapBundle(n))]));
    for (const w of Object.values(works)) await agents.waitFor(is("work-added", { uid: w.uid }));
    await eventually(() => Object.values(works).every((w) => conductor.works.get(w.uid)?.status !== undefined), 30_000, "statuses");

    expect((await agents.command({ cmd: "stop-cluster", cluster: "c1" })).ok).toBe(true);
    await eventually(() => !conductor.isSubscribed("c1"), 30_000, "the agent to disconnect");
    // While the agent is away: one work changes, one is deleted (and stays listed as deleting until
    // the agent confirms, as the hub's finalizer keeps it), one vanishes without a trace, one is new.
    conductor.works.update(works.kept!.uid, configMapBundle("kept", { v: "2" }));
    conductor.works.delete(works.deleted!.uid);
    conductor.works.forget(works.vanished!.uid);
    const added = conductor.works.create("c1", "added", configMapBundle("added"));

    const subscriptionsBefore = conductor.subscriptionsOf("c1").length;
    expect((await agents.command({ cmd: "start-cluster", cluster: "c1", keepStore: true })).ok).toBe(true);
    await eventually(() => conductor.subscriptionsOf("c1").length > subscriptionsBefore, 30_000, "resubscription");
    await agents.waitFor(is("work-updated", { uid: works.kept!.uid, generation: 2 }), 30_000);
    await agents.waitFor(is("work-added", { uid: added.uid }), 30_000);
    await agents.waitFor(is("work-deleted", { uid: works.deleted!.uid }), 30_000);
    await eventually(() => conductor.works.get(works.deleted!.uid) === undefined, 30_000, "the deletion to be confirmed");
    if (version === "v1.1.0") {
      // A vanished work gets a synthesised deletion that carries only its ID. sdk-go v1.1.0 agents
      // look works up by name, so they cannot act on it (documented in test/interop/README.md).
      await new Promise((r) => setTimeout(r, 2000));
      const listed = await agents.command({ cmd: "list", cluster: "c1" });
      expect((listed.works as Array<{ name: string }>).map((w) => w.name).sort()).toEqual(["added", "kept", "vanished"]);
    } else {
      await agents.waitFor(is("work-deleted", { uid: works.vanished!.uid }), 30_000);
      const listed = await agents.command({ cmd: "list", cluster: "c1" });
      expect((listed.works as Array<{ name: string }>).map((w) => w.name).sort()).toEqual(["added", "kept"]);
    }
  });

  it("stays connected while heartbeats flow and reconnects when they stop", async () => {
    const beating = await setUp(version, { heartbeatMs: 1000, healthiness: "3s" });
    await new Promise((r) => setTimeout(r, 7000));
    expect(beating.conductor.subscriptionsOf("c1")).toHaveLength(1);
    await beating.agents.stop(5000);
    await beating.conductor.stop();

    // The same agents against a conductor that sends no heartbeat after the first one.
    const silent = await setUp(version, { heartbeatMs: 0, healthiness: "3s" });
    await eventually(() => silent.conductor.subscriptionsOf("c1").length >= 2, 30_000, "a reconnect after missing heartbeats");
  });

  it("reconnect and resync after a server restart", async () => {
    const { conductor, agents } = await setUp(version, { clusters: ["c1", "c2"] });
    const before = conductor.works.create("c1", "before", configMapBundle("before"));
    await agents.waitFor(is("work-added", { uid: before.uid }));
    await conductor.restart(500);
    // Created while agents are reconnecting: only resync can deliver it.
    const during = conductor.works.create("c2", "during", configMapBundle("during"));
    await eventually(() => conductor.isSubscribed("c1") && conductor.isSubscribed("c2"), 60_000, "both agents to reconnect");
    await agents.waitFor(is("work-added", { uid: during.uid, cluster: "c2" }), 60_000);
    await eventually(() => conductor.works.get(during.uid)?.status !== undefined, 30_000, "status after restart");
    expect(agents.events.filter(is("work-added", { uid: before.uid }))).toHaveLength(1);
  });
});

describe("data types", () => {
  it("agents subscribe to the manifestbundles data type", async () => {
    const { conductor } = await setUp("v1.3");
    expect(conductor.subscriptionsOf("c1")[0]?.dataType).toBe(DataTypes.manifestBundles);
  });
});
