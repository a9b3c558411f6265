import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { eventually } from "@ocm-conductor/test-harness";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ResilientInformer, type ResilientInformerOptions } from "./resilient-informer.js";

// The informer's failure handling against a scripted API server on loopback: each watch request is
// answered by the next script, so failures that a real kube-apiserver produces only by chance (a
// watch that goes silent, a 410, an error right after a good list) happen on cue. The restart of a
// real kube-apiserver is covered end to end by test/interop/src/kube-restart.test.ts.

interface Obj {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  data?: string;
}

type WatchScript = (req: IncomingMessage, res: ServerResponse) => void;

const PATH = "/apis/example.io/v1/things";
let server: Server;
let kubeConfig: KubeConfig;
/** Query of every watch request, in order. */
let watches: URLSearchParams[];
/** Scripts for the next watch requests; when they run out, a watch is held open silently. */
let scripts: WatchScript[];
const informers: Array<ResilientInformer<Obj>> = [];

const obj = (name: string, resourceVersion: string, data = "x"): Obj => ({ metadata: { name, namespace: "ns", resourceVersion }, data });

/** A watch answering 200 with these events (one JSON line each), then ending the response or holding it open. */
function stream(events: Array<{ type: string; object: unknown }>, then: "end" | "hold" = "end"): WatchScript {
  return (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    for (const e of events) res.write(`${JSON.stringify(e)}\n`);
    if (then === "end") res.end();
  };
}
/** A watch refused with an HTTP status. */
const refuse = (code: number): WatchScript => (_req, res) => {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code }));
};
/** Headers sent, then nothing: the silent watch of ecosystem.md §5. */
const silent: WatchScript = (_req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.flushHeaders();
};
/** Not even headers: a request that hangs. */
const hang: WatchScript = () => undefined;
/** The connection is cut mid-stream after one event. */
const cutAfter = (event: { type: string; object: unknown }): WatchScript => (req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.write(`${JSON.stringify(event)}\n`, () => setTimeout(() => req.socket.destroy(), 20));
};

beforeEach(async () => {
  watches = [];
  scripts = [];
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== PATH || url.searchParams.get("watch") !== "true") {
      res.writeHead(404).end();
      return;
    }
    watches.push(url.searchParams);
    (scripts.shift() ?? silent)(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: "fake", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: "nobody" }],
    contexts: [{ name: "fake", cluster: "fake", user: "nobody" }],
    currentContext: "fake",
  });
});

