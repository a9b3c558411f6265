import { describe, expect, it } from "vitest";
import { assertValidConsumerName, isValidConsumerName } from "./consumer-name.js";
import { ConsumerControllerError } from "./errors.js";

describe("consumer names (RFC 1123 DNS label, maestro-db.md §7)", () => {
  it("accepts DNS labels up to 63 characters", () => {
    for (const name of ["a", "0", "cluster1", "local-cluster", "a-b-c", "9x", "a".repeat(63), `a${"-".repeat(61)}z`]) {
      expect(isValidConsumerName(name), name).toBe(true);
      expect(() => assertValidConsumerName(name)).not.toThrow();
    }
  });

  it("refuses everything else with invalid-name", () => {
    const bad: unknown[] = ["", "a".repeat(64), "Cluster1", "-a", "a-", "a.b", "a_b", "a b", " a", "a\n", "é", "ａ",
      "x'); drop table consumers; --", "a\u0000b", "a".repeat(1_000_000), undefined, null, 42, {}];
    for (const name of bad) {
      expect(isValidConsumerName(name), String(name).slice(0, 20)).toBe(false);
      let caught: unknown;
      try {
        assertValidConsumerName(name);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ConsumerControllerError);
      expect((caught as ConsumerControllerError).code).toBe("invalid-name");
      expect((caught as ConsumerControllerError).retryable).toBe(false);
    }
  });

  it("keeps the message short for huge names", () => {
    try {
      assertValidConsumerName("x".repeat(1_000_000));
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message.length).toBeLessThan(400);
      expect((err as Error).message).toContain("(1000000 characters)");
    }
  });
});
