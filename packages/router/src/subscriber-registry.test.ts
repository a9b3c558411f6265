import { describe, expect, it } from "vitest";
import { SubscriberQueue } from "./subscriber-queue.js";
import { SubscriberRegistry, type Subscriber } from "./subscriber-registry.js";

const sub = (id: string, clusterName: string, dataType = "a.v1.things"): Subscriber =>
  ({ id, clusterName, dataType, queue: new SubscriberQueue(1), since: 0, reset: undefined });

describe("SubscriberRegistry", () => {
  it("indexes by cluster and data type and cleans up empty keys", () => {
    const r = new SubscriberRegistry();
    const a = sub("a", "c1"), b = sub("b", "c1"), c = sub("c", "c2"), d = sub("d", "c1", "b.v1.other");
    [a, b, c, d].forEach((s) => r.add(s));
    expect(r.match("c1", "a.v1.things").map((s) => s.id).sort()).toEqual(["a", "b"]);
    expect(r.match("c3", "a.v1.things")).toEqual([]);
    expect(r.clusters().sort()).toEqual(["c1", "c2"]);
    expect(r.remove(c)).toBe(true);
    expect(r.remove(c)).toBe(false);
    expect(r.clusters()).toEqual(["c1"]);
    r.remove(a);
    r.remove(b);
    expect(r.has("c1", "a.v1.things")).toBe(false);
    expect(r.has("c1", "b.v1.other")).toBe(true);
    expect(r.size).toBe(1);
  });

  it("returns a snapshot that survives removal during iteration", () => {
    const r = new SubscriberRegistry();
    const subs = [sub("a", "c1"), sub("b", "c1")];
    subs.forEach((s) => r.add(s));
    for (const s of r.match("c1", "a.v1.things")) r.remove(s);
    expect(r.size).toBe(0);
  });
});
