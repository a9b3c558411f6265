import { describe, expect, it } from "vitest";
import { RecentIds } from "./recent-ids.js";

describe("RecentIds", () => {
  it("forgets ids older than the time to live", () => {
    let now = 0;
    const ids = new RecentIds(100, () => now);
    ids.add(["a", "b"]);
    now = 60;
    ids.add(["c", "a"]); // "a" seen again: its age restarts
    now = 150;
    ids.add([]);
    expect([ids.has("a"), ids.has("b"), ids.has("c")]).toEqual([true, false, true]);
    expect(ids.size).toBe(2);
  });
});
