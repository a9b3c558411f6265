import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, ServingStatus } from "@ocm-conductor/protocol";
import { afterAll, describe, expect, it } from "vitest";
import { resolveServeConfig } from "./cli.js";

const bin = fileURLToPath(new URL("../bin/conductor.js", import.meta.url));

function run(args: string[], untilLine?: RegExp) {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DATABASE_URL: "" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  const matched = new Promise<string>((resolve) => {
    child.stderr.on("data", (d) => {
      stderr += d;
      const line = stderr.split("\n").find((l) => untilLine?.test(l));
      if (line !== undefined) resolve(line);
    });
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, matched, exited, out: () => stdout, err: () => stderr };
}

// The embedded database of `serve` goes to a temp dir (0755: as root it runs as the postgres user), not ./.data/pg.
const dataParent = mkdtempSync(join(tmpdir(), "conductor-cli-"));
chmodSync(dataParent, 0o755);
afterAll(() => rmSync(dataParent, { recursive: true, force: true }));

describe("conductor command line", () => {
  it("serves gRPC until SIGTERM, then exits 0", async () => {
    const p = run(["serve", "--grpc-port", "0", "--admin-port", "0", "--data-dir", join(dataParent, "pg")], /gRPC server listening/);
    const line = JSON.parse(await p.matched) as { url: string };
    expect(line.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = createClient(Health, createGrpcTransport({ baseUrl: line.url }));
    expect((await health.check({})).status).toBe(ServingStatus.SERVING);
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  });

  it.each([
    [["serve", "--bogus"], /Unknown option '--bogus'/],
    [["serve", "--grpc-port", "http"], /--grpc-port must be an integer/],
    [["serve", "--broker-heartbeat-interval", "5s"], /at least 10s/],
    [["serve", "--broker-heartbeat-interval", "often"], /invalid duration/],
    [["serve", "--config", "/nonexistent/conductor.yaml"], /cannot read config file/],
    [["serve", "--log-level", "loud"], /--log-level must be/],
    [["serve", "--data-dir"], /argument missing/],
    [["serve", "--mode", "everything"], /--mode must be one of all, router, work-service, db-service, consumer-controller/],
    [["serve", "--config", "a.yaml", "--server-config", "b.yaml"], /not both/],
    [["serve", "--work-service-url", "http://127.0.0.1:1"], /--work-service-url is for --mode router/],
    [["serve", "--mode", "router", "--db-service-url", "ftp://x"], /must be http:\/\/host:port/],
    [["serve", "--admin-port", "70000"], /--admin-port/],
    [["serve", "--maestro-url", "ftp://maestro"], /--maestro-url \(or MAESTRO_URL\) must be http:\/\/host:port/],
    [["serve", "--maestro-token-file", "/tmp/token"], /--maestro-token-file needs --maestro-url/],
    [["serve", "--maestro-url", "http://127.0.0.1:1", "--maestro-token-file", "/nonexistent/token"], /--maestro-token-file: cannot read/],
    [["serve", "--mode", "consumer-controller", "--maestro-url", "http://127.0.0.1:1", "--kubeconfig", "/nonexistent/kubeconfig"], /kubeconfig/],
    [["frobnicate"], /unknown command "frobnicate"/],
  ])("exits 2 with a clear message for %j", async (args, message) => {
    const p = run(args);
    expect(await p.exited).toBe(2);
    expect(p.err()).toMatch(message);
  });

  it("prints help", async () => {
    const p = run(["help"]);
    expect(await p.exited).toBe(0);
    expect(p.out()).toMatch(/Usage: conductor/);
  });

  it("takes Maestro's URL from --maestro-url over MAESTRO_URL, with the token from a file", async () => {
    const tokenFile = join(dataParent, "token");
    writeFileSync(tokenFile, "  abc.def.ghi\n");
    expect((await resolveServeConfig([], { MAESTRO_URL: "http://env:8000" })).maestro).toEqual({ url: "http://env:8000" });
    expect((await resolveServeConfig(["--maestro-url", "https://flag:8443/", "--maestro-token-file", tokenFile], { MAESTRO_URL: "http://env:8000" })).maestro)
      .toEqual({ url: "https://flag:8443/", token: "abc.def.ghi" });
    expect((await resolveServeConfig([], { MAESTRO_URL: "" })).maestro).toBeUndefined();
    writeFileSync(tokenFile, "\n");
    await expect(resolveServeConfig(["--maestro-url", "http://m:8000", "--maestro-token-file", tokenFile], {})).rejects.toThrow(/is empty/);
  });

  it("lets flags override the config file", async () => {
    const { config } = await resolveServeConfig(["--grpc-port", "9999", "--broker-heartbeat-disabled"]);
    expect(config.grpc.port).toBe(9999);
    expect(config.broker.heartbeatDisabled).toBe(true);
  });
});
