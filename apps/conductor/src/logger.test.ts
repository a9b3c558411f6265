import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { REDACTED, createJsonLogger, isLogLevel } from "./logger.js";

function capture() {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split("\n").filter((l) => l !== ""));
      done();
    },
  });
  return { out, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("createJsonLogger (pino)", () => {
  it("writes one JSON object per line: level name, ISO time, the fields and msg", () => {
    const { out, records } = capture();
    const logger = createJsonLogger("info", out);
    logger.info("started", { mode: "all", port: 8090 });
    logger.warn("plain");
    const [first, second] = records();
    expect(first).toMatchObject({ level: "info", msg: "started", mode: "all", port: 8090 });
    expect(new Date(first!.time as string).toISOString()).toBe(first!.time);
    expect(Object.keys(first!).slice(0, 2)).toEqual(["level", "time"]);
    expect(second).toMatchObject({ level: "warn", msg: "plain" });
  });

  it("drops levels below the configured one", () => {
    const { out, records } = capture();
    const logger = createJsonLogger("warn", out);
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    expect(records().map((r) => r.msg)).toEqual(["w", "e"]);
  });

  it("redacts secret fields at the top level and one level down", () => {
    const { out, records } = capture();
    createJsonLogger("info", out).info("config", {
      password: "p1", token: "t1", authorization: "Bearer abc", database: { host: "db", password: "p2", token: "t2" }, user: "maestro",
    });
    const [r] = records();
    expect(r).toMatchObject({ password: REDACTED, token: REDACTED, authorization: REDACTED, database: { host: "db", password: REDACTED, token: REDACTED }, user: "maestro" });
    expect(JSON.stringify(r)).not.toMatch(/p1|p2|t1|t2|abc/);
  });

  it("scrubs the password of URLs in the message and in string fields", () => {
    const { out, records } = capture();
    createJsonLogger("info", out).error("cannot connect to postgres://maestro:s3cret@db:5432/maestro", {
      error: "connect ECONNREFUSED postgresql://u:pw%40x@10.0.0.1/db?sslmode=disable",
      nested: { url: "http://admin:hunter2@maestro:8000/api" },
      plain: "https://example.com/no-credentials",
    });
    const [r] = records();
    expect(JSON.stringify(r)).not.toMatch(/s3cret|pw%40x|hunter2/);
    expect(r!.msg).toBe(`cannot connect to postgres://maestro:${REDACTED}@db:5432/maestro`);
    expect(r!.error).toBe(`connect ECONNREFUSED postgresql://u:${REDACTED}@10.0.0.1/db?sslmode=disable`);
    expect(r!.nested).toEqual({ url: `http://admin:${REDACTED}@maestro:8000/api` });
    expect(r!.plain).toBe("https://example.com/no-credentials");
  });

  it("serializes Error fields with message and stack", () => {
    const { out, records } = capture();
    createJsonLogger("info", out).error("failed", { error: new Error("boom") });
    const [r] = records();
    expect(r!.error).toMatchObject({ type: "Error", message: "boom" });
    expect(String((r!.error as { stack: string }).stack)).toContain("logger.test.ts");
  });

  it("knows its level names", () => {
    expect(["debug", "info", "warn", "error"].every(isLogLevel)).toBe(true);
    expect(isLogLevel("trace")).toBe(false);
    expect(isLogLevel("constructor")).toBe(false);
  });
});
