import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { CloudEventService, heartbeatMessage, type PbCloudEvent, type SubscriptionRequest } from "@ocm-conductor/protocol";
import type { Broker } from "./broker.js";
import { kIdentity, kStreamReset } from "./context-keys.js";

/** The response header agents of sdk-go ≥ v1.2 require on every Subscribe (protocol.md §1.4). */
export const SUBSCRIPTION_ID_HEADER = "subscription-id";

/**
 * Implements `io.cloudevents.v1.CloudEventService` on a {@link Broker}, for a Connect router.
 *
 * Subscribe registers the stream, sets `subscription-id`, and yields a heartbeat at once:
 * connect-node commits response headers together with the first message, and sdk-go ≥ v1.2 agents
 * block on the headers, so the immediate heartbeat is what sends them without waiting a heartbeat
 * interval. Agents divert heartbeats before decoding, so it costs them nothing.
 */
export function cloudEventServiceImpl(broker: Broker): ServiceImpl<typeof CloudEventService> {
  return {
    async publish(request, context) {
      const identity = context.values.get(kIdentity);
      await broker.publish(request.event, identity === undefined ? { signal: context.signal } : { identity, signal: context.signal });
      return {};
    },
    subscribe(request, context) {
      return subscribeStream(broker, request, context);
    },
  };
}

async function* subscribeStream(broker: Broker, request: SubscriptionRequest, context: HandlerContext): AsyncGenerator<PbCloudEvent> {
  const subscription = broker.subscribe(
    { clusterName: request.clusterName, dataType: request.dataType },
    context.values.get(kStreamReset),
  );
  const onAbort = () => subscription.close();
  context.signal.addEventListener("abort", onAbort, { once: true });
  try {
    context.responseHeader.set(SUBSCRIPTION_ID_HEADER, subscription.id);
    yield heartbeatMessage();
    for (;;) {
      const message = await subscription.next();
      if (message === undefined) return;
      yield message;
    }
  } finally {
    context.signal.removeEventListener("abort", onAbort);
    subscription.close();
  }
}

/** Registers the CloudEvent service of `broker` on a Connect router. */
export function registerCloudEventService(router: ConnectRouter, broker: Broker): void {
  router.service(CloudEventService, cloudEventServiceImpl(broker));
}
