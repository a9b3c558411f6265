import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { CloudEventService, DataTypes, Health, HealthCheckResponseSchema, newEvent, toProto, type PbCloudEvent } from "@ocm-conductor/protocol";
import { Broker, MemoryWorkBackend, kIdentity, registerCloudEventService, type Identity } from "@ocm-conductor/router";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { HubAuth } from "./hub-auth.js";
import type { AccessReviewResult, HubReviewer, TokenReviewResult } from "./hub-reviewer.js";
import { createAuthInterceptor } from "./interceptor.js";
import type { ResourceAttributes } from "./sar-attributes.js";

/** A hub double: tokens by table, access by a predicate; records every call. */
class FakeHub implements HubReviewer {
  tokenCalls: string[] = [];
  accessCalls: Array<{ identity: Identity; attributes: ResourceAttributes }> = [];
  failAccess = false;
  failTokens = false;
  constructor(private readonly tokens: Record<string, Identity>, private readonly allow: (i: Identity, a: ResourceAttributes) => boolean) {}
  reviewToken(token: string): Promise<TokenReviewResult> {
    this.tokenCalls.push(token);
    if (this.failTokens) return Promise.reject(new Error("connection refused"));
    const identity = this.tokens[token];
    return Promise.resolve(identity === undefined ? { authenticated: false, reason: "unknown token" } : { authenticated: true, identity });
  }
  reviewAccess(identity: Identity, attributes: ResourceAttributes): Promise<AccessReviewResult> {
    this.accessCalls.push({ identity, attributes });
    if (this.failAccess) return Promise.reject(new Error("apiserver unavailable"));
    return Promise.resolve({ allowed: this.allow(identity, attributes), reason: "" });
  }
}

const agentA: Identity = { user: "agent-a", groups: ["system:open-cluster-management:c1"] };

function setup(cacheTtlMs = 10_000) {
  const hub = new FakeHub({ "token-a": agentA, "token-empty": { user: "", groups: [] } }, (i, a) => i.groups.includes(`system:open-cluster-management:${a.namespace}`));
  const auth = new HubAuth({ reviewer: hub, cacheTtlMs });
  const broker = new Broker({ heartbeatIntervalMs: 0 });
  const works = new MemoryWorkBackend("kube");
  broker.registerBackend(DataTypes.manifestBundles, works);
  const seen: Array<Identity | undefined> = [];
  const transport = createRouterTransport((router) => {
    registerCloudEventService(router, broker);
    router.service(Health, { check: () => create(HealthCheckResponseSchema, { status: 1 }) });
  }, { router: { interceptors: [createAuthInterceptor(auth), (next) => (req) => (seen.push(req.contextValues.get(kIdentity)), next(req))] } });
  const cloudEvents = createClient(CloudEventService, transport);
  /** A client sending `authorization: Bearer <token>`, or the raw `authorization` value given. */
  const client = (token?: string, raw?: string) => {
    const headers = raw !== undefined ? { authorization: raw } : token !== undefined ? { authorization: `Bearer ${token}` } : undefined;
    const options = headers === undefined ? {} : { headers };
    return {
      publish: (event: PbCloudEvent) => cloudEvents.publish({ event }, options),
      subscribe: (clusterName: string, dataType: string = DataTypes.manifestBundles) => cloudEvents.subscribe({ clusterName, dataType }, options),
    };
  };
  return { hub, auth, works, seen, client, health: createClient(Health, transport) };
}

const status = (cluster: string, extra: Partial<Parameters<typeof newEvent>[0]> = {}) =>
  toProto(newEvent({ type: `${DataTypes.manifestBundles}.status.update_request`, source: "agent", clusterName: cluster, extensions: { resourceid: "r1", resourceversion: 1 }, data: { conditions: [] }, ...extra }));

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return Code[ConnectError.from(err).code];
  }
}

async function firstMessage(stream: AsyncIterable<unknown>): Promise<unknown> {
  for await (const m of stream) return m;
  return undefined;
}

