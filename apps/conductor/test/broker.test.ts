import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  CloudEventSchema,
  DataTypes,
  Extension,
  fromProto,
  integerExtension,
  stringExtension,
  type PbCloudEvent,
} from "@ocm-conductor/protocol";
import { BackendError } from "@ocm-conductor/router";
import { afterEach, describe, expect, it } from "vitest";
import { agentMessage, eventually, isHeartbeat, openStream, startTestServer, workEvent, type TestServer } from "./support.js";

const MB = DataTypes.manifestBundles;
const statusType = `${MB}.status.update_request`;
const resyncType = `${MB}.spec.resync_request`;

let t: TestServer;
afterEach(async () => t?.close());

async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("Subscribe (protocol.md §5.1, §5.5)", () => {
  it("refuses a missing cluster name with Unknown and the Go message", async () => {
    t = await startTestServer();
    const s = openStream(t.client, "");
    const err = await rpcError(s.done);
    expect(err.code).toBe(Code.Unknown);
    expect(err.rawMessage).toBe("invalid subscription request: missing cluster name");
    expect(s.received).toHaveLength(0);
  });

  it("refuses an unparsable data type with Unknown", async () => {
    t = await startTestServer();
    const err = await rpcError(openStream(t.client, "c1", "manifests").done);
    expect(err.code).toBe(Code.Unknown);
    expect(err.rawMessage).toMatch(/^invalid subscription request: invalid data type unsupported cloudevents data type format/);
  });

  it("sends exactly one subscription-id header before any message, and is registered by then", async () => {
    t = await startTestServer();
    const s = openStream(t.client, "c1");
    await eventually(() => s.header(), 5000, "headers");
    expect(s.header()?.get("subscription-id")).toMatch(/^[0-9a-f-]{36}$/);
    // Registered before the header was sent: an event published right now is delivered.
    expect(t.backend.sink?.publish(workEvent("c1", "u1", 1))).toBe(1);
    await eventually(() => s.events().length === 1, 5000, "event");
    expect(s.headerBeforeFirstMessage()).toBe(true);
    expect(isHeartbeat(s.received[0] as PbCloudEvent)).toBe(true);
  });

  it("sends heartbeats on every stream at the configured interval", async () => {
    t = await startTestServer({ heartbeatIntervalMs: 100 });
    const s = openStream(t.client, "c1");
    await eventually(() => s.received.filter(isHeartbeat).length >= 4, 3000, "heartbeats");
    const beat = s.received[1] as PbCloudEvent;
    expect(beat.specVersion).toBe("1.0");
    expect(Object.keys(beat.attributes)).toHaveLength(0);
  });

  it("accepts a data type no backend serves (heartbeats only)", async () => {
    t = await startTestServer();
    const s = openStream(t.client, "c1", "example.com.v1.widgets");
    await eventually(() => s.header(), 5000, "headers");
    expect(t.broker.subscriberCount).toBe(1);
  });

  it("routes by (cluster, data type) only, to every stream of that key", async () => {
    t = await startTestServer();
    const a1 = openStream(t.client, "c1");
    const a2 = openStream(t.client, "c1");
    const b = openStream(t.client, "c2");
    const other = openStream(t.client, "c1", DataTypes.leases);
    await eventually(() => t.broker.subscriberCount === 4, 5000, "4 subscribers");
    expect(t.backend.sink?.publish(workEvent("c1", "u1", 1))).toBe(2);
    await eventually(() => a1.events().length === 1 && a2.events().length === 1, 5000, "both c1 streams");
    expect(t.backend.sink?.publish(workEvent("nobody", "u2", 1))).toBe(0);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.events()).toHaveLength(0);
    expect(other.events()).toHaveLength(0);
    expect(stringExtension(fromProto(a1.events()[0] as PbCloudEvent), Extension.resourceId)).toBe("u1");
  });

  it("unregisters a stream the agent cancels", async () => {
    t = await startTestServer();
    const s = openStream(t.client, "c1");
    await eventually(() => t.broker.subscriberCount === 1, 5000, "subscriber");
    s.cancel();
    await eventually(() => t.broker.subscriberCount === 0, 5000, "unsubscribe");
    expect(t.broker.subscribedClusters()).toEqual([]);
  });

  it("ends streams with Unavailable (never Canceled) when the server stops", async () => {
    t = await startTestServer();
    const s = openStream(t.client, "c1");
    await eventually(() => t.broker.subscriberCount === 1, 5000, "subscriber");
    await t.server.close(1000);
    const err = await rpcError(s.done);
    expect(err.code).toBe(Code.Unavailable);
  });
});

