import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { DataTypes, SubscriptionRequestSchema } from "@ocm-conductor/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, openStream, startTestServer, workEvent, type TestServer } from "./support.js";

let t: TestServer;
let stuckSession: http2.ClientHttp2Session | undefined;
afterEach(async () => {
  stuckSession?.destroy();
  await t?.close();
});

/** Opens a Subscribe on its own connection and never reads from it. */
function openStuckStream(url: string, clusterName: string) {
  stuckSession = http2.connect(url);
  const body = toBinary(SubscriptionRequestSchema, create(SubscriptionRequestSchema, { clusterName, dataType: DataTypes.manifestBundles }));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  const req = stuckSession.request({
    ":method": "POST",
    ":path": "/io.cloudevents.v1.CloudEventService/Subscribe",
    "content-type": "application/grpc",
    te: "trailers",
  });
  req.end(frame);
  req.pause(); // never read: HTTP/2 flow control soon stops the server's writes
  const ended = new Promise<{ rstCode: number; trailers: http2.IncomingHttpHeaders | undefined }>((resolve) => {
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.on("trailers", (t) => (trailers = t));
    req.on("close", () => resolve({ rstCode: req.rstCode ?? 0, trailers }));
  });
  ended.catch(() => {});
  req.on("error", () => {});
  return ended;
}

describe("backpressure (a stuck agent never blocks the others)", () => {
  it("delivers 1,000 events to each of 100 streams while one stream never reads, and ends the stuck one", async () => {
    const ended: Array<[string, string]> = [];
    t = await startTestServer({
      queueCapacity: 256,
      stuckStreamResetMs: 200,
      observer: { unsubscribed: (stream, reason) => ended.push([stream.clusterName, reason]) },
    });
    const stuck = openStuckStream(t.server.url, "stuck");
    const healthy = Array.from({ length: 100 }, (_, i) => openStream(t.client, `h${i}`));
    await eventually(() => t.broker.subscriberCount === 101, 10_000, "101 subscribers");
    const sink = t.backend.sink!;
    const bulky = workEvent("stuck", "bulk", 1);
    bulky.data = new Uint8Array(4096);
    let stuckEnded = false;
    void stuck.then(() => (stuckEnded = true));
    for (let batch = 1; batch <= 10; batch++) {
      for (let i = 0; i < 100; i++) {
        for (let c = 0; c < 100; c++) sink.publish(workEvent(`h${c}`, `w${batch}-${i}`, batch));
        sink.publish(bulky);
      }
      await eventually(() => healthy.every((s) => s.eventCount() === batch * 100), 20_000, `batch ${batch} on every healthy stream`);
    }
    expect(healthy.map((s) => s.eventCount())).toEqual(Array(100).fill(1000));
    const { rstCode, trailers } = await stuck;
    expect(stuckEnded).toBe(true);
    // Either the stream drained enough to carry trailers (Unavailable) or it was reset with a
    // code grpc-go does not read as Canceled.
    const endedClearly = trailers?.["grpc-status"] === "14" || rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM;
    expect(endedClearly).toBe(true);
    expect(t.broker.subscribedClusters()).not.toContain("stuck");
    expect(ended).toEqual([["stuck", "overflow"]]);
    expect(t.broker.subscriberCount).toBe(100);
  }, 120_000);

  it("ends a slow but reading stream with Unavailable so the agent resubscribes", async () => {
    t = await startTestServer({ queueCapacity: 8 });
    const s = openStream(t.client, "c1");
    await eventually(() => t.broker.subscriberCount === 1, 5000, "subscriber");
    for (let i = 0; i < 50; i++) t.backend.sink!.publish(workEvent("c1", `w${i}`, 1));
    const err = await s.done.then(() => undefined, (e: unknown) => e);
    expect(String(err)).toMatch(/unavailable.*subscriber queue overflow/i);
    expect(t.broker.subscriberCount).toBe(0);
  });
});
