import { describe, expect, it } from "vitest";
import { ReviewCache } from "./review-cache.js";

function clock() {
  let t = 1_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe("ReviewCache", () => {
  it("serves a value for the TTL after its call started, then calls again", async () => {
    const c = clock();
    const cache = new ReviewCache<number>(10_000, 100, c.now);
    let calls = 0;
    const load = () => Promise.resolve(++calls);
    expect(await cache.get("k", load)).toBe(1);
    c.advance(9_999);
    expect(await cache.get("k", load)).toBe(1);
    c.advance(1);
    expect(await cache.get("k", load)).toBe(2);
    expect(calls).toBe(2);
  });

  it("coalesces concurrent lookups of one key into one call", async () => {
    const cache = new ReviewCache<string>(10_000);
    let calls = 0;
    let release!: (v: string) => void;
    const load = () => {
      calls++;
      return new Promise<string>((resolve) => (release = resolve));
    };
    const hits: string[] = [];
    const all = Array.from({ length: 50 }, () => cache.get("k", load, (h) => hits.push(h)));
    release("v");
    expect(await Promise.all(all)).toEqual(Array(50).fill("v"));
    expect(calls).toBe(1);
    expect(hits).toHaveLength(49);
    expect(hits.every((h) => h === "joined")).toBe(true);
  });

  it("never caches failures: every waiter gets the error and the next lookup calls again", async () => {
    const cache = new ReviewCache<string>(10_000);
    let calls = 0;
    const failing = () => {
      calls++;
      return Promise.reject(new Error("hub down"));
    };
    const both = [cache.get("k", failing), cache.get("k", failing)];
    for (const p of both) await expect(p).rejects.toThrow("hub down");
    expect(calls).toBe(1);
    expect(await cache.get("k", () => Promise.resolve("ok"))).toBe("ok");
    expect(cache.size).toBe(1);
  });

  it("with TTL 0 neither caches nor coalesces", async () => {
    const cache = new ReviewCache<number>(0);
    let calls = 0;
    const load = () => Promise.resolve(++calls);
    await Promise.all([cache.get("k", load), cache.get("k", load)]);
    await cache.get("k", load);
    expect(calls).toBe(3);
    expect(cache.size).toBe(0);
  });

  it("keeps at most maxEntries keys, dropping the oldest", async () => {
    const cache = new ReviewCache<number>(10_000, 3);
    for (let i = 0; i < 5; i++) await cache.get(`k${i}`, () => Promise.resolve(i));
    expect(cache.size).toBe(3);
    let called = false;
    await cache.get("k0", () => ((called = true), Promise.resolve(0)));
    expect(called).toBe(true);
  });

  it("does not cache a value whose TTL ran out while its call was in flight", async () => {
    const c = clock();
    const cache = new ReviewCache<number>(100, 10, c.now);
    await cache.get("k", async () => {
      c.advance(150);
      return 1;
    });
    expect(cache.size).toBe(0);
  });
});