describe("Publish (protocol.md §5.4, §5.5)", () => {
  it("dispatches a status update to the backend with its attributes", async () => {
    t = await startTestServer();
    const msg = agentMessage(statusType, "c1", { originalsource: "kube", resourceid: "u1", resourceversion: 2, sequenceid: "1" }, { conditions: null });
    await t.client.publish({ event: msg });
    expect(t.backend.handled).toHaveLength(1);
    const { event } = t.backend.handled[0]!;
    expect(integerExtension(event, Extension.resourceVersion)).toBe(2);
    expect(stringExtension(event, Extension.originalSource)).toBe("kube");
  });

  it.each([
    ["a request without an event", undefined, /failed to convert protobuf to cloudevent: missing event/],
    ["an event without attributes", create(CloudEventSchema, { id: "1", source: "s", specVersion: "1.0", type: statusType }), /failed to convert protobuf to cloudevent: unknown Message encoding/],
    ["an empty event", create(CloudEventSchema), /failed to convert protobuf to cloudevent/],
    ["an unparsable type", agentMessage("not.a.type", "c1"), /failed to parse cloud event type not\.a\.type, unsupported cloudevents type format/],
    ["a bad subresource", agentMessage(`${MB}.meta.update_request`, "c1"), /unsupported subresource meta/],
    ["an unserved data type", agentMessage("example.com.v1.widgets.status.update_request", "c1"), /failed to find service for event type example\.com\.v1\.widgets/],
  ])("refuses %s with InvalidArgument", async (_what, event, message) => {
    t = await startTestServer();
    const err = await rpcError(t.client.publish(event === undefined ? {} : { event }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(message);
    expect(t.backend.handled).toHaveLength(0);
  });

  it("refuses an event without ce-clustername", async () => {
    t = await startTestServer();
    const msg = agentMessage(statusType, "c1");
    delete msg.attributes["ce-clustername"];
    const err = await rpcError(t.client.publish({ event: msg }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/failed to get clustername extension/);
  });

  it("returns backend refusals as FailedPrecondition with the Kubernetes StatusError JSON", async () => {
    t = await startTestServer();
    t.backend.failWith = BackendError.of("AlreadyExists", 'managedclusters "c1" already exists', { name: "c1", kind: "managedclusters" });
    const err = await rpcError(t.client.publish({ event: agentMessage(statusType, "c1", { resourceid: "u1" }) }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(JSON.parse(err.rawMessage)).toEqual({
      ErrStatus: {
        kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure",
        message: 'managedclusters "c1" already exists', reason: "AlreadyExists",
        details: { name: "c1", kind: "managedclusters" }, code: 409,
      },
    });
  });

  it("returns unexpected backend failures as an InternalError StatusError, without internals", async () => {
    t = await startTestServer();
    t.backend.failWith = new Error("connection to db at 10.0.0.1 refused");
    const err = await rpcError(t.client.publish({ event: agentMessage(statusType, "c1", { resourceid: "u1" }) }));
    expect(err.code).toBe(Code.FailedPrecondition);
    const status = JSON.parse(err.rawMessage).ErrStatus;
    expect(status).toMatchObject({ reason: "InternalError", code: 500 });
    expect(err.rawMessage).not.toMatch(/10\.0\.0\.1/);
  });
});

describe("spec resync (protocol.md §5.6, HEAD semantics)", () => {
  const resync = (cluster: string, versions: Array<[string, number]>) =>
    agentMessage(resyncType, cluster, {}, { resourceVersions: versions.map(([resourceID, resourceVersion]) => ({ resourceID, resourceVersion })) });

  it("sends newer, version-0 and deleting resources, skips equal or older ones, and deletes unknown IDs", async () => {
    t = await startTestServer();
    const s = openStream(t.client, "c1");
    const other = openStream(t.client, "c1");
    await eventually(() => t.broker.subscriberCount === 2, 5000, "subscribers");
    const deleting = workEvent("c1", "gone-soon", 3, { [Extension.deletionTimestamp]: timestampNow() });
    t.backend.listed = [workEvent("c1", "same", 2), workEvent("c1", "newer", 5), workEvent("c1", "older", 1), workEvent("c1", "zero", 0), deleting];
    const listedTypes = t.backend.listed.map((e) => e.type);
    await t.client.publish({ event: resync("c1", [["same", 2], ["newer", 4], ["older", 3], ["gone-soon", 3], ["unknown", 7]]) });
    await eventually(() => s.events().length === 4 && other.events().length === 4, 5000, "resync responses on both streams");
    const events = s.events().map((m) => fromProto(m));
    expect(events.every((e) => e.type === `${MB}.spec.resync_response`)).toBe(true);
    expect(events.map((e) => stringExtension(e, Extension.resourceId)).sort()).toEqual(["gone-soon", "newer", "unknown", "zero"]);
    const synthesized = events.find((e) => e.extensions[Extension.resourceId] === "unknown")!;
    expect(synthesized.extensions[Extension.deletionTimestamp]).toBeDefined();
    // Work agents refuse manifestbundle events without an integer resourceversion (gotcha 14).
    expect(s.events().find((m) => m.attributes["ce-resourceid"]?.attr.value === "unknown")?.attributes["ce-resourceversion"]?.attr)
      .toEqual({ case: "ceInteger", value: 7 });
    expect(t.backend.listCalls).toEqual([{ clusterName: "c1", dataType: MB }]);
    expect(t.backend.listed.map((e) => e.type)).toEqual(listedTypes); // listed events are not mutated
  });

  it("still deletes everything the agent has when the backend lists nothing", async () => {
    t = await startTestServer();
    const s = openStream(t.client, "c1");
    await eventually(() => t.broker.subscriberCount === 1, 5000, "subscriber");
    await t.client.publish({ event: resync("c1", [["a", 1], ["b", 2]]) });
    await eventually(() => s.events().length === 2, 5000, "two deletions");
  });

  it("answers a resync that arrived before its stream once the stream subscribes (sdk-go v1.1.0 race)", async () => {
    t = await startTestServer();
    t.backend.listed = [workEvent("c1", "u1", 1)];
    await t.client.publish({ event: resync("c1", []) });
    const s = openStream(t.client, "c1");
    await eventually(() => s.events().length === 1, 5000, "replayed resync");
  });

  it.each([
    ["no data", () => agentMessage(resyncType, "c1"), /failed to respond resync spec request: failed to unmarshal spec resync request payload: unexpected end of JSON input/],
    ["invalid JSON", () => { const m = agentMessage(resyncType, "c1"); m.data = { case: "binaryData", value: new TextEncoder().encode("{nope") }; return m; }, /failed to unmarshal spec resync request payload/],
    ["a bad version", () => agentMessage(resyncType, "c1", {}, { resourceVersions: [{ resourceID: "a", resourceVersion: "1" }] }), /resourceVersion is not an integer/],
    ["an unserved data type", () => agentMessage("example.com.v1.widgets.spec.resync_request", "c1", {}, { resourceVersions: [] }), /failed to find service for event type example\.com\.v1\.widgets/],
  ])("refuses a resync with %s with FailedPrecondition", async (_what, make, message) => {
    t = await startTestServer();
    const err = await rpcError(t.client.publish({ event: make() }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(message);
  });
});

describe("bad input leaves the server and other streams unharmed", () => {
  it("refuses a 5 MiB event with ResourceExhausted and keeps serving", async () => {
    t = await startTestServer();
    const s = openStream(t.client, "c1");
    await eventually(() => t.broker.subscriberCount === 1, 5000, "subscriber");
    const big = agentMessage(statusType, "c1", { resourceid: "u1", resourceversion: 1 });
    big.data = { case: "binaryData", value: new Uint8Array(5 * 1024 * 1024) };
    const err = await rpcError(t.client.publish({ event: big }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(t.backend.handled).toHaveLength(0);
    t.backend.sink?.publish(workEvent("c1", "after", 1));
    await eventually(() => s.events().length === 1, 5000, "event after the bad publish");
    await t.client.publish({ event: agentMessage(statusType, "c1", { resourceid: "u1", resourceversion: 1 }) });
    expect(t.backend.handled).toHaveLength(1);
  });

  it("drops a spec event larger than agents accept instead of breaking the stream", async () => {
    t = await startTestServer({ maxSendBytes: 1024 * 1024 });
    const s = openStream(t.client, "c1");
    await eventually(() => t.broker.subscriberCount === 1, 5000, "subscriber");
    const huge = workEvent("c1", "huge", 1);
    huge.data = new Uint8Array(2 * 1024 * 1024);
    expect(t.backend.sink?.publish(huge)).toBe(0);
    t.backend.sink?.publish(workEvent("c1", "small", 1));
    await eventually(() => s.events().length === 1, 5000, "the small event");
    expect(s.events()[0]?.attributes["ce-resourceid"]?.attr.value).toBe("small");
  });

  it("generates distinct subscription ids", async () => {
    t = await startTestServer();
    const streams = [openStream(t.client, "c1"), openStream(t.client, "c1")];
    await eventually(() => streams.every((s) => s.header()), 5000, "headers");
    const ids = streams.map((s) => s.header()?.get("subscription-id"));
    expect(new Set(ids).size).toBe(2);
    expect(ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id ?? ""))).toBe(true);
  });
});
