import { create } from "@bufbuild/protobuf";
import { CloudEventSchema, HEARTBEAT_TYPE, heartbeatMessage } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
import { SubscriberQueue } from "./subscriber-queue.js";

const msg = (id: string) => create(CloudEventSchema, { id });

describe("SubscriberQueue", () => {
  it("delivers in order and refuses beyond capacity without blocking", async () => {
    const q = new SubscriberQueue(2);
    expect(q.offer(msg("a"))).toBe(true);
    expect(q.offer(msg("b"))).toBe(true);
    expect(q.offer(msg("c"))).toBe(false);
    expect((await q.next())?.id).toBe("a");
    expect(q.offer(msg("c"))).toBe(true);
    expect((await q.next())?.id).toBe("b");
    expect((await q.next())?.id).toBe("c");
  });

  it("queues a resync answer of any size, while live events behind it stay bounded", async () => {
    const q = new SubscriberQueue(2);
    for (let i = 0; i < 3000; i++) expect(q.offer(msg(`r${i}`), { resync: true })).toBe(true);
    expect(q.offer(msg("live1"))).toBe(true);
    expect(q.offer(msg("live2"))).toBe(true);
    expect(q.offer(msg("live3"))).toBe(false); // an agent that stops reading is still detected
    const ids: string[] = [];
    for (let i = 0; i < 3002; i++) ids.push((await q.next())!.id);
    expect(ids.slice(0, 3)).toEqual(["r0", "r1", "r2"]);
    expect(ids.slice(-3)).toEqual(["r2999", "live1", "live2"]);
    expect(q.size).toBe(0);
    // The live slots are free again once their events were taken, compaction included.
    expect(q.offer(msg("live3"))).toBe(true);
    expect(q.offer(msg("live4"))).toBe(true);
    expect(q.offer(msg("live5"))).toBe(false);
  });

  it("wakes a waiting consumer and reports that it waits", async () => {
    const q = new SubscriberQueue(4);
    const pending = q.next();
    expect(q.consumerWaiting).toBe(true);
    q.offer(msg("x"));
    expect((await pending)?.id).toBe("x");
    expect(q.consumerWaiting).toBe(false);
  });

  it("keeps at most one heartbeat pending, outside the capacity, ahead of events", async () => {
    const q = new SubscriberQueue(1);
    q.offer(msg("e"));
    q.offerHeartbeat(heartbeatMessage);
    q.offerHeartbeat(heartbeatMessage);
    expect((await q.next())?.type).toBe(HEARTBEAT_TYPE);
    expect((await q.next())?.id).toBe("e");
    expect(q.size).toBe(0);
  });

  it("ends a waiting consumer: normally with undefined, or with the close error", async () => {
    const q = new SubscriberQueue(4);
    const pending = q.next();
    q.close();
    expect(await pending).toBeUndefined();
    const failed = new SubscriberQueue(4);
    failed.offer(msg("dropped"));
    failed.close(new Error("overflow"));
    await expect(failed.next()).rejects.toThrow("overflow");
    expect(failed.offer(msg("late"))).toBe(false);
  });

  it("stays correct across compaction of a long-lived queue", async () => {
    const q = new SubscriberQueue(5000);
    for (let i = 0; i < 4000; i++) q.offer(msg(String(i)));
    for (let i = 0; i < 3000; i++) expect((await q.next())?.id).toBe(String(i));
    for (let i = 4000; i < 5000; i++) q.offer(msg(String(i)));
    expect(q.size).toBe(2000);
    for (let i = 3000; i < 5000; i++) expect((await q.next())?.id).toBe(String(i));
  });
});
