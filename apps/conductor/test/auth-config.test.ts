/** The authentication switch (issue #7 item 5): on with TLS, refused off with TLS, loudly off on h2c. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "@ocm-conductor/router";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, resolveServeConfig } from "../src/cli.js";
import { startConductorProcess } from "../src/conductor-process.js";
import { defaultConfig, loadConfigFile } from "../src/config.js";
import { issue, makeCa, pemOf } from "./auth-pki.js";

let dir: string;
let tlsConfig: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "conductor-auth-config-"));
  const ca = makeCa(dir, "ca");
  const serving = issue(dir, ca, "serving", { subject: "/CN=conductor", usage: "server" });
  tlsConfig = join(dir, "tls.yaml");
  writeFileSync(tlsConfig, `grpc_config:\n  server_bind_port: "0"\n  tls_cert_file: ${serving.cert}\n  tls_key_file: ${serving.key}\n  client_ca_file: ${ca.cert}\n  auth_cache_ttl: 3s\n  cert_watch_interval: 30s\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { logger: Logger; lines: Array<{ level: string; message: string }> } {
  const lines: Array<{ level: string; message: string }> = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }, lines };
}

describe("authentication switch", () => {
  it("reads auth_cache_ttl, cert_watch_interval and insecure_no_auth", async () => {
    const config = await loadConfigFile(tlsConfig);
    expect(config.grpc.authCacheTtlMs).toBe(3_000);
    expect(config.grpc.certWatchIntervalMs).toBe(30_000);
    expect(defaultConfig().grpc).toMatchObject({ authCacheTtlMs: 10_000, certWatchIntervalMs: 60_000, insecureNoAuth: false });
    const plain = join(dir, "plain.yaml");
    writeFileSync(plain, "grpc_config:\n  insecure_no_auth: true\n  auth_cache_ttl: 0s\n");
    expect((await loadConfigFile(plain)).grpc).toMatchObject({ insecureNoAuth: true, authCacheTtlMs: 0 });
  });

  it("refuses --insecure-no-auth and insecure_no_auth together with TLS", async () => {
    await expect(resolveServeConfig(["--server-config", tlsConfig, "--insecure-no-auth"], {})).rejects.toThrow(/--insecure-no-auth is refused when TLS is configured/);
    const both = join(dir, "both.yaml");
    writeFileSync(both, `grpc_config:\n  tls_cert_file: /x.crt\n  tls_key_file: /x.key\n  insecure_no_auth: true\n`);
    await expect(loadConfigFile(both)).rejects.toThrow(/insecure_no_auth is refused when TLS is configured/);
    expect(await main(["serve", "--server-config", tlsConfig, "--insecure-no-auth"], {})).toBe(2);
  });

  it("refuses TLS without Kubernetes access for a process that serves agents (exit 2)", async () => {
    expect(await main(["serve", "--mode", "router", "--work-service-url", "http://127.0.0.1:1", "--server-config", tlsConfig, "--admin-port", "0"], {})).toBe(2);
    const { logger } = capture();
    const config = await loadConfigFile(tlsConfig);
    await expect(startConductorProcess({
      mode: "router", config, kube: undefined, admin: undefined, remotes: { workService: "http://127.0.0.1:1" }, logger,
      tls: { cert: pemOf(config.grpc.tlsCertFile!), key: pemOf(config.grpc.tlsKeyFile!) },
    })).rejects.toThrow(/needs the hub's Kubernetes API/);
  });

  it("serves h2c without authentication, loudly, with and without --insecure-no-auth", async () => {
    for (const insecureNoAuth of [false, true]) {
      const { logger, lines } = capture();
      const config = defaultConfig();
      config.grpc = { ...config.grpc, port: 0, insecureNoAuth };
      const running = await startConductorProcess({ mode: "router", config, kube: undefined, admin: undefined, remotes: { workService: "http://127.0.0.1:1" }, logger });
      try {
        expect(running.auth).toBeUndefined();
        expect(lines.filter((l) => l.level === "warn" && l.message.startsWith("AUTHENTICATION AND AUTHORIZATION ARE OFF"))).toHaveLength(1);
        expect(lines.some((l) => l.message.includes("--insecure-no-auth)"))).toBe(insecureNoAuth);
      } finally {
        await running.stop();
      }
    }
  });
});
