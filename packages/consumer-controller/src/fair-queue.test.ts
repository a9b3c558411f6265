import { describe, expect, it } from "vitest";
import { FairQueue } from "./fair-queue.js";

const nextTurn = () => new Promise((r) => setImmediate(r));
const drain = (q: FairQueue) => {
  const out: string[] = [];
  for (let name = q.take(); name !== undefined; name = q.take()) out.push(name);
  return out;
};

describe("FairQueue", () => {
  it("keeps arrival order within one turn and queues a name once", () => {
    const q = new FairQueue();
    for (const n of ["a", "b", "a", "c"]) q.add(n);
    expect(q.size).toBe(3);
    expect(drain(q)).toEqual(["a", "b", "c"]);
    expect(q.size).toBe(0);
  });

  it("serves the groups of different turns round-robin", async () => {
    const q = new FairQueue();
    for (let i = 0; i < 5; i++) q.add(`burst-${i}`);
    await nextTurn();
    q.add("late-1");
    await nextTurn();
    q.add("later-1");
    q.add("later-2");
    expect(drain(q)).toEqual(["burst-0", "late-1", "later-1", "burst-1", "later-2", "burst-2", "burst-3", "burst-4"]);
  });

  it("puts all retries in one standing group, however many turns they arrive in", async () => {
    const q = new FairQueue();
    for (let i = 0; i < 3; i++) {
      q.add(`retry-${i}`, { retry: true });
      await nextTurn();
    }
    q.add("fresh");
    expect(drain(q)).toEqual(["retry-0", "fresh", "retry-1", "retry-2"]);
  });

  it("skips names that are not eligible, deletes and clears", async () => {
    const q = new FairQueue();
    q.add("a");
    q.add("b");
    q.add("c");
    q.delete("b");
    expect(q.has("b")).toBe(false);
    expect(q.take((n) => n !== "a")).toBe("c");
    expect(q.take((n) => n !== "a")).toBeUndefined();
    expect(q.has("a")).toBe(true);
    q.clear();
    expect(q.size).toBe(0);
    expect(q.take()).toBeUndefined();
    await nextTurn();
    q.add("d");
    expect(drain(q)).toEqual(["d"]);
  });
});
