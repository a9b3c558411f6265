import { eventually } from "@ocm-conductor/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { ConsumerController, type SyncResult } from "./consumer-controller.js";
import type { ConsumerStore, DeleteConsumerResult, EnsureConsumerResult } from "./consumer-store.js";
import { ConsumerControllerError } from "./errors.js";
import type { ManagedClusterLike } from "./managed-cluster.js";

/** A store double: records calls, answers from a script (an error to throw, or "ok"). */
class FakeStore implements ConsumerStore {
  readonly calls: Array<{ name: string; at: number; op?: "delete" }> = [];
  readonly existing = new Set<string>();
  /** Resources per consumer name: a delete is refused while > 0. */
  readonly resources = new Map<string, number>();
  script: Array<"ok" | Error> = [];
  gate: Promise<void> | undefined;
  /** Each call takes this long (a database round trip). */
  delayMs = 0;

  async deleteConsumer(name: string): Promise<DeleteConsumerResult> {
    this.calls.push({ name, at: Date.now(), op: "delete" });
    await this.gate;
    const next = this.script.shift() ?? "ok";
    if (next instanceof Error) throw next;
    if (!this.existing.has(name)) return { outcome: "absent" };
    const resources = this.resources.get(name) ?? 0;
    if (resources > 0) return { outcome: "kept", reason: "has-resources", consumerId: `id-${name}`, resources };
    this.existing.delete(name);
    return { outcome: "deleted", consumerId: `id-${name}` };
  }

  async ensureConsumer(name: string): Promise<EnsureConsumerResult> {
    this.calls.push({ name, at: Date.now() });
    await this.gate;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const next = this.script.shift() ?? "ok";
    if (next instanceof Error) throw next;
    const outcome = this.existing.has(name) ? "exists" : "created";
    this.existing.add(name);
    const consumer = { id: `id-${name}`, name, labels: null, createdAt: null, updatedAt: null, deletedAt: null };
    return { outcome, consumer };
  }
}

const joinedCluster = (name: string, joined = true, deletionTimestamp?: string): ManagedClusterLike => ({
  metadata: { name, ...(deletionTimestamp === undefined ? {} : { deletionTimestamp }) },
  status: { conditions: [{ type: "ManagedClusterJoined", status: joined ? "True" : "False" }] },
});
const unavailable = () => new ConsumerControllerError("database-unavailable", "connect ECONNREFUSED");

let controller: ConsumerController | undefined;
afterEach(async () => {
  await controller?.stop();
  controller = undefined;
});

function make(store: ConsumerStore, options: { initialBackoffMs?: number; maxBackoffMs?: number } = {}) {
  const results: SyncResult[] = [];
  controller = new ConsumerController({ store, initialBackoffMs: 20, maxBackoffMs: 80, ...options, onSync: (r) => results.push(r) });
  return { controller, results };
}

