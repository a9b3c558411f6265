import * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, ServingStatus } from "@ocm-conductor/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { eventually, openStream, startTestServer, workEvent, type TestServer } from "./support.js";

let t: TestServer;
const sessions: http2.ClientHttp2Session[] = [];
afterEach(async () => {
  sessions.splice(0).forEach((s) => s.destroy());
  await t?.close();
});

/** Sends raw bytes as a gRPC request body and returns the status the server answers with. */
async function rawCall(url: string, path: string, body: Buffer, contentType = "application/grpc") {
  const session = http2.connect(url);
  sessions.push(session);
  const req = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
  req.end(body);
  let headers: http2.IncomingHttpHeaders = {};
  let trailers: http2.IncomingHttpHeaders = {};
  req.on("response", (h) => (headers = h));
  req.on("trailers", (h) => (trailers = h));
  req.resume();
  await new Promise((resolve) => req.on("close", resolve));
  return { httpStatus: headers[":status"], grpcStatus: trailers["grpc-status"] ?? headers["grpc-status"], message: trailers["grpc-message"] ?? headers["grpc-message"] };
}

function frame(payload: Buffer, declaredLength = payload.length): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out.writeUInt32BE(declaredLength, 1);
  payload.copy(out, 5);
  return out;
}

describe("hostile bytes on the wire", () => {
  it.each([
    // Internal, as grpc-go answers a request it cannot unmarshal.
    ["garbage protobuf", frame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a])), "13"],
    ["a truncated frame", frame(Buffer.from([0x0a, 0x02]), 100), "3"],
    ["a frame claiming 5 MiB", frame(Buffer.alloc(16), 5 * 1024 * 1024), "8"],
  ])("answers %s on Publish with a gRPC status and keeps serving", async (_what, body, code) => {
    t = await startTestServer();
    const s = openStream(t.client, "c1");
    await eventually(() => t.broker.subscriberCount === 1, 5000, "subscriber");
    const res = await rawCall(t.server.url, "/io.cloudevents.v1.CloudEventService/Publish", body);
    expect(res.grpcStatus).toBe(code);
    t.backend.sink!.publish(workEvent("c1", "u1", 1));
    await eventually(() => s.events().length === 1, 5000, "delivery after bad input");
    expect(t.backend.handled).toHaveLength(0);
  });

  it("refuses a non-gRPC content type and unknown methods", async () => {
    t = await startTestServer();
    const json = await rawCall(t.server.url, "/io.cloudevents.v1.CloudEventService/Publish", Buffer.from("{}"), "application/json");
    expect(json.httpStatus).toBe(415);
    const unknown = await rawCall(t.server.url, "/io.cloudevents.v1.CloudEventService/Nope", frame(Buffer.alloc(0)));
    expect(unknown.httpStatus).toBe(404);
    const health = createClient(Health, createGrpcTransport({ baseUrl: t.server.url }));
    expect((await health.check({})).status).toBe(ServingStatus.SERVING);
  });
});

describe("grpc.health.v1.Health on the same port", () => {
  it("serves Check for the server and the CloudEvent service, NotFound otherwise", async () => {
    t = await startTestServer();
    const health = createClient(Health, createGrpcTransport({ baseUrl: t.server.url }));
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    expect((await health.check({ service: "io.cloudevents.v1.CloudEventService" })).status).toBe(ServingStatus.SERVING);
    const err = await health.check({ service: "nope" }).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.NotFound);
  });

  it("streams NOT_SERVING to Watch when the server shuts down", async () => {
    t = await startTestServer();
    const health = createClient(Health, createGrpcTransport({ baseUrl: t.server.url }));
    const seen: ServingStatus[] = [];
    const watching = (async () => {
      for await (const r of health.watch({ service: "" })) seen.push(r.status);
    })().catch(() => {});
    await eventually(() => seen.length === 1, 5000, "first status");
    const closing = t.server.close(2000);
    await eventually(() => seen.includes(ServingStatus.NOT_SERVING), 5000, "NOT_SERVING");
    await closing;
    await watching;
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  });
});

describe("connection management", () => {
  it("pings connections at the server ping interval", async () => {
    t = await startTestServer({}, { serverPingIntervalMs: 100, serverPingTimeoutMs: 1000 });
    const session = http2.connect(t.server.url);
    sessions.push(session);
    let pings = 0;
    session.on("ping", () => pings++);
    await eventually(() => pings >= 3, 3000, "three server pings");
  });

  it("sends GOAWAY at the max connection age, which makes agents reconnect", async () => {
    t = await startTestServer({}, { maxConnectionAgeMs: 200, maxConnectionAgeGraceMs: 500 });
    const session = http2.connect(t.server.url);
    sessions.push(session);
    const goaway = new Promise<number>((resolve) => session.on("goaway", (code) => resolve(code)));
    session.on("error", () => {});
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await eventually(() => t.server.connectionCount() === 0, 3000, "connection closed");
  });
});
