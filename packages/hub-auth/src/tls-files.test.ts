import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import type { Logger } from "@ocm-conductor/router";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTlsFiles, TlsFilesError, watchTlsFiles, type TlsFilesMaterial } from "./tls-files.js";

let dir: string;
const selfSigned = (name: string) => execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
  "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.crt`], { cwd: dir, stdio: "pipe" });
const files = () => ({ certFile: join(dir, "live", "tls.crt"), keyFile: join(dir, "live", "tls.key") });
const install = (name: string) => {
  copyFileSync(join(dir, `${name}.key`), files().keyFile);
  copyFileSync(join(dir, `${name}.crt`), files().certFile);
};
const cnOf = (m: TlsFilesMaterial) => new X509Certificate(m.cert).subject;
const until = async (check: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "hub-auth-tls-"));
  execFileSync("mkdir", [join(dir, "live")]);
  selfSigned("one");
  selfSigned("two");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("readTlsFiles", () => {
  it("reads a matching certificate and key", async () => {
    install("one");
    expect(cnOf(await readTlsFiles(files()))).toBe("CN=one");
  });

  it("refuses a key that does not match the certificate, and a missing file, naming the problem", async () => {
    copyFileSync(join(dir, "one.crt"), files().certFile);
    copyFileSync(join(dir, "two.key"), files().keyFile);
    await expect(readTlsFiles(files())).rejects.toThrow(TlsFilesError);
    await expect(readTlsFiles({ ...files(), caFile: join(dir, "missing.crt") })).rejects.toThrow(/client_ca_file: cannot read/);
  });
});

describe("watchTlsFiles", () => {
  it("reloads on file events, keeps the current material when the new files are bad (logging once), and stops", async () => {
    install("one");
    const current = await readTlsFiles(files());
    const changes: TlsFilesMaterial[] = [];
    const errors: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (m, f) => void errors.push(`${m} ${String(f?.["error"])}`) };
    const stop = watchTlsFiles(files(), { current, onChange: (m) => changes.push(m), intervalMs: 60_000, settleMs: 50, logger });
    try {
      writeFileSync(files().certFile, "garbage");
      await until(() => errors.length > 0, 5_000);
      writeFileSync(files().certFile, "garbage");
      await new Promise((r) => setTimeout(r, 300));
      expect(changes).toHaveLength(0);
      expect(errors).toHaveLength(1);
      install("two");
      await until(() => changes.length > 0, 5_000);
      expect(cnOf(changes[0]!)).toBe("CN=two");
    } finally {
      stop();
    }
    install("one");
    await new Promise((r) => setTimeout(r, 300));
    expect(changes).toHaveLength(1);
  });

  it("finds a change by the periodic check when no file event arrives", async () => {
    install("one");
    const current = await readTlsFiles(files());
    const changes: TlsFilesMaterial[] = [];
    // File events wait 60 s, so only the 200 ms period can see the change.
    const stop = watchTlsFiles(files(), { current, onChange: (m) => changes.push(m), intervalMs: 200, settleMs: 60_000 });
    try {
      install("two");
      await until(() => changes.length > 0, 5_000);
      expect(cnOf(changes[0]!)).toBe("CN=two");
    } finally {
      stop();
    }
  });
});
