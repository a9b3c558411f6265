import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CloudEventService, DataTypes, Extension, newEvent, toProto } from "@ocm-conductor/protocol";
import { Broker, MemoryWorkBackend } from "@ocm-conductor/router";
import { eventually } from "@ocm-conductor/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { defaultConfig } from "../config.js";
import { startGrpcServer, type RunningGrpcServer } from "../transport/grpc-server.js";
import { GrpcMetrics } from "./grpc-metrics.js";

let server: RunningGrpcServer | undefined;
afterEach(async () => {
  await server?.close(500);
  server = undefined;
});

async function setUp() {
  const metrics = new GrpcMetrics();
  const broker = new Broker({ heartbeatIntervalMs: 0 });
  const works = new MemoryWorkBackend("kube");
  broker.registerBackend(DataTypes.manifestBundles, works);
  server = await startGrpcServer({
    config: { ...defaultConfig().grpc, port: 0 }, broker,
    interceptors: [metrics.interceptor()], onConnection: (s) => metrics.trackConnection(s),
  });
  const client = createClient(CloudEventService, createGrpcTransport({ baseUrl: server.url }));
  /** The value of one series, or undefined when it is absent. */
  const value = async (name: string, labels: Record<string, string>) => {
    const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
    const match = (metric?.values as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> | undefined)
      ?.find((v) => (v.metricName === undefined || v.metricName === name || v.metricName === `${name}_count`) && Object.entries(labels).every(([k, l]) => v.labels[k] === l));
    return match?.value;
  };
  return { metrics, client, works, value };
}

const ce = (method: string) => ({ consumer: "c1", data_type: DataTypes.manifestBundles, method });

describe("GrpcMetrics (upstream names, protocol.md §9.3)", () => {
  it("counts Subscribe and Publish with the CloudEvents labels and the gRPC server series", async () => {
    const { client, works, value } = await setUp();
    const abort = new AbortController();
    const stream = client.subscribe({ clusterName: "c1", dataType: DataTypes.manifestBundles }, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    await it.next(); // the immediate heartbeat
    expect(await value("grpc_server_ce_subscribers", { consumer: "c1", data_type: DataTypes.manifestBundles })).toBe(1);
    expect(await value("grpc_server_active_connections", {})).toBe(1);
    works.create("c1", "w1", { manifests: [] });
    await it.next();
    expect(await value("grpc_server_ce_msg_sent_total", ce("Subscribe"))).toBe(2);
    expect(await value("grpc_server_ce_called_total", ce("Subscribe"))).toBe(1);

    const status = newEvent({
      type: `${DataTypes.manifestBundles}.status.update_request`, source: "c1-work-agent", clusterName: "c1",
      extensions: { [Extension.resourceId]: "nope", [Extension.resourceVersion]: 1 }, data: { conditions: [] },
    });
    await client.publish({ event: toProto(status) });
    expect(await value("grpc_server_ce_processed_total", { ...ce("Publish"), grpc_code: "OK" })).toBe(1);
    expect(await value("grpc_server_ce_processing_duration_seconds", { ...ce("Publish"), grpc_code: "OK" })).toBe(1);
    expect(await value("grpc_server_handled_total", { grpc_type: "unary", grpc_service: "io.cloudevents.v1.CloudEventService", grpc_method: "Publish", grpc_code: "OK" })).toBe(1);
    expect(await value("grpc_server_msg_received_bytes_total", { grpc_method: "Publish" })).toBeGreaterThan(100);

    abort.abort();
    await eventually(async () => (await value("grpc_server_ce_subscribers", { consumer: "c1", data_type: DataTypes.manifestBundles })) === 0, 5000, "subscriber gauge back to 0");
    // The Go broker returns nil when the agent goes away, so the stream is counted as OK.
    expect(await value("grpc_server_handled_total", { grpc_type: "server_stream", grpc_method: "Subscribe", grpc_code: "OK" })).toBe(1);
  });

  it("labels a Publish it cannot read `unknown`, with its error code", async () => {
    const { client, value } = await setUp();
    await client.publish({ event: { id: "1", source: "s", specVersion: "1.0", type: "garbage", attributes: {} } }).catch(() => {});
    expect(await value("grpc_server_ce_processed_total", { consumer: "unknown", data_type: "unknown", method: "Publish", grpc_code: "InvalidArgument" })).toBe(1);
  });
});