afterEach(async () => {
  await Promise.all(informers.splice(0).map((i) => i.stop()));
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

interface Recorder {
  seen: string[];
  warnings: Array<{ message: string; delayMs?: number }>;
  informer: ResilientInformer<Obj>;
}

function informer(list: ResilientInformerOptions<Obj>["list"], options: Partial<ResilientInformerOptions<Obj>> = {}): Recorder {
  const seen: string[] = [];
  const warnings: Recorder["warnings"] = [];
  const i = new ResilientInformer<Obj>(kubeConfig, {
    path: PATH,
    list,
    onAdd: (o) => seen.push(`add ${o.metadata.name}@${o.metadata.resourceVersion}`),
    onUpdate: (o) => seen.push(`update ${o.metadata.name}@${o.metadata.resourceVersion}`),
    onDelete: (o) => seen.push(`delete ${o.metadata.name}`),
    initialBackoffMs: 20,
    maxBackoffMs: 2_000,
    logger: {
      debug() {},
      info() {},
      warn: (message, fields) => void warnings.push({ message, delayMs: fields?.delayMs as number | undefined }),
      error: (message) => void warnings.push({ message }),
    },
    ...options,
  });
  informers.push(i);
  return { seen, warnings, informer: i };
}

const listOf = (rv: string, ...items: Obj[]) => async () => ({ items, metadata: { resourceVersion: rv } });

describe("ResilientInformer", () => {
  it("start() resolves only after a list succeeded, and retries the list with a growing backoff", async () => {
    let calls = 0;
    const r = informer(async () => {
      if (++calls <= 4) throw new Error(`list refused (${calls})`);
      return { items: [obj("a", "5")], metadata: { resourceVersion: "5" } };
    });
    let started = false;
    const start = r.informer.start().then(() => (started = true));
    await eventually(() => calls >= 3, 10_000, "the list to be retried");
    // client-node's informer resolved start() and reported ready with an empty cache here.
    expect(started).toBe(false);
    expect(r.informer.ready).toBe(false);
    expect(r.informer.list()).toEqual([]);
    await start;
    expect(r.informer.ready).toBe(true);
    expect(r.seen).toEqual(["add a@5"]); // delivered before start() resolved
    expect(calls).toBe(5);
    // Exponential backoff: each delay (jitter 0.5–1 × a doubling base) exceeds the one before.
    const delays = r.warnings.filter((w) => /list failed/.test(w.message)).map((w) => w.delayMs!);
    expect(delays).toHaveLength(4);
    for (let k = 1; k < delays.length; k++) expect(delays[k]).toBeGreaterThan(delays[k - 1]!);
    await eventually(() => watches.length >= 1, 10_000, "the watch after the list");
    expect(watches[0]?.get("resourceVersion")).toBe("5");
  });

  it("backs off across repeated watch failures instead of resetting on every attempt, and resets after a healthy watch", async () => {
    scripts = [refuse(500), refuse(503), refuse(500), refuse(429), stream([{ type: "ADDED", object: obj("b", "7") }]), refuse(500)];
    const r = informer(listOf("5", obj("a", "5")));
    await r.informer.start();
    await eventually(() => watches.length >= 7, 10_000, "the watch to be retried past the failures");
    const delays = r.warnings.filter((w) => /watch failed/.test(w.message)).map((w) => w.delayMs!);
    // Four failures in a row: strictly growing delays (the old wrapper reset the backoff on every
    // `connect`, which client-node emits before each attempt, so its delay never grew).
    for (let k = 1; k < 4; k++) expect(delays[k]).toBeGreaterThan(delays[k - 1]!);
    // The watch that delivered an event was healthy: the next failure starts from the initial delay again.
    expect(delays[4]).toBeLessThanOrEqual(20);
    expect(r.seen).toEqual(["add a@5", "add b@7"]);
    // Never relisted: every retry resumed from the last resourceVersion it had seen.
    expect(r.informer.stats.lists).toBe(1);
    expect(watches.map((w) => w.get("resourceVersion"))).toEqual(["5", "5", "5", "5", "5", "7", "7"]);
  });

  it("resumes from the last resourceVersion after a cut connection, without a relist", async () => {
    scripts = [cutAfter({ type: "MODIFIED", object: obj("a", "6", "y") }), stream([{ type: "ADDED", object: obj("b", "8") }], "hold")];
    const r = informer(listOf("5", obj("a", "5")));
    await r.informer.start();
    await eventually(() => r.seen.includes("add b@8"), 10_000, "the event of the second watch");
    expect(r.seen).toEqual(["add a@5", "update a@6", "add b@8"]);
    expect(watches.map((w) => w.get("resourceVersion"))).toEqual(["5", "6"]);
    expect(r.informer.stats).toMatchObject({ lists: 1, errors: 1 });
    expect(r.informer.get("a", "ns")?.data).toBe("y");
  });

  it("relists on 410 Gone: missing objects are deleted, new ones added, changed ones updated, unchanged ones left alone", async () => {
    let calls = 0;
    const lists = [
      { items: [obj("a", "5"), obj("b", "5"), obj("c", "5")], metadata: { resourceVersion: "5" } },
      { items: [obj("a", "5"), obj("b", "9", "changed"), obj("d", "9")], metadata: { resourceVersion: "9" } },
    ];
    scripts = [stream([{ type: "ERROR", object: { kind: "Status", code: 410, reason: "Expired", message: "too old resource version" } }]), refuse(410)];
    const r = informer(async () => lists[Math.min(calls++, 1)]!);
    await r.informer.start();
    await eventually(() => watches.length >= 3, 10_000, "the watch after the relists");
    expect(r.seen).toEqual(["add a@5", "add b@5", "add c@5", "delete c", "update b@9", "add d@9"]);
    expect(r.informer.list().map((o) => o.metadata.name).sort()).toEqual(["a", "b", "d"]);
    expect(r.informer.stats).toMatchObject({ lists: 3, expired: 2 });
    expect(watches.map((w) => w.get("resourceVersion"))).toEqual(["5", "9", "9"]);
  });

  it("after an outage, a 410 relists at once (no backoff); only a 410 right after a fresh list waits", async () => {
    scripts = [refuse(503), refuse(503), refuse(503), refuse(410)];
    const r = informer(listOf("5", obj("a", "5")));
    await r.informer.start();
    await eventually(() => watches.length >= 5, 10_000, "the watch after the relist");
    expect(r.warnings.filter((w) => /watch failed/.test(w.message))).toHaveLength(3);
    expect(r.warnings.filter((w) => /expired/.test(w.message))).toEqual([]);
    expect(r.informer.stats).toMatchObject({ lists: 2, expired: 1, errors: 3 });
  });

  it("follows bookmarks, so a re-watch after the server's timeout starts from the newest resourceVersion", async () => {
    scripts = [stream([{ type: "BOOKMARK", object: { kind: "Thing", metadata: { resourceVersion: "42" } } }])];
    const r = informer(listOf("5", obj("a", "5")), { watchTimeoutSeconds: 123 });
    await r.informer.start();
    await eventually(() => watches.length >= 2, 10_000, "the re-watch");
    expect(watches[0]?.get("allowWatchBookmarks")).toBe("true");
    expect(watches[0]?.get("timeoutSeconds")).toBe("123");
    expect(watches[1]?.get("resourceVersion")).toBe("42");
    expect(r.seen).toEqual(["add a@5"]);
  });

  it("replaces a watch that went silent (headers, then nothing) and one that never answered", async () => {
    scripts = [silent, hang, stream([{ type: "ADDED", object: obj("b", "6") }], "hold")];
    const r = informer(listOf("5", obj("a", "5")), { silentWatchMs: 300 });
    await r.informer.start();
    await eventually(() => r.seen.includes("add b@6"), 10_000, "the event on the third watch");
    expect(r.informer.stats).toMatchObject({ lists: 1, silentRestarts: 2 });
    expect(watches.map((w) => w.get("resourceVersion"))).toEqual(["5", "5", "5"]);
  });

  it("keeps watching when a handler throws", async () => {
    scripts = [stream([{ type: "ADDED", object: obj("boom", "6") }, { type: "ADDED", object: obj("b", "7") }], "hold")];
    const seen: string[] = [];
    const i = new ResilientInformer<Obj>(kubeConfig, {
      path: PATH,
      list: listOf("5"),
      onAdd: (o) => {
        if (o.metadata.name === "boom") throw new Error("handler bug");
        seen.push(o.metadata.name);
      },
    });
    informers.push(i);
    await i.start();
    await eventually(() => seen.includes("b"), 10_000, "the event after the throwing one");
    expect(i.get("boom", "ns")).toBeDefined();
  });

  it("survives a malformed list (the loop logs, relists and carries on)", async () => {
    let calls = 0;
    const r = informer(async () => (++calls === 1
      ? { items: [{} as Obj], metadata: { resourceVersion: "4" } }
      : { items: [obj("a", "5")], metadata: { resourceVersion: "5" } }));
    await r.informer.start();
    expect(r.seen).toEqual(["add a@5"]);
    expect(r.warnings.some((w) => /step failed/.test(w.message))).toBe(true);
  });

  it("stop() ends the watch and the retries; start() during a failing list returns once stopped", async () => {
    const r = informer(async () => {
      throw new Error("down");
    });
    const start = r.informer.start();
    await eventually(() => r.warnings.length >= 2, 10_000, "a retried list");
    await r.informer.stop();
    await start;
    expect(r.informer.ready).toBe(false);
    const attempts = r.warnings.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(r.warnings.length).toBe(attempts);
    await expect(r.informer.start()).rejects.toThrow(/stopped/);

    scripts = [silent];
    const w = informer(listOf("5", obj("a", "5")));
    await w.informer.start();
    await eventually(() => watches.length === 1, 10_000, "the watch");
    await w.informer.stop();
    const openConnections = () => new Promise<number>((res) => server.getConnections((_e, n) => res(n)));
    await eventually(async () => (await openConnections()) === 0, 10_000, "the watch connection to be closed");
  });
});
