import { describe, expect, it } from "vitest";
import { newEvent } from "./event-builder.js";
import { decodeManifestBundleStatus } from "./manifest-bundle.js";
import { ProtocolError } from "./protocol-error.js";

const withData = (data: string | undefined) => {
  const e = newEvent({ type: "io.open-cluster-management.works.v1alpha1.manifestbundles.status.update_request", source: "a", clusterName: "c" });
  if (data !== undefined) e.data = new TextEncoder().encode(data);
  return e;
};

describe("decodeManifestBundleStatus", () => {
  it("reads conditions and resource statuses, and treats absent data as an empty status", () => {
    expect(decodeManifestBundleStatus(withData('{"conditions":[{"type":"Applied","status":"True"}],"resourceStatus":[]}')).conditions?.[0]?.type).toBe("Applied");
    expect(decodeManifestBundleStatus(withData('{"conditions":null}')).conditions).toBeNull();
    expect(decodeManifestBundleStatus(withData(undefined))).toEqual({ conditions: null });
  });

  it.each([
    ["not JSON", "{x"],
    ["not an object", "[1]"],
    ["conditions not a list", '{"conditions":{}}'],
    ["resourceStatus not a list", '{"conditions":[],"resourceStatus":"x"}'],
  ])("refuses data that is %s with invalid-payload", (_what, data) => {
    const err = (() => { try { decodeManifestBundleStatus(withData(data)); } catch (e) { return e; } return undefined; })();
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe("invalid-payload");
  });
});
