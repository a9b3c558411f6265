import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataTypes, Extension, stringExtension } from "@ocm-conductor/protocol";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, startTestServer, workEvent, type TestServer } from "./support.js";
import { startAdminServer, type RunningAdminServer } from "../src/admin/admin-server.js";
import { runCtl } from "../src/ctl/ctl.js";
import { parseEventJson } from "../src/ctl/event-json.js";

let server: TestServer | undefined;
let admin: RunningAdminServer | undefined;
afterEach(async () => {
  await server?.close();
  await admin?.close();
  server = undefined;
  admin = undefined;
});

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t) } };
}

describe("conductor ctl", () => {
  it("subscribe prints what the conductor sends a cluster, as protobuf JSON", async () => {
    server = await startTestServer();
    const s = server;
    const cap = io();
    const done = runCtl(["subscribe", "--server", s.server.url, "--cluster", "c1", "--data-type", "manifestBundles", "--count", "1", "--timeout", "10s"], cap.io);
    await eventually(() => s.broker.subscribedClusters().includes("c1"), 5000, "ctl to subscribe");
    s.backend.sink!.publish(workEvent("c1", "uid-1", 3));
    expect(await done).toBe(0);
    const printed = JSON.parse(cap.out.join("")) as { type: string; attributes: Record<string, { ceString?: string; ceInteger?: number }> };
    expect(printed.type).toBe(`${DataTypes.manifestBundles}.spec.create_request`);
    expect(printed.attributes["ce-resourceid"]?.ceString).toBe("uid-1");
    expect(cap.err.join("")).toMatch(/^subscription-id: [0-9a-f-]{36}\n$/);
  });

  it("publish sends a CloudEvents JSON file to the backend", async () => {
    server = await startTestServer();
    const dir = await mkdtemp(join(tmpdir(), "ctl-"));
    const file = join(dir, "status.json");
    await writeFile(file, JSON.stringify({
      specversion: "1.0", id: "s-1", source: "c1-work-agent", type: `${DataTypes.manifestBundles}.status.update_request`,
      clustername: "c1", resourceid: "uid-1", resourceversion: 1, originalsource: "kube", metadata: { name: "w" }, data: { conditions: [] },
    }));
    const cap = io();
    expect(await runCtl(["publish", "--server", server.server.url, "-f", file], cap.io)).toBe(0);
    const handled = server.backend.handled[0]!.event;
    expect(handled.id).toBe("s-1");
    expect(stringExtension(handled, Extension.metadata)).toBe('{"name":"w"}');
    expect(cap.out.join("")).toBe(`published ${DataTypes.manifestBundles}.status.update_request id=s-1\n`);
  });

  it("publish reports the server's refusal and exits 1", async () => {
    server = await startTestServer();
    server.backend.failWith = new Error("boom");
    const dir = await mkdtemp(join(tmpdir(), "ctl-"));
    const file = join(dir, "e.json");
    await writeFile(file, JSON.stringify({ source: "x", type: `${DataTypes.manifestBundles}.status.update_request`, clustername: "c1" }));
    const cap = io();
    expect(await runCtl(["publish", "--server", server.server.url, "-f", file], cap.io)).toBe(1);
    expect(cap.err.join("")).toContain("failed_precondition");
  });

  it("status prints readiness and subscribers, exiting 1 when not ready", async () => {
    admin = await startAdminServer({
      host: "127.0.0.1", port: 0, registry: new Registry(),
      readiness: [{ name: "database", check: () => ({ ok: false, detail: "down" }) }],
      streams: () => [{ id: "s", clusterName: "c1", dataType: "t", since: "", queued: 0, sent: 1, lastHeartbeat: null }],
    });
    const cap = io();
    expect(await runCtl(["status", "--admin", admin.url], cap.io)).toBe(1);
    expect(cap.out.join("")).toContain("[-]database failed: down");
    expect(cap.out.join("")).toContain("1 stream(s) from 1 cluster(s)");
  });

  it.each([
    [["nope"], /unknown ctl command "nope"/],
    [["subscribe"], /subscribe needs --cluster/],
    [["subscribe", "--cluster", "c1", "--count", "0"], /--count must be a positive integer/],
    [["subscribe", "--cluster", "c1", "--timeout", "soon"], /--timeout: invalid duration/],
    [["publish"], /publish needs -f/],
    [["publish", "--bogus"], /Unknown option '--bogus'/],
  ])("refuses %j with usage and exit 2", async (argv, message) => {
    const cap = io();
    expect(await runCtl(argv, cap.io)).toBe(2);
    expect(cap.err.join("")).toMatch(message);
  });
});

describe("parseEventJson", () => {
  it.each([
    ["[]", "the event must be a JSON object"],
    ["{", "not JSON"],
    ['{"type":"t"}', '"source" must be a non-empty string'],
    ['{"source":"s","type":"t","specversion":"0.3"}', '"specversion" must be "1.0"'],
    ['{"source":"s","type":"t","time":"yesterday"}', '"time" is not an RFC 3339 time'],
    ['{"source":"s","type":"t","data":1,"data_base64":"AA=="}', "exclusive"],
    ['{"source":"s","type":"t","Bad-Name":1}', 'extension name "Bad-Name"'],
    ['{"source":"s","type":"t","big":1e12}', 'extension "big" must be a 32-bit integer'],
    ['{"source":"s","type":"t","nothing":null}', 'extension "nothing" has an unsupported value'],
  ])("refuses %s", (text, message) => {
    expect(() => parseEventJson(text)).toThrow(message);
  });
});
