import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  Action,
  DataTypes,
  Extension,
  SPEC_VERSION,
  eventTypeOf,
  hasExtension,
  integerExtension,
  stringExtension,
  type CloudEvent,
  type ResourceVersion,
} from "@ocm-conductor/protocol";
import { randomUUID } from "node:crypto";
import type { Logger } from "./logger.js";

const INT32_MAX = 2147483647;

/** What {@link resyncResponses} needs besides the listed events. */
export interface ResyncInput {
  dataType: string;
  clusterName: string;
  /** What the agent reported it has. */
  requested: ResourceVersion[];
  /** What the backend lists for the cluster now. */
  listed: CloudEvent[];
  /** False when the list is incomplete: then no deletion is synthesised. Default true. */
  complete?: boolean;
  /** The `source` of synthesised deletions. */
  source: string;
  logger: Logger;
}

/**
 * Answers a spec resync request with the sdk-go v1.3 (HEAD) semantics of protocol.md §5.6, fixing
 * what the Go broker gets wrong:
 *
 * - listed objects are matched to the agent's report by `resourceid`; one is sent when it is
 *   deleting, when its version is 0, or when it is newer than the agent's;
 * - every reported ID the backend no longer lists gets a synthesised deletion, even when the
 *   backend lists nothing (v1.1.0 skipped that);
 * - synthesised deletions carry the agent-reported `resourceversion`, because work agents of every
 *   version refuse manifestbundle events without it (gotcha 14);
 * - listed events are copied, never mutated, when their type is rewritten to `resync_response`.
 */
export function resyncResponses(input: ResyncInput): CloudEvent[] {
  const { dataType, clusterName, requested, listed, logger } = input;
  const type = eventTypeOf(dataType, "spec", Action.resyncResponse);
  const reported = new Map(requested.map((r) => [r.resourceID, r.resourceVersion]));
  const listedIds = new Set<string>();
  const out: CloudEvent[] = [];
  for (const event of listed) {
    let id: string | undefined;
    try {
      id = stringExtension(event, Extension.resourceId);
      listedIds.add(id);
    } catch (err) {
      if (!hasExtension(event, Extension.deletionTimestamp)) {
        logger.warn("resync: listed event has no usable resourceid; skipped", { dataType, clusterName, error: String(err) });
        continue;
      }
    }
    if (hasExtension(event, Extension.deletionTimestamp)) {
      out.push({ ...event, type });
      continue;
    }
    const current = versionOf(dataType, event);
    if (current === undefined) {
      logger.warn("resync: listed event has no usable resourceversion; skipped", { dataType, clusterName, resourceId: id });
      continue;
    }
    const last = reported.get(id as string) ?? 0;
    if (current === 0 || current > last) out.push({ ...event, type });
  }
  if (input.complete === false) return out;
  for (const [id, version] of reported) {
    if (!listedIds.has(id)) out.push(synthesizedDeletion(input, type, id, version));
  }
  return out;
}

/** The version a listed event carries, read the way the Go broker reads it. */
function versionOf(dataType: string, event: CloudEvent): number | undefined {
  try {
    if (dataType === DataTypes.manifestBundles) return integerExtension(event, Extension.resourceVersion);
    const text = stringExtension(event, Extension.resourceVersion);
    return /^[+-]?\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

function synthesizedDeletion(input: ResyncInput, type: string, id: string, version: number): CloudEvent {
  const extensions: CloudEvent["extensions"] = {
    [Extension.clusterName]: input.clusterName,
    [Extension.originalSource]: "",
    [Extension.resourceId]: id,
  };
  if (input.dataType === DataTypes.manifestBundles) {
    if (Number.isInteger(version) && Math.abs(version) <= INT32_MAX) extensions[Extension.resourceVersion] = version;
  } else {
    extensions[Extension.resourceVersion] = String(version);
  }
  extensions[Extension.deletionTimestamp] = timestampNow();
  return { id: randomUUID(), source: input.source, specVersion: SPEC_VERSION, type, time: timestampNow(), extensions };
}
