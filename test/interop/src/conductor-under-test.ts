import { defaultConfig, startGrpcServer, type RunningGrpcServer } from "@ocm-conductor/conductor";
import { DataTypes } from "@ocm-conductor/protocol";
import { Broker, MemoryWorkBackend } from "@ocm-conductor/router";

/** A subscription the broker registered. */
export interface SubscriptionRecord {
  id: string;
  cluster: string;
  dataType: string;
  at: number;
}

/**
 * The conductor as the agents see it: the real gRPC transport and broker on a loopback port, with
 * the in-memory work backend as the source of truth. `restart()` stops the server and serves the
 * same backend again on the same port, as a process restart would.
 */
export class ConductorUnderTest {
  readonly works = new MemoryWorkBackend("kube");
  readonly subscriptions: SubscriptionRecord[] = [];
  broker!: Broker;
  server!: RunningGrpcServer;
  private port = 0;

  constructor(private readonly heartbeatIntervalMs: number) {}

  /** `host:port` for agents. */
  get address(): string {
    return `127.0.0.1:${this.server.port}`;
  }

  async start(): Promise<this> {
    this.broker = new Broker({
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      observer: {
        subscribed: (s) => this.subscriptions.push({ id: s.id, cluster: s.clusterName, dataType: s.dataType, at: Date.now() }),
      },
    });
    this.broker.registerBackend(DataTypes.manifestBundles, this.works);
    this.server = await startGrpcServer({ config: { ...defaultConfig().grpc, port: this.port }, broker: this.broker });
    this.port = this.server.port;
    return this;
  }

  async restart(downMs = 0): Promise<void> {
    await this.server.close(1000);
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.start();
  }

  /** Subscriptions registered for a cluster so far. */
  subscriptionsOf(cluster: string): SubscriptionRecord[] {
    return this.subscriptions.filter((s) => s.cluster === cluster);
  }

  isSubscribed(cluster: string): boolean {
    return this.broker.subscribedClusters().includes(cluster);
  }

  async stop(): Promise<void> {
    await this.server?.close(1000);
  }
}

export { eventually } from "@ocm-conductor/test-harness";

/** A one-ConfigMap bundle; `data` distinguishes versions. */
export function configMapBundle(name: string, data: Record<string, string> = { a: "b" }) {
  return { manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "default" }, data }] };
}
