import { create, toBinary } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  CloudEventService,
  DataTypes,
  Extension,
  HEARTBEAT_TYPE,
  PublishRequestSchema,
  newEvent,
  toProto,
  type CloudEvent,
  type PbCloudEvent,
} from "@ocm-conductor/protocol";
import { Broker, type Backend, type BrokerOptions, type ListOptions, type RequestContext, type SpecEventSink } from "@ocm-conductor/router";
import { defaultConfig, type GrpcServerConfig } from "../src/config.js";
import { startGrpcServer, type RunningGrpcServer } from "../src/transport/grpc-server.js";

/** A scriptable backend double for broker behaviour tests. */
export class ScriptedBackend implements Backend {
  sink: SpecEventSink | undefined;
  listed: CloudEvent[] = [];
  handled: Array<{ event: CloudEvent; context: RequestContext }> = [];
  listCalls: ListOptions[] = [];
  failWith: unknown;

  attach(sink: SpecEventSink): void {
    this.sink = sink;
  }
  list(options: ListOptions): Promise<CloudEvent[]> {
    this.listCalls.push(options);
    return Promise.resolve(this.listed);
  }
  handle(event: CloudEvent, context: RequestContext): Promise<void> {
    this.handled.push({ event, context });
    return this.failWith === undefined ? Promise.resolve() : Promise.reject(this.failWith);
  }
}

/** A conductor gRPC server on a free loopback port with one scripted manifestbundles backend. */
export interface TestServer {
  server: RunningGrpcServer;
  broker: Broker;
  backend: ScriptedBackend;
  client: Client<typeof CloudEventService>;
  close(): Promise<void>;
}

export async function startTestServer(
  brokerOptions: BrokerOptions = {},
  config: Partial<GrpcServerConfig> = {},
): Promise<TestServer> {
  const broker = new Broker({ heartbeatIntervalMs: 0, ...brokerOptions });
  const backend = new ScriptedBackend();
  broker.registerBackend(DataTypes.manifestBundles, backend);
  const server = await startGrpcServer({ config: { ...defaultConfig().grpc, port: 0, ...config }, broker });
  const transport = createGrpcTransport({ baseUrl: server.url });
  const client = createClient(CloudEventService, transport);
  return { server, broker, backend, client, close: () => server.close(1000) };
}

/** A manifestbundles spec event for `cluster`. */
export function workEvent(cluster: string, uid: string, generation: number, extra: Partial<CloudEvent["extensions"]> = {}): CloudEvent {
  return newEvent({
    type: `${DataTypes.manifestBundles}.spec.create_request`,
    source: "test",
    clusterName: cluster,
    extensions: { [Extension.resourceId]: uid, [Extension.resourceVersion]: generation, ...extra },
    data: { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "cm", namespace: "default" } }] },
  });
}

/** An agent-side event as protobuf, e.g. a status update or resync request. */
export function agentMessage(type: string, cluster: string, extensions: Record<string, string | number> = {}, data?: unknown): PbCloudEvent {
  return toProto(newEvent({ type, source: `${cluster}-work-agent`, clusterName: cluster, extensions, data }));
}

/** Serialized size of a Publish request, to build oversize requests precisely. */
export function publishSize(event: PbCloudEvent): number {
  return toBinary(PublishRequestSchema, create(PublishRequestSchema, { event })).length;
}

/** True for heartbeat messages. */
export const isHeartbeat = (m: PbCloudEvent) => m.type === HEARTBEAT_TYPE;

export { eventually } from "@ocm-conductor/test-harness";

/** Opens a Subscribe stream and collects what arrives. */
export function openStream(client: Client<typeof CloudEventService>, clusterName: string, dataType: string = DataTypes.manifestBundles) {
  const abort = new AbortController();
  const received: PbCloudEvent[] = [];
  let eventCount = 0;
  let header: Headers | undefined;
  let headerBeforeFirstMessage: boolean | undefined;
  const done = (async () => {
    const stream = client.subscribe({ clusterName, dataType }, {
      signal: abort.signal,
      onHeader: (h) => {
        header = h;
      },
    });
    for await (const message of stream) {
      headerBeforeFirstMessage ??= header !== undefined;
      received.push(message);
      if (!isHeartbeat(message)) eventCount++;
    }
  })();
  done.catch(() => {});
  return {
    received,
    events: () => received.filter((m) => !isHeartbeat(m)),
    eventCount: () => eventCount,
    header: () => header,
    headerBeforeFirstMessage: () => headerBeforeFirstMessage,
    done,
    cancel: () => abort.abort(),
  };
}
