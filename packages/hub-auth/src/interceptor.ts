import { Code, ConnectError, type Interceptor, type StreamRequest } from "@connectrpc/connect";
import { CloudEventService, type PublishRequest, type SubscriptionRequest } from "@ocm-conductor/protocol";
import { kIdentity } from "@ocm-conductor/router";
import type { HubAuth } from "./hub-auth.js";
import { kTlsPeer } from "./tls-peer.js";

/**
 * The Connect interceptor that puts {@link HubAuth} in front of the broker: every call of
 * `io.cloudevents.v1.CloudEventService` is authenticated (the identity goes into the context under
 * the router's `kIdentity`, so backends see it), then a Publish is authorized per call and a
 * Subscribe once, on its request, which is then replayed to the handler unchanged. Other services
 * (health, the internal BackendService) pass through untouched.
 *
 * Install it after the metrics interceptor (`interceptors: [metrics, auth]`) so refusals are counted.
 */
export function createAuthInterceptor(auth: HubAuth): Interceptor {
  return (next) => async (req) => {
    if (req.service.typeName !== CloudEventService.typeName) return next(req);
    const identity = await auth.authenticate(req.header, req.contextValues.get(kTlsPeer));
    req.contextValues.set(kIdentity, identity);
    if (!req.stream) {
      if (req.method.name !== "Publish") throw new ConnectError(`no authorizer found for ${req.method.name}`, Code.Unauthenticated);
      await auth.authorizePublish(identity, (req.message as PublishRequest).event);
      return next(req);
    }
    if (req.method.name !== "Subscribe") throw new ConnectError(`no authorizer found for ${req.method.name}`, Code.Unauthenticated);
    const input = req.message[Symbol.asyncIterator]();
    const first = await input.next();
    if (first.done === true) return next({ ...req, message: (async function* () {})() } as StreamRequest);
    const subscription = first.value as SubscriptionRequest;
    await auth.authorizeSubscribe(identity, subscription);
    // The handler gets exactly the request that was authorized, then whatever else the client sent
    // (connect refuses a second message on a server-streaming call).
    const replay = (async function* () {
      yield subscription;
      for (;;) {
        const more = await input.next();
        if (more.done === true) return;
        yield more.value;
      }
    })();
    return next({ ...req, message: replay } as StreamRequest);
  };
}
