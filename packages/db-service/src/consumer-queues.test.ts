import { describe, expect, it } from "vitest";
import { ConsumerQueues } from "./consumer-queues.js";

describe("ConsumerQueues", () => {
  it("serves consumers in turn, one batch each, keeping each consumer's order", () => {
    const q = new ConsumerQueues<number>();
    for (let i = 0; i < 5; i++) q.push("a", i);
    q.push("b", 100);
    const first = q.take(2)!;
    expect(first).toEqual({ consumer: "a", items: [0, 1] });
    expect(q.take(2)).toEqual({ consumer: "b", items: [100] });
    expect(q.take(2)).toBeUndefined(); // "a" is busy until done
    q.done("a");
    q.done("b");
    expect(q.take(10)).toEqual({ consumer: "a", items: [2, 3, 4] });
    expect(q.size).toBe(0);
  });

  it("a consumer that is busy is not served twice, and a re-queued batch goes back to the head", () => {
    const q = new ConsumerQueues<string>();
    q.push("a", "x");
    q.push("a", "y");
    const batch = q.take(1)!;
    q.push("a", "z");
    expect(q.take(1)).toBeUndefined();
    q.requeue(batch.consumer, batch.items);
    q.done("a");
    expect(q.take(10)!.items).toEqual(["x", "y", "z"]);
  });

  it("a new consumer joins the back of the line", () => {
    const q = new ConsumerQueues<number>();
    q.push("a", 1);
    q.push("b", 2);
    const a = q.take(1)!;
    q.push("a", 3);
    q.push("c", 4);
    q.done(a.consumer);
    expect([q.take(1)!.consumer, q.take(1)!.consumer, q.take(1)!.consumer]).toEqual(["b", "c", "a"]);
  });
});
