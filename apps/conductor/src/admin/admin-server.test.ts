import { Registry, Counter } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { startAdminServer, type ReadinessCheck, type RunningAdminServer } from "./admin-server.js";

let admin: RunningAdminServer | undefined;
afterEach(async () => {
  await admin?.close();
  admin = undefined;
});

async function start(readiness: ReadinessCheck[], streams = () => [] as never[]) {
  const registry = new Registry();
  new Counter({ name: "grpc_server_ce_called_total", help: "h", registers: [registry] }).inc();
  admin = await startAdminServer({ host: "127.0.0.1", port: 0, registry, readiness, streams });
  return admin;
}

describe("admin server", () => {
  it("/livez answers from the process alone, /readyz names each failing check", async () => {
    const a = await start([
      { name: "database", check: () => ({ ok: true }) },
      { name: "listen", check: () => ({ ok: false, detail: "LISTEN events not established" }) },
      { name: "informers", check: () => new Promise(() => {}) }, // never answers
      { name: "throws", check: () => Promise.reject(new Error("boom")) },
    ]);
    const live = await fetch(`${a.url}/livez`);
    expect([live.status, await live.text()]).toEqual([200, "ok\n"]);
    const ready = await fetch(`${a.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.text()).toBe([
      "[+]database ok",
      "[-]listen failed: LISTEN events not established",
      "[-]informers failed: no answer within 2000 ms",
      "[-]throws failed: boom",
      "readyz check failed",
      "",
    ].join("\n"));
  });

  it("/readyz is 200 when every check passes", async () => {
    const a = await start([{ name: "database", check: () => ({ ok: true }) }]);
    expect((await fetch(`${a.url}/readyz`)).status).toBe(200);
  });

  it("/metrics serves the registry in the Prometheus text format", async () => {
    const a = await start([]);
    const res = await fetch(`${a.url}/metrics`);
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(await res.text()).toContain("grpc_server_ce_called_total 1");
  });

  it("/debug/subscribers lists streams as JSON or escaped HTML", async () => {
    const stream = { id: "s1", clusterName: "<script>alert(1)</script>", dataType: "io.x.v1.y", since: "2026-11-25T00:00:00.000Z", queued: 3, sent: 9, lastHeartbeat: null };
    const a = await start([], () => [stream] as never[]);
    const json = await fetch(`${a.url}/debug/subscribers?format=json`);
    expect(await json.json()).toEqual({ streams: [stream] });
    const html = await (await fetch(`${a.url}/debug/subscribers`)).text();
    expect(html).toContain("&#60;script&#62;alert(1)&#60;/script&#62;");
    expect(html).not.toContain("<script>");
    expect(html).toContain("1 stream(s) from 1 cluster(s)");
  });

  it("refuses other paths and methods", async () => {
    const a = await start([]);
    expect((await fetch(`${a.url}/nope`)).status).toBe(404);
    const post = await fetch(`${a.url}/livez`, { method: "POST", body: "x" });
    expect([post.status, post.headers.get("allow")]).toEqual([405, "GET, HEAD"]);
  });
});
