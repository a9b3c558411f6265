import { Code, ConnectError } from "@connectrpc/connect";
import { DataTypes, fromProto, newEvent, toProto, type CloudEvent } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
import type { Backend } from "./backend.js";
import { Broker, type StreamEndReason } from "./broker.js";

describe("Broker sink.resyncAll", () => {
  it("ends the streams of one data type with Unavailable so their agents resync, and leaves the others", async () => {
    const ended: Array<[string, StreamEndReason]> = [];
    const broker = new Broker({ heartbeatIntervalMs: 0, observer: { unsubscribed: (s, reason) => ended.push([s.dataType, reason]) } });
    const work = broker.subscribe({ clusterName: "c1", dataType: DataTypes.manifestBundles });
    const lease = broker.subscribe({ clusterName: "c1", dataType: DataTypes.leases });
    broker.sink.resyncAll(DataTypes.manifestBundles, "spec events of db-service may have been missed");
    const err = await work.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toBe("spec events of db-service may have been missed; resubscribe to resync");
    expect(ended).toEqual([[DataTypes.manifestBundles, "resync"]]);
    expect(broker.subscriberCount).toBe(1);
    lease.close();
    broker.close();
  });
});

describe("Broker.streams", () => {
  it("reports each live stream with its queue depth and last heartbeat", async () => {
    const broker = new Broker({ heartbeatIntervalMs: 0 });
    const sub = broker.subscribe({ clusterName: "c1", dataType: DataTypes.manifestBundles });
    expect(broker.streams()).toEqual([
      expect.objectContaining({ id: sub.id, clusterName: "c1", dataType: DataTypes.manifestBundles, queued: 0, sent: 0, lastHeartbeat: null }),
    ]);
    broker.sink.publish(newEvent({ type: `${DataTypes.manifestBundles}.spec.create_request`, source: "kube", clusterName: "c1" }));
    expect(broker.streams()[0]!.queued).toBe(1);
    await sub.next();
    expect(broker.streams()[0]).toMatchObject({ queued: 0, sent: 1 });
    sub.close();
    expect(broker.streams()).toEqual([]);
    broker.close();
  });
});

describe("Broker resync while live events flow", () => {
  const MB = DataTypes.manifestBundles;
  const spec = (action: string, id: string, version: number, extra: Record<string, string> = {}) =>
    newEvent({ type: `${MB}.spec.${action}`, source: "kube", clusterName: "c1", extensions: { resourceid: id, resourceversion: version, ...extra } });

  /** A backend whose list() waits until the test releases it with what it listed at the start. */
  function slowBackend(listed: CloudEvent[]) {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const backend: Backend = {
      list: async () => (await gate, listed),
      handle: async () => {},
    };
    return { backend, release };
  }

  it("leaves out of the answer every resource sent live while the list was in flight", async () => {
    // The list snapshot: w1 at version 2 (not deleting), w2 absent. Meanwhile w1 is deleted and w2
    // is created live. Without the rule the answer would send w1 v2 after its deletion (sdk-go v1.3
    // then forgets the deletion) and a synthesised deletion of w2 right after its creation.
    const { backend, release } = slowBackend([spec("update_request", "w1", 2)]);
    const broker = new Broker({ heartbeatIntervalMs: 0 });
    broker.registerBackend(MB, backend);
    const stream = broker.subscribe({ clusterName: "c1", dataType: MB });
    const request = newEvent({ type: `${MB}.spec.resync_request`, source: "c1-work-agent", clusterName: "c1",
      data: { resourceVersions: [{ resourceID: "w1", resourceVersion: 1 }, { resourceID: "w2", resourceVersion: 1 }, { resourceID: "w3", resourceVersion: 1 }] } });
    const answered = broker.publish(toProto(request), { signal: new AbortController().signal });
    await new Promise((r) => setImmediate(r));
    broker.sink.publish(spec("delete_request", "w1", 2, { deletiontimestamp: "2026-12-07T23:00:00Z" }));
    broker.sink.publish(spec("create_request", "w2", 1));
    release();
    await answered;
    const sent: Array<[string, string]> = [];
    for (let i = 0; i < 3; i++) {
      const m = fromProto((await stream.next())!);
      sent.push([m.type.split(".").pop()!, String(m.extensions.resourceid)]);
    }
    // The live events, then only the synthesised deletion of w3 (reported, listed nowhere, not sent live).
    expect(sent).toEqual([["delete_request", "w1"], ["create_request", "w2"], ["resync_response", "w3"]]);
    expect(broker.streams()[0]!.queued).toBe(0);
    stream.close();
    broker.close();
  });

  it("answers in full when nothing was sent live meanwhile", async () => {
    const { backend, release } = slowBackend([spec("update_request", "w1", 2)]);
    const broker = new Broker({ heartbeatIntervalMs: 0 });
    broker.registerBackend(MB, backend);
    const stream = broker.subscribe({ clusterName: "c1", dataType: MB });
    const other = spec("create_request", "w9", 1);
    other.extensions.clustername = "c2"; // another cluster's event does not count
    const request = newEvent({ type: `${MB}.spec.resync_request`, source: "c1-work-agent", clusterName: "c1",
      data: { resourceVersions: [{ resourceID: "w1", resourceVersion: 1 }] } });
    const answered = broker.publish(toProto(request), { signal: new AbortController().signal });
    await new Promise((r) => setImmediate(r));
    broker.sink.publish(other);
    release();
    await answered;
    const m = fromProto((await stream.next())!);
    expect([m.type.split(".").pop(), m.extensions.resourceid, m.extensions.resourceversion]).toEqual(["resync_response", "w1", 2]);
    stream.close();
    broker.close();
  });
});

describe("Broker resync larger than the queue capacity", () => {
  it("delivers a resync answer of 2,000 events on a stream whose live capacity is 16, and keeps the stream", async () => {
    const MB = DataTypes.manifestBundles;
    const listed = Array.from({ length: 2000 }, (_, i) =>
      newEvent({ type: `${MB}.spec.update_request`, source: "maestro", clusterName: "c1", extensions: { resourceid: `r${i}`, resourceversion: 1 } }));
    const broker = new Broker({ heartbeatIntervalMs: 0, queueCapacity: 16 });
    broker.registerBackend(MB, { list: async () => listed, handle: async () => {} });
    const ended: string[] = [];
    const stream = broker.subscribe({ clusterName: "c1", dataType: MB });
    const request = newEvent({ type: `${MB}.spec.resync_request`, source: "c1-work-agent", clusterName: "c1", data: { resourceVersions: [] } });
    await broker.publish(toProto(request), { signal: new AbortController().signal });
    expect(broker.streams()[0]!.queued).toBe(2000);
    // A live event behind the answer is queued too: only live events count against the capacity.
    broker.sink.publish(newEvent({ type: `${MB}.spec.create_request`, source: "kube", clusterName: "c1", extensions: { resourceid: "live", resourceversion: 1 } }));
    const received: string[] = [];
    for (let i = 0; i < 2001; i++) received.push(String(fromProto((await stream.next().catch((e: unknown) => (ended.push(String(e)), undefined)))!).extensions.resourceid));
    expect(ended).toEqual([]);
    expect(received.length).toBe(2001);
    expect(new Set(received.slice(0, 2000)).size).toBe(2000);
    expect(received.at(-1)).toBe("live");
    expect(broker.subscriberCount).toBe(1);
    stream.close();
    broker.close();
  });
});
