import { randomUUID } from "node:crypto";
import { AuthenticationV1Api, CoreV1Api } from "@kubernetes/client-node";
import { DataTypes, Extension, eventDataJson, fromProto, newEvent, stringExtension, toProto, type CloudEvent } from "@ocm-conductor/protocol";
import { BackendError, Broker, type Subscription } from "@ocm-conductor/router";
import { startControlPlane, type ControlPlane } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeObject } from "./kube-object-codec.js";
import { KubeTokenRequestBackend } from "./token-request-backend.js";

let cp: ControlPlane;
let core: CoreV1Api;
let broker: Broker;
let backend: KubeTokenRequestBackend;
let c1: Subscription;
let c2: Subscription;
const signal = new AbortController().signal;

interface TokenRequest extends KubeObject {
  spec: { audiences?: string[]; expirationSeconds?: number };
  status?: { token?: string; expirationTimestamp?: string };
}

beforeAll(async () => {
  cp = await startControlPlane();
  core = cp.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of ["c1", "c2"]) await core.createNamespace({ body: { metadata: { name } } });
  await core.createNamespacedServiceAccount({ namespace: "c1", body: { metadata: { name: "addon-agent" } } });
  broker = new Broker({ heartbeatIntervalMs: 0 });
  backend = new KubeTokenRequestBackend({ kubeConfig: cp.kubeConfig });
  broker.registerBackend(DataTypes.tokenRequests, backend);
  c1 = broker.subscribe({ clusterName: "c1", dataType: DataTypes.tokenRequests });
  c2 = broker.subscribe({ clusterName: "c2", dataType: DataTypes.tokenRequests });
}, 180_000);

afterAll(async () => {
  broker?.close();
  await cp?.stop();
});

/** The request an sdk-go ≥ v1.2 agent publishes (serviceaccount client: uid = request ID, namespace = cluster). */
function tokenRequest(name = "addon-agent", namespace = "c1", uid: string = randomUUID()): TokenRequest {
  return { metadata: { name, namespace, uid, creationTimestamp: null }, spec: { expirationSeconds: 3600 } };
}
const publish = (request: TokenRequest, clusterName = "c1", action = "create_request"): CloudEvent =>
  newEvent({ type: `${DataTypes.tokenRequests}.spec.${action}`, source: `${clusterName}-agent`, clusterName, extensions: { resourceid: request.metadata.uid }, data: request });

/** The next event of a stream, or undefined when none arrives within `ms`. */
async function nextWithin(stream: Subscription, ms: number): Promise<CloudEvent | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const message = await Promise.race([stream.next(), new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  clearTimeout(timer);
  return message === undefined ? undefined : fromProto(message);
}

async function refusal(call: Promise<unknown>): Promise<BackendError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof BackendError) return err;
    throw err;
  }
  throw new Error("expected a BackendError");
}

describe("token requests (hub-services.md §2.7, protocol.md gotcha 34)", () => {
  it("answers on the cluster's token stream with a working token and the request's UID, and only there", async () => {
    const request = tokenRequest();
    await broker.publish(toProto(publish(request)), { signal });
    const response = await nextWithin(c1, 5_000);
    expect(response?.type).toBe(`${DataTypes.tokenRequests}.spec.create_request`);
    expect(response!.source).toBe("kube");
    expect(stringExtension(response!, Extension.clusterName)).toBe("c1");
    expect(response!.extensions[Extension.resourceId]).toBe(request.metadata.uid);
    const data = eventDataJson(response!) as TokenRequest;
    expect(data.metadata).toMatchObject({ uid: request.metadata.uid, name: "addon-agent" });
    expect(data.status?.expirationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    const review = await cp.kubeConfig.makeApiClient(AuthenticationV1Api).createTokenReview({ body: { spec: { token: data.status!.token! } } });
    expect(review.status?.authenticated).toBe(true);
    expect(review.status?.user?.username).toBe("system:serviceaccount:c1:addon-agent");
    expect(await nextWithin(c2, 300)).toBeUndefined();
  });

  it("clears the request UID before asking the API server, which would refuse it", async () => {
    const direct = core.createNamespacedServiceAccountToken({ name: "addon-agent", namespace: "c1", body: tokenRequest() as never });
    await expect(direct).rejects.toMatchObject({ code: 409, body: expect.stringMatching(/the UID in the token request .* does not match the UID of the service account/) });
    await backend.handle(publish(tokenRequest()), { signal });
    expect(await nextWithin(c1, 5_000)).toBeDefined();
  });

  it("passes a missing ServiceAccount's NotFound through, to the agent as FailedPrecondition", async () => {
    const err = await refusal(backend.handle(publish(tokenRequest("no-such-sa")), { signal }));
    expect(err.status).toMatchObject({ reason: "NotFound", code: 404, details: { name: "no-such-sa", kind: "serviceaccounts" } });
    const viaBroker = await broker.publish(toProto(publish(tokenRequest("no-such-sa"))), { signal }).then(() => undefined, (e: unknown) => e);
    expect(viaBroker).toMatchObject({ code: 9 }); // FailedPrecondition
    expect(JSON.parse((viaBroker as { rawMessage: string }).rawMessage)).toMatchObject({ ErrStatus: { reason: "NotFound", code: 404 } });
    expect(await nextWithin(c1, 200)).toBeUndefined();
  });

  it("lists nothing: token requests are never resynced", async () => {
    expect(await backend.list({ clusterName: "c1", dataType: DataTypes.tokenRequests })).toEqual([]);
  });

  it("refuses with ServiceUnavailable when no broker is attached", async () => {
    const detached = new KubeTokenRequestBackend({ kubeConfig: cp.kubeConfig });
    const err = await refusal(detached.handle(publish(tokenRequest()), { signal }));
    expect(err.status).toMatchObject({ reason: "ServiceUnavailable", code: 503 });
  });

  it.each([
    ["a ServiceAccount in another cluster's namespace", (e: CloudEvent) => { e.extensions[Extension.clusterName] = "c2"; }, /tokenRequest c1\/addon-agent is not in the namespace of cluster c2/],
    ["an unsupported action", (e: CloudEvent) => { e.type = `${DataTypes.tokenRequests}.spec.update_request`; }, /^unsupported action update_request for tokenRequest c1\/addon-agent$/],
    ["an unparseable type", (e: CloudEvent) => { e.type = "tokenrequests"; }, /^failed to parse cloud event type tokenrequests, /],
    ["malformed JSON", (e: CloudEvent) => { e.data = new TextEncoder().encode("{]"); }, /^failed to unmarshal event data, /],
    ["another kind", (e: CloudEvent) => { e.data = new TextEncoder().encode(JSON.stringify({ ...tokenRequest(), kind: "ServiceAccount" })); }, /has kind ServiceAccount, expected TokenRequest/],
  ])("refuses %s with BadRequest and answers nothing", async (_what, mutate, message) => {
    const event = publish(tokenRequest());
    mutate(event);
    const err = await refusal(backend.handle(event, { signal }));
    expect(err.status).toMatchObject({ reason: "BadRequest", code: 400 });
    expect(err.message).toMatch(message);
    expect(await nextWithin(c1, 100)).toBeUndefined();
    expect(await nextWithin(c2, 100)).toBeUndefined();
  });
});
