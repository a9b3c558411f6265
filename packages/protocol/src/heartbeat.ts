import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { CloudEventSchema, type CloudEvent as PbCloudEvent } from "./gen/io/cloudevents/v1/cloudevent_pb.js";
import { SPEC_VERSION } from "./cloud-event.js";
import { HEARTBEAT_TYPE } from "./event-type.js";

/**
 * Builds a heartbeat message: spec version, a UUID id and the heartbeat type, nothing else
 * (protocol.md §2.4 Example F). It is the only event sent without attributes: agents recognise it
 * by type before decoding.
 */
export function heartbeatMessage(): PbCloudEvent {
  return create(CloudEventSchema, { id: randomUUID(), specVersion: SPEC_VERSION, type: HEARTBEAT_TYPE });
}
