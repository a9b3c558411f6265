import type { Http2Session } from "node:http2";
import { toBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import {
  CloudEventService,
  Extension,
  formatDataType,
  fromProto,
  parseEventType,
  stringExtension,
  type PbCloudEvent,
  type SubscriptionRequest,
} from "@ocm-conductor/protocol";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** grpc-go's `codes.Code.String()` names, the values of the `grpc_code` label. */
const GRPC_CODE_NAMES: Record<number, string> = {
  0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded", 5: "NotFound", 6: "AlreadyExists",
  7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition", 10: "Aborted", 11: "OutOfRange",
  12: "Unimplemented", 13: "Internal", 14: "Unavailable", 15: "DataLoss", 16: "Unauthenticated",
};

const GRPC_TYPES: Record<string, string> = { unary: "unary", server_streaming: "server_stream", client_streaming: "client_stream", bidi_streaming: "bidi_stream" };

/** Prometheus' `ExponentialBuckets(1e-6, 10, 10)`, as sdk-go uses for both histograms. */
const BUCKETS = Array.from({ length: 10 }, (_, i) => 1e-6 * 10 ** i);

/**
 * The conductor's Prometheus metrics, named and labelled exactly as the Go server exports them
 * (protocol.md §9.3), so existing OCM dashboards keep working: the general gRPC server series
 * (go-grpc-middleware's and sdk-go's) and the CloudEvents series `grpc_server_ce_*` (which OCM
 * registers and the Go conductor does not). Fed by a Connect interceptor and the HTTP/2 sessions.
 */
export class GrpcMetrics {
  /** The registry to serve at `/metrics` (process metrics included). */
  readonly registry: Registry;
  private readonly m;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    collectDefaultMetrics({ register: registry });
    const rpc = ["grpc_type", "grpc_service", "grpc_method"] as const;
    const ce = ["consumer", "data_type", "method"] as const;
    const registers = [registry];
    this.m = {
      connections: new Gauge({ name: "grpc_server_active_connections", help: "Number of active gRPC server connections.", labelNames: ["remote_addr", "local_addr"], registers }),
      receivedBytes: new Counter({ name: "grpc_server_msg_received_bytes_total", help: "Total bytes of messages received by the gRPC server.", labelNames: rpc, registers }),
      sentBytes: new Counter({ name: "grpc_server_msg_sent_bytes_total", help: "Total bytes of messages sent by the gRPC server.", labelNames: rpc, registers }),
      started: new Counter({ name: "grpc_server_started_total", help: "Total number of RPCs started on the server.", labelNames: rpc, registers }),
      handled: new Counter({ name: "grpc_server_handled_total", help: "Total number of RPCs completed on the server, regardless of success or failure.", labelNames: [...rpc, "grpc_code"], registers }),
      received: new Counter({ name: "grpc_server_msg_received_total", help: "Total number of RPC stream messages received on the server.", labelNames: rpc, registers }),
      sent: new Counter({ name: "grpc_server_msg_sent_total", help: "Total number of gRPC stream messages sent by the server.", labelNames: rpc, registers }),
      handling: new Histogram({ name: "grpc_server_handling_seconds", help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.", labelNames: rpc, buckets: BUCKETS, registers }),
      ceSubscribers: new Gauge({ name: "grpc_server_ce_subscribers", help: "Current number of subscribers.", labelNames: ["consumer", "data_type"], registers }),
      ceCalled: new Counter({ name: "grpc_server_ce_called_total", help: "Total number of RPC requests called on the server.", labelNames: ce, registers }),
      ceReceived: new Counter({ name: "grpc_server_ce_msg_received_total", help: "Total number of messages received on the server.", labelNames: ce, registers }),
      ceSent: new Counter({ name: "grpc_server_ce_msg_sent_total", help: "Total number of messages sent by the server.", labelNames: ce, registers }),
      ceProcessed: new Counter({ name: "grpc_server_ce_processed_total", help: "Total number of RPC requests processed on the server, regardless of success or failure.", labelNames: [...ce, "grpc_code"], registers }),
      ceDuration: new Histogram({ name: "grpc_server_ce_processing_duration_seconds", help: "Histogram of the duration of RPC requests processed on the server.", labelNames: [...ce, "grpc_code"], buckets: BUCKETS, registers }),
    };
  }

  /** Counts an HTTP/2 connection in `grpc_server_active_connections` until it closes. */
  trackConnection(session: Http2Session): void {
    const labels = { remote_addr: address(session.socket?.remoteAddress, session.socket?.remotePort), local_addr: address(session.socket?.localAddress, session.socket?.localPort) };
    this.m.connections.inc(labels);
    session.once("close", () => this.m.connections.dec(labels));
  }

  /** The interceptor that feeds every RPC series; install it outermost so it sees every outcome. */
  interceptor(): Interceptor {
    return (next) => async (req) => {
      const rpc = { grpc_type: GRPC_TYPES[req.method.methodKind] ?? "unknown", grpc_service: req.service.typeName, grpc_method: req.method.name };
      const ceService = req.service.typeName === CloudEventService.typeName;
      const started = process.hrtime.bigint();
      this.m.started.inc(rpc);
      const done = (code: Code | 0, ce?: CeLabels) => {
        const codeName = GRPC_CODE_NAMES[code] ?? "Unknown";
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        this.m.handled.inc({ ...rpc, grpc_code: codeName });
        this.m.handling.observe(rpc, seconds);
        if (ce !== undefined) {
          this.m.ceProcessed.inc({ ...ce, grpc_code: codeName });
          if (ce.method === "Publish") this.m.ceDuration.observe({ ...ce, grpc_code: codeName }, seconds);
        }
      };
      if (!req.stream) {
        this.m.received.inc(rpc);
        this.m.receivedBytes.inc(rpc, size(req.method.input, req.message));
        const ce = ceService ? publishLabels(req.message as { event?: PbCloudEvent }) : undefined;
        if (ce !== undefined) {
          this.m.ceCalled.inc(ce);
          this.m.ceReceived.inc(ce);
        }
        try {
          const res = (await next(req)) as UnaryResponse;
          this.m.sent.inc(rpc);
          this.m.sentBytes.inc(rpc, size(req.method.output, res.message));
          if (ce !== undefined) this.m.ceSent.inc(ce);
          done(0, ce);
          return res;
        } catch (err) {
          done(ConnectError.from(err).code, ce);
          throw err;
        }
      }
      // Streaming: capture the (single, for Subscribe) request message while passing it on.
      let ce: CeLabels | undefined;
      const metrics = this.m;
      const input = req.message;
      const counted = (async function* () {
        for await (const message of input) {
          metrics.received.inc(rpc);
          metrics.receivedBytes.inc(rpc, size(req.method.input, message));
          if (ceService && req.method.name === "Subscribe") {
            const sub = message as SubscriptionRequest;
            ce = { consumer: sub.clusterName, data_type: sub.dataType, method: "Subscribe" };
            metrics.ceCalled.inc(ce);
            metrics.ceReceived.inc(ce);
          }
          yield message;
        }
      })();
      let res: StreamResponse;
      try {
        res = (await next({ ...req, message: counted })) as StreamResponse;
      } catch (err) {
        done(ConnectError.from(err).code, ce);
        throw err;
      }
      const output = res.message;
      const self = this;
      return {
        ...res,
        message: (async function* () {
          let subscribed: { consumer: string; data_type: string } | undefined;
          // Stays undefined when the stream is abandoned mid-way: the agent went away (Canceled).
          let code: Code | 0 | undefined;
          try {
            for await (const message of output) {
              if (ce !== undefined && subscribed === undefined) self.m.ceSubscribers.inc((subscribed = { consumer: ce.consumer, data_type: ce.data_type }));
              self.m.sent.inc(rpc);
              self.m.sentBytes.inc(rpc, size(req.method.output, message));
              if (ce !== undefined) self.m.ceSent.inc(ce);
              yield message;
            }
            code = 0;
          } catch (err) {
            code = ConnectError.from(err).code;
            throw err;
          } finally {
            // A Subscribe that never delivered its request is labelled with empty values, as in Go.
            done(code ?? Code.Canceled, ce ?? (ceService ? { consumer: "", data_type: "", method: "Subscribe" } : undefined));
            if (subscribed !== undefined) self.m.ceSubscribers.dec(subscribed);
          }
        })(),
      };
    };
  }
}

type CeLabels = { consumer: string; data_type: string; method: string };

/** Publish labels from the event; events too broken to read are labelled `unknown`, as in Go. */
function publishLabels(request: { event?: PbCloudEvent }): CeLabels {
  try {
    const event = fromProto(request.event!);
    return { consumer: stringExtension(event, Extension.clusterName), data_type: formatDataType(parseEventType(event.type)), method: "Publish" };
  } catch {
    return { consumer: "unknown", data_type: "unknown", method: "Publish" };
  }
}

function size(schema: DescMessage, message: unknown): number {
  try {
    return toBinary(schema, message as never).length;
  } catch {
    return 0;
  }
}

function address(host: string | undefined, port: number | undefined): string {
  if (host === undefined) return "";
  return host.includes(":") ? `[${host}]:${port ?? 0}` : `${host}:${port ?? 0}`;
}
