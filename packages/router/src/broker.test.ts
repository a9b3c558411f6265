import { Code, ConnectError } from "@connectrpc/connect";
import { DataTypes, newEvent } from "@ocm-conductor/protocol";
import { describe, expect, it } from "vitest";
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
