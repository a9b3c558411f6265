import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, applyConfig, defaultConfig, loadConfigFile } from "./config.js";
import { parseGoDuration } from "./duration.js";

const dir = mkdtempSync(join(tmpdir(), "conductor-config-"));
function file(text: string): string {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return path;
}

describe("Go durations", () => {
  it.each([
    ["30s", 30_000], ["1m30s", 90_000], ["1.5h", 5_400_000], ["300ms", 300], ["2h45m", 9_900_000], ["0", 0], [1_000_000_000, 1000],
  ])("parses %s", (text, ms) => expect(parseGoDuration(text)).toBe(ms));
  it.each(["", "30", "s", "1x", "1.5.5s", null, "30 s"])("rejects %s", (text) => expect(parseGoDuration(text)).toBeUndefined());
});

describe("config file", () => {
  it("reads the grpc_config keys of sdk-go's server options", async () => {
    const config = await loadConfigFile(file(`
grpc_config:
  server_bind_port: "18090"
  tls_min_version: 772
  max_receive_message_size: 1048576
  server_ping_interval: 45s
  server_ping_timeout: 5s
  max_connection_age: 1h
  write_buffer_size: 32768   # accepted and ignored, as Node sizes its own buffers
broker_config:
  heartbeat_interval: 15s
`));
    expect(config.grpc).toMatchObject({
      port: 18090, tlsMinVersion: "TLSv1.3", maxReceiveMessageSize: 1048576,
      serverPingIntervalMs: 45_000, serverPingTimeoutMs: 5_000, maxConnectionAgeMs: 3_600_000,
    });
    expect(config.broker.heartbeatIntervalMs).toBe(15_000);
  });

  it("uses the defaults for an empty file", async () => {
    expect(await loadConfigFile(file(""))).toEqual(defaultConfig());
  });

  it.each([
    ["a missing file", undefined, /cannot read config file/],
    ["invalid YAML", "grpc_config: [", /not valid YAML/],
    ["a list", "- a", /must be a YAML mapping/],
    ["a bad port", "grpc_config:\n  server_bind_port: http", /server_bind_port must be an integer/],
    ["a port out of range", "grpc_config:\n  server_bind_port: 70000", /server_bind_port must be an integer from 0 to 65535/],
    ["an old TLS version", "grpc_config:\n  tls_min_version: VersionTLS10", /TLS below 1.2 is refused/],
    ["a bad duration", "grpc_config:\n  server_ping_interval: soon", /server_ping_interval must be a duration/],
    ["a cert without key", "grpc_config:\n  tls_cert_file: /x.crt", /must be set together/],
    ["a short heartbeat", "broker_config:\n  heartbeat_interval: 1s", /at least 10s/],
    ["a grpc_config list", "grpc_config: [1]", /grpc_config must be a mapping/],
  ])("refuses %s with a clear error", async (_what, text, message) => {
    const path = text === undefined ? join(dir, "missing.yaml") : file(text);
    const err = await loadConfigFile(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
  });

  it("changes nothing when a later key is invalid", () => {
    const base = defaultConfig();
    expect(() => applyConfig(base, { grpc_config: { server_bind_port: "1", max_send_message_size: -1 } })).toThrow(/max_send_message_size/);
    expect(base).toEqual(defaultConfig());
  });
});
