import { eventually } from "@ocm-conductor/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { ConsumerController, type SyncResult } from "./consumer-controller.js";
import type { ConsumerStore, EnsureConsumerResult } from "./consumer-repository.js";
import { ConsumerControllerError } from "./errors.js";
import type { ManagedClusterLike } from "./managed-cluster.js";

/** A store double: records calls, answers from a script (an error to throw, or "ok"). */
class FakeStore implements ConsumerStore {
  readonly calls: Array<{ name: string; at: number }> = [];
  readonly existing = new Set<string>();
  script: Array<"ok" | Error> = [];
  gate: Promise<void> | undefined;

  async ensureConsumer(name: string): Promise<EnsureConsumerResult> {
    this.calls.push({ name, at: Date.now() });
    await this.gate;
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
    expect(() => new ConsumerController({})).toThrow(/needs `sql` or `store`/);
  });

  it("creates a consumer for a joined cluster and nothing for skipped ones", async () => {
    const store = new FakeStore();
    const { controller: c, results } = make(store);
    c.upsert(joinedCluster("pending", false));
    c.upsert(joinedCluster("leaving", true, "2026-11-25T10:00:00Z"));
    c.upsert({ metadata: { name: "fresh" } });
    c.upsert(joinedCluster("cluster1"));
    c.remove("gone");
    await c.whenIdle();
    expect(store.calls.map((x) => x.name)).toEqual(["cluster1"]);
    expect(results).toEqual(expect.arrayContaining([
      { name: "pending", outcome: "skipped", reason: "not-joined" },
      { name: "leaving", outcome: "skipped", reason: "deleting" },
      { name: "fresh", outcome: "skipped", reason: "not-joined" },
      { name: "gone", outcome: "skipped", reason: "missing" },
      { name: "cluster1", outcome: "created", consumerId: "id-cluster1" },
    ]));
    expect(results).toHaveLength(5);
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

  it("cancels retries when the cluster is removed, and keeps its consumer", async () => {
    const store = new FakeStore();
    store.script = [unavailable()];
    const { controller: c, results } = make(store, { initialBackoffMs: 50 });
    c.upsert(joinedCluster("cluster1"));
    await eventually(() => c.pendingRetries().get("cluster1") === 1, 2_000, "a pending retry");
    c.remove("cluster1");
    await c.whenIdle();
    await new Promise((r) => setTimeout(r, 120));
    expect(store.calls).toHaveLength(1);
    expect(c.pendingRetries().size).toBe(0);
    expect(results.at(-1)).toEqual({ name: "cluster1", outcome: "skipped", reason: "missing" });
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