describe("HubAuth + interceptor", () => {
  it("authenticates a bearer token, puts the identity in the context and authorizes per cluster", async () => {
    const { client, works, seen, hub } = setup();
    expect(await code(client("token-a").publish(status("c1")))).toBe("ok");
    expect(seen.at(-1)).toEqual(agentA);
    expect(works.received).toHaveLength(1);
    expect(await code(client("token-a").publish(status("c2")))).toBe("PermissionDenied");
    expect(works.received).toHaveLength(1);
    expect(hub.accessCalls.map((c) => c.attributes)).toEqual([
      { namespace: "c1", verb: "update", group: "work.open-cluster-management.io", resource: "manifestworks", subresource: "status" },
      { namespace: "c2", verb: "update", group: "work.open-cluster-management.io", resource: "manifestworks", subresource: "status" },
    ]);
  });

  it("is Unauthenticated without credentials, with an unknown token, a lowercase `bearer` prefix, or when the TokenReview fails", async () => {
    const { client, hub, works } = setup();
    expect(await code(client().publish(status("c1")))).toBe("Unauthenticated");
    expect(await code(client("nope").publish(status("c1")))).toBe("Unauthenticated");
    expect(await code(firstMessage(client("nope").subscribe("c1")))).toBe("Unauthenticated");
    expect(await code(client(undefined, "bearer token-a").publish(status("c1")))).toBe("Unauthenticated");
    expect(await code(client(undefined, "Bearer ").publish(status("c1")))).toBe("Unauthenticated");
    // The rejection of "nope" is cached too; a lowercase prefix and an empty token never reach the hub.
    expect(hub.tokenCalls).toEqual(["nope"]);
    hub.failTokens = true;
    expect(await code(client("token-a").publish(status("c1")))).toBe("Unauthenticated");
    expect(works.received).toHaveLength(0);
  });

  it("denies an identity with neither user nor groups, an unsupported action, undecodable data and a failed review; InvalidArgument for an unreadable event", async () => {
    const { client, hub, works } = setup();
    expect(await code(client("token-empty").publish(status("c1")))).toBe("PermissionDenied");
    expect(await code(client("token-a").publish(toProto(newEvent({ type: `${DataTypes.manifestBundles}.status.resync_response`, source: "a", clusterName: "c1", data: {} }))))).toBe("PermissionDenied");
    expect(await code(client("token-a").publish(status("c1", { data: new TextEncoder().encode("{not json") })))).toBe("PermissionDenied");
    expect(await code(client("token-a").publish(toProto(newEvent({ type: "example.com.v1.things.spec.create_request", source: "a", clusterName: "c1" }))))).toBe("PermissionDenied");
    expect(await code(client("token-a").publish({ ...status("c1"), type: "nonsense" }))).toBe("InvalidArgument");
    const noCluster = status("c1");
    delete noCluster.attributes["ce-clustername"];
    expect(await code(client("token-a").publish(noCluster))).toBe("InvalidArgument");
    expect(hub.accessCalls).toHaveLength(0);
    hub.failAccess = true;
    expect(await code(client("token-a").publish(status("c1")))).toBe("PermissionDenied");
    expect(works.received).toHaveLength(0);
  });

  it("authorizes Subscribe once, on the request the handler then serves (watch in the cluster's namespace)", async () => {
    const { client, hub } = setup();
    expect(await code(firstMessage(client("token-a").subscribe("c2")))).toBe("PermissionDenied");
    const message = await firstMessage(client("token-a").subscribe("c1"));
    expect((message as PbCloudEvent).type).toBe("io.open-cluster-management.cloudevents.heartbeat");
    expect(hub.accessCalls.map((c) => [c.attributes.verb, c.attributes.namespace])).toEqual([["watch", "c2"], ["watch", "c1"]]);
    expect(await code(firstMessage(client("token-a").subscribe("c1", DataTypes.tokenRequests)))).toBe("ok");
    expect(hub.accessCalls.at(-1)!.attributes).toEqual({ namespace: "c1", verb: "subscribe", group: "", resource: "serviceaccounts", subresource: "token" });
  });

  it("lets other services through without credentials", async () => {
    const { health } = setup();
    expect((await health.check({})).status).toBe(1);
  });

  it("caches and coalesces reviews; TTL 0 calls the hub every time", async () => {
    const cached = setup(10_000);
    await Promise.all(Array.from({ length: 200 }, () => cached.client("token-a").publish(status("c1"))));
    expect(cached.hub.tokenCalls).toHaveLength(1);
    expect(cached.hub.accessCalls).toHaveLength(1);
    expect(cached.auth.stats.accessReviewCacheHits).toBe(199);
    const uncached = setup(0);
    await Promise.all(Array.from({ length: 20 }, () => uncached.client("token-a").publish(status("c1"))));
    expect(uncached.hub.tokenCalls).toHaveLength(20);
    expect(uncached.hub.accessCalls).toHaveLength(20);
  });
});
