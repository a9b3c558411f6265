/** A connect-node gRPC client of the conductor (as `conductor ctl subscribe` is), and a raw HTTP/2 Subscribe that never reads. */
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CloudEventService, DataTypes, HEARTBEAT_TYPE, SubscriptionRequestSchema, fromProto, type CloudEvent } from "@ocm-conductor/protocol";

export type CeClient = Client<typeof CloudEventService>;

export function ceClient(grpcUrl: string): CeClient {
  return createClient(CloudEventService, createGrpcTransport({ baseUrl: grpcUrl }));
}

export interface Received { event: CloudEvent; at: number }

/** A reading subscriber: every non-heartbeat event with its arrival time. */
export class Subscriber {
  readonly received: Received[] = [];
  readonly done: Promise<unknown>;
  private readonly abort = new AbortController();

  constructor(client: CeClient, clusterName: string, dataType: string = DataTypes.manifestBundles) {
    this.done = (async () => {
      for await (const m of client.subscribe({ clusterName, dataType }, { signal: this.abort.signal })) {
        if (m.type === HEARTBEAT_TYPE) continue; // no attributes: not an OCM event
        const event = fromProto(m);
        this.received.push({ event, at: Date.now() });
      }
    })().catch((err: unknown) => err);
  }

  close(): void {
    this.abort.abort();
  }
}

/** Opens a Subscribe on its own HTTP/2 connection and never reads from it (copied from apps/conductor/test/backpressure.test.ts). */
export function openStuckStream(url: string, clusterName: string): { session: http2.ClientHttp2Session; ended: Promise<{ rstCode: number; grpcStatus: string | undefined; at: number }> } {
  const session = http2.connect(url);
  session.on("error", () => {});
  const body = toBinary(SubscriptionRequestSchema, create(SubscriptionRequestSchema, { clusterName, dataType: DataTypes.manifestBundles }));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  const req = session.request({ ":method": "POST", ":path": "/io.cloudevents.v1.CloudEventService/Subscribe", "content-type": "application/grpc", te: "trailers" });
  req.end(frame);
  req.pause();
  req.on("error", () => {});
  const ended = new Promise<{ rstCode: number; grpcStatus: string | undefined; at: number }>((resolve) => {
    let grpcStatus: string | undefined;
    req.on("trailers", (t) => (grpcStatus = String(t["grpc-status"])));
    req.on("close", () => resolve({ rstCode: req.rstCode ?? 0, grpcStatus, at: Date.now() }));
  });
  return { session, ended };
}