describe("ConsumerController (store double)", () => {
  it("needs sql or a store", () => {
    expect(() => new ConsumerController({})).toThrow(/needs `sql`, `maestro` or `store`/);
    expect(() => new ConsumerController({ maestro: { baseUrl: "ftp://maestro" } })).toThrow(/not http/);
  });

  it("creates a consumer for a joined cluster and nothing for skipped ones", async () => {
    const store = new FakeStore();
    const { controller: c, results } = make(store);
    c.upsert(joinedCluster("pending", false));
    c.upsert(joinedCluster("leaving", true, "2026-11-25T10:00:00Z"));
    c.upsert({ metadata: { name: "fresh" } });
    c.upsert(joinedCluster("cluster1"));
    c.remove("gone");
    c.remove("not.a.label");
    await c.whenIdle();
    expect(store.calls.map((x) => [x.name, x.op ?? "ensure"])).toEqual([["cluster1", "ensure"], ["gone", "delete"]]);
    expect(results).toEqual(expect.arrayContaining([
      { name: "pending", outcome: "skipped", reason: "not-joined" },
      { name: "leaving", outcome: "skipped", reason: "deleting" },
      { name: "fresh", outcome: "skipped", reason: "not-joined" },
      { name: "gone", outcome: "absent" },
      { name: "not.a.label", outcome: "absent" }, // no consumer can have that name: nothing looked up
      { name: "cluster1", outcome: "created", consumerId: "id-cluster1" },
    ]));
    expect(results).toHaveLength(6);
  });

  it("is idempotent: a re-announced cluster finds its consumer", async () => {
    const store = new FakeStore();
    const { controller: c, results } = make(store);
    c.upsert(joinedCluster("cluster1"));
    await c.whenIdle();
    c.upsert(joinedCluster("cluster1"));
    await c.whenIdle();
    expect(results.map((r) => r.outcome)).toEqual(["created", "exists"]);
  });

  it("refuses an invalid name without calling the store and without retrying", async () => {
    const store = new FakeStore();
    const { controller: c, results } = make(store);
    c.upsert(joinedCluster("bad.name"));
    await c.whenIdle();
    await new Promise((r) => setTimeout(r, 60));
    expect(store.calls).toEqual([]);
    expect(results).toHaveLength(1);
    const [result] = results;
    expect(result?.outcome === "failed" && result.error.code).toBe("invalid-name");
    expect(c.pendingRetries().size).toBe(0);
  });

  it("retries database failures with doubling back-off up to the maximum, then succeeds", async () => {
    const store = new FakeStore();
    store.script = [unavailable(), unavailable(), unavailable(), unavailable(), "ok"];
    const { controller: c, results } = make(store);
    c.upsert(joinedCluster("cluster1"));
    await eventually(() => results.some((r) => r.outcome === "created"), 5_000, "the consumer after retries");
    expect(results.map((r) => (r.outcome === "failed" ? r.retryInMs : r.outcome))).toEqual([20, 40, 80, 80, "created"]);
    const gaps = store.calls.slice(1).map((call, i) => call.at - store.calls[i]!.at);
    expect(gaps).toHaveLength(4);
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual([20, 40, 80, 80][i]! - 2));
    expect(c.pendingRetries().size).toBe(0);
  });

  it("starts the back-off over after a success", async () => {
    const store = new FakeStore();
    store.script = [unavailable(), "ok", unavailable()];
    const { controller: c, results } = make(store);
    c.upsert(joinedCluster("cluster1"));
    await eventually(() => results.some((r) => r.outcome === "created"), 5_000, "the consumer");
    c.upsert(joinedCluster("cluster1"));
    await eventually(() => results.length === 4, 5_000, "the second round");
    expect(results.map((r) => (r.outcome === "failed" ? r.retryInMs : r.outcome))).toEqual([20, "created", 20, "exists"]);
  });

  it("a removal cancels the pending ensure retry and deletes the consumer instead", async () => {
    const store = new FakeStore();
    store.existing.add("cluster1");
    store.script = [unavailable()];
    const { controller: c, results } = make(store, { initialBackoffMs: 50 });
    c.upsert(joinedCluster("cluster1"));
    await eventually(() => c.pendingRetries().get("cluster1") === 1, 2_000, "a pending retry");
    c.remove("cluster1");
    await c.whenIdle();
    await new Promise((r) => setTimeout(r, 120));
    expect(store.calls.map((x) => x.op ?? "ensure")).toEqual(["ensure", "delete"]);
    expect(c.pendingRetries().size).toBe(0);
    expect(results.at(-1)).toEqual({ name: "cluster1", outcome: "deleted", consumerId: "id-cluster1" });
    expect(store.existing.has("cluster1")).toBe(false);
  });

  it("keeps a consumer with resources, warns, retries the delete with back-off, and deletes it once they are gone", async () => {
    const store = new FakeStore();
    store.resources.set("cluster1", 2);
    const warnings: Array<Record<string, unknown> | undefined> = [];
    const results: SyncResult[] = [];
    controller = new ConsumerController({
      store, initialBackoffMs: 20, maxBackoffMs: 40, onSync: (r) => results.push(r),
      logger: { debug() {}, info() {}, warn: (_m, f) => warnings.push(f), error() {} },
    });
    controller.upsert(joinedCluster("cluster1"));
    await controller.whenIdle();
    controller.remove("cluster1");
    await eventually(() => results.filter((r) => r.outcome === "kept").length >= 3, 2_000, "three kept results");
    store.resources.set("cluster1", 0); // the agent confirmed the deletions: resources hard-deleted
    await eventually(() => results.some((r) => r.outcome === "deleted"), 2_000, "the delete");
    const kept = results.filter((r) => r.outcome === "kept");
    expect(kept.slice(0, 3)).toEqual([20, 40, 40].map((retryInMs) =>
      ({ name: "cluster1", outcome: "kept", reason: "has-resources", consumerId: "id-cluster1", resources: 2, retryInMs })));
    expect(warnings[0]).toMatchObject({ cluster: "cluster1", resources: 2, retryInMs: 20 });
    expect(controller.pendingRetries().size).toBe(0);
    expect(store.existing.has("cluster1")).toBe(false);
  });

  it("a cluster that comes back while its consumer is kept stops the delete retries and keeps the consumer", async () => {
    const store = new FakeStore();
    store.existing.add("cluster1");
    store.resources.set("cluster1", 1);
    const { controller: c, results } = make(store, { initialBackoffMs: 30 });
    c.remove("cluster1");
    await eventually(() => c.pendingRetries().has("cluster1"), 2_000, "a pending delete retry");
    c.upsert(joinedCluster("cluster1"));
    await c.whenIdle();
    store.resources.set("cluster1", 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(results.map((r) => r.outcome)).toEqual(["kept", "exists"]);
    expect(store.existing.has("cluster1")).toBe(true);
    expect(c.pendingRetries().size).toBe(0);
  });

  it("a deleting cluster keeps its consumer; only the removal deletes it", async () => {
    const store = new FakeStore();
    const { controller: c, results } = make(store);
    c.upsert(joinedCluster("cluster1"));
    await c.whenIdle();
    c.upsert(joinedCluster("cluster1", true, "2026-11-25T10:00:00Z"));
    await c.whenIdle();
    expect(store.existing.has("cluster1")).toBe(true);
    c.remove("cluster1");
    await c.whenIdle();
    expect(results.map((r) => r.outcome)).toEqual(["created", "skipped", "deleted"]);
  });

  it("serves a cluster that joins during a burst before the rest of the burst", async () => {
    const store = new FakeStore();
    store.delayMs = 2;
    const { controller: c, results } = make(store);
    for (let i = 0; i < 300; i++) c.upsert(joinedCluster(`burst-${i}`)); // one delivery, e.g. the informer's initial list
    await eventually(() => results.length >= 10, 5_000, "the burst under way", 1);
    const before = results.length;
    c.upsert(joinedCluster("late"));
    await eventually(() => results.some((r) => r.name === "late"), 5_000, "the late cluster", 1);
    const burstDone = results.findIndex((r) => r.name === "late");
    // Round-robin between deliveries: at most the two running + one more burst name before it.
    expect(burstDone - before).toBeLessThanOrEqual(4);
    expect(burstDone).toBeLessThan(300); // the burst was still under way
    await c.whenIdle();
    expect(results.filter((r) => r.outcome === "created")).toHaveLength(301);
  });

  it("reconciles a name once at a time and re-runs with the latest state after a change", async () => {
    const store = new FakeStore();
    let open: () => void = () => {};
    store.gate = new Promise((r) => (open = r));
    const { controller: c, results } = make(store);
    c.upsert(joinedCluster("cluster1"));
    await eventually(() => store.calls.length === 1, 2_000, "the first reconcile");
    c.upsert(joinedCluster("cluster1"));
    c.upsert(joinedCluster("cluster1", true, "2026-11-25T10:00:00Z")); // now deleting
    expect(store.calls).toHaveLength(1);
    open();
    await c.whenIdle();
    expect(results).toEqual([
      { name: "cluster1", outcome: "created", consumerId: "id-cluster1" },
      { name: "cluster1", outcome: "skipped", reason: "deleting" },
    ]);
  });

  it("runs at most `concurrency` reconciles at once", async () => {
    const store = new FakeStore();
    let open: () => void = () => {};
    store.gate = new Promise((r) => (open = r));
    const { controller: c } = make(store);
    for (let i = 0; i < 5; i++) c.upsert(joinedCluster(`c${i}`));
    await new Promise((r) => setTimeout(r, 20));
    expect(store.calls).toHaveLength(2);
    open();
    await c.whenIdle();
    expect(store.calls.map((x) => x.name).sort()).toEqual(["c0", "c1", "c2", "c3", "c4"]);
  });

  it("stop() cancels retries and ignores later input", async () => {
    const store = new FakeStore();
    store.script = [unavailable()];
    const { controller: c } = make(store, { initialBackoffMs: 30 });
    c.upsert(joinedCluster("cluster1"));
    await eventually(() => c.pendingRetries().size === 1, 2_000, "a pending retry");
    await c.stop();
    c.upsert(joinedCluster("cluster2"));
    await new Promise((r) => setTimeout(r, 80));
    expect(store.calls.map((x) => x.name)).toEqual(["cluster1"]);
  });

  it("survives a throwing store and a throwing onSync", async () => {
    const store = new FakeStore();
    store.script = [new Error("boom")];
    const errors: unknown[] = [];
    controller = new ConsumerController({
      store, initialBackoffMs: 10,
      logger: { debug() {}, info() {}, warn() {}, error: (_m, f) => errors.push(f) },
      onSync: () => { throw new Error("callback"); },
    });
    controller.upsert(joinedCluster("cluster1"));
    await eventually(() => store.calls.length === 2, 2_000, "a retry after a plain Error");
    await controller.whenIdle();
    expect(errors.length).toBeGreaterThan(0);
  });
});
