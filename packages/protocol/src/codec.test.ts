import { readFileSync, readdirSync } from "node:fs";
import { create, fromJson, toBinary, fromBinary, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { CloudEventSchema, type CloudEvent as PbCloudEvent } from "./gen/io/cloudevents/v1/cloudevent_pb.js";
import { fromProto, toProto } from "./codec.js";
import { ProtocolError } from "./protocol-error.js";
import { HEARTBEAT_TYPE, parseEventType } from "./event-type.js";
import { heartbeatMessage } from "./heartbeat.js";
import { integerExtension, stringExtension, timeExtension } from "./extensions.js";
import { newEvent } from "./event-builder.js";

const dir = new URL("../test-vectors/", import.meta.url);
const vectors = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .map((f) => [f, fromJson(CloudEventSchema, JSON.parse(readFileSync(new URL(f, dir), "utf8")) as JsonValue)] as const);

function pb(json: Record<string, unknown>): PbCloudEvent {
  return fromJson(CloudEventSchema, { spec_version: "1.0", id: "1", source: "s", type: "a.b.c.spec.create_request", ...json } as JsonValue);
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolError) return err.code;
    throw err;
  }
  return undefined;
}

describe("protocol.md §2.4 examples", () => {
  it("has all six examples", () => expect(vectors).toHaveLength(6));

  for (const [name, message] of vectors.filter(([n]) => !n.startsWith("f-"))) {
    it(`${name} round-trips byte for byte`, () => {
      const bytes = toBinary(CloudEventSchema, message);
      const reencoded = toBinary(CloudEventSchema, toProto(fromProto(fromBinary(CloudEventSchema, bytes))));
      expect(Buffer.from(reencoded).toString("hex")).toBe(Buffer.from(bytes).toString("hex"));
    });
  }

  it("A: a spec create carries the typed extensions agents read", () => {
    const [, message] = vectors.find(([n]) => n.startsWith("a-"))!;
    const event = fromProto(message);
    expect(event.dataContentType).toBe("application/json");
    expect(event.time?.nanos).toBe(123456789);
    expect(integerExtension(event, "resourceversion")).toBe(1);
    expect(message.attributes["ce-resourceversion"]?.attr.case).toBe("ceInteger");
    expect(stringExtension(event, "originalsource")).toBe("");
    expect(JSON.parse(stringExtension(event, "metadata")).name).toBe("work1");
    expect(JSON.parse(new TextDecoder().decode(event.data)).manifests).toHaveLength(1);
    expect(parseEventType(event.type)).toMatchObject({ resource: "manifestbundles", subResource: "spec", action: "create_request" });
  });

  it("E: a deletion has a deletiontimestamp, no content type and no data", () => {
    const [, message] = vectors.find(([n]) => n.startsWith("e-"))!;
    const event = fromProto(message);
    expect(timeExtension(event, "deletiontimestamp").seconds).toBeGreaterThan(0n);
    expect(event.dataContentType).toBeUndefined();
    expect(event.data).toBeUndefined();
    expect(message.attributes["contenttype"]).toBeUndefined();
  });

  it("F: the heartbeat has no attributes, so it is not decodable as an event", () => {
    const [, message] = vectors.find(([n]) => n.startsWith("f-"))!;
    expect(Object.keys(message.attributes)).toHaveLength(0);
    expect(codeOf(() => fromProto(message))).toBe("unknown-encoding");
    const beat = heartbeatMessage();
    expect(beat.type).toBe(HEARTBEAT_TYPE);
    expect(beat.source).toBe("");
    expect(Object.keys(beat.attributes)).toHaveLength(0);
    expect(beat.data.case).toBeUndefined();
  });
});

describe("writer rules (protocol.md §2.1)", () => {
  const event = newEvent({
    type: "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request",
    source: "kube",
    clusterName: "c1",
    extensions: { resourceid: "u1", resourceversion: 3, deletiontimestamp: timestampFromDate(new Date(0)), flag: true, raw: new Uint8Array([1]) },
    data: { manifests: [] },
  });
  const message = toProto(event);

  it("maps each JS type to its attribute type and keys extensions with ce-", () => {
    const cases = Object.fromEntries(Object.entries(message.attributes).map(([k, v]) => [k, v.attr.case]));
    expect(cases).toEqual({
      contenttype: "ceString",
      "ce-time": "ceTimestamp",
      "ce-clustername": "ceString",
      "ce-originalsource": "ceString",
      "ce-resourceid": "ceString",
      "ce-resourceversion": "ceInteger",
      "ce-deletiontimestamp": "ceTimestamp",
      "ce-flag": "ceBoolean",
      "ce-raw": "ceBytes",
    });
    expect(Object.keys(message.attributes)[0]).toBe("contenttype");
  });

  it("puts data only in binary_data", () => {
    expect(message.data.case).toBe("binaryData");
    expect(toProto({ ...event, data: new Uint8Array() }).data.case).toBeUndefined();
  });

  it("refuses values Go would refuse", () => {
    expect(codeOf(() => toProto({ ...event, extensions: { big: 2 ** 31 } }))).toBe("invalid-attribute");
    expect(codeOf(() => toProto({ ...event, extensions: { half: 1.5 } }))).toBe("invalid-attribute");
    expect(codeOf(() => toProto({ ...event, extensions: { "bad-name": "x" } }))).toBe("invalid-extension-name");
    expect(codeOf(() => toProto({ ...event, extensions: { Upper: "x" } }))).toBe("invalid-extension-name");
    expect(codeOf(() => toProto({ ...event, extensions: { time: "x" } }))).toBe("invalid-extension-name");
  });
});

describe("reader rules (protocol.md §2.2)", () => {
  const good = { attributes: { "ce-clustername": { ce_string: "c1" } } };

  it("refuses an event without attributes, as Go does", () => {
    expect(codeOf(() => fromProto(pb({})))).toBe("unknown-encoding");
    expect(codeOf(() => fromProto(create(CloudEventSchema)))).toBe("unknown-encoding");
  });

  it("refuses an empty or unknown spec version", () => {
    expect(codeOf(() => fromProto(pb({ ...good, spec_version: "" })))).toBe("unknown-encoding");
    expect(codeOf(() => fromProto(pb({ ...good, spec_version: "2.0" })))).toBe("unknown-encoding");
  });

  it("refuses structured mode", () => {
    const attrs = { ...good.attributes, contenttype: { ce_string: "application/cloudevents+json; charset=utf-8" } };
    expect(codeOf(() => fromProto(pb({ attributes: attrs })))).toBe("structured-mode");
  });

  it("refuses an attribute with no value or the wrong type", () => {
    expect(codeOf(() => fromProto(pb({ attributes: { "ce-clustername": {} } })))).toBe("invalid-attribute");
    expect(codeOf(() => fromProto(pb({ attributes: { contenttype: { ce_integer: 1 } } })))).toBe("invalid-attribute");
    expect(codeOf(() => fromProto(pb({ attributes: { "ce-time": { ce_string: "yesterday" } } })))).toBe("invalid-attribute");
    expect(codeOf(() => fromProto(pb({ attributes: { "ce-time": { ce_integer: 5 } } })))).toBe("invalid-attribute");
    expect(codeOf(() => fromProto(pb({ attributes: { "ce-x": { ce_uri: "http://a/%zz" } } })))).toBe("invalid-attribute");
  });

  it("refuses invalid extension names", () => {
    expect(codeOf(() => fromProto(pb({ attributes: { "ce-": { ce_string: "x" } } })))).toBe("invalid-extension-name");
    expect(codeOf(() => fromProto(pb({ attributes: { "ce-a_b": { ce_string: "x" } } })))).toBe("invalid-extension-name");
  });

  it("ignores keys without the ce- prefix and data outside binary_data", () => {
    const event = fromProto(pb({ attributes: { ...good.attributes, clustername: { ce_string: "other" } }, text_data: "{}" }));
    expect(event.extensions).toEqual({ clustername: "c1" });
    expect(event.data).toBeUndefined();
  });

  it("accepts a time as an RFC 3339 string and lower-cases extension names", () => {
    const event = fromProto(pb({ attributes: { "ce-time": { ce_string: "2026-05-29T08:00:00.5+02:00" }, "ce-ClusterName": { ce_string: "c1" } } }));
    expect(event.time?.seconds).toBe(BigInt(Date.UTC(2026, 4, 29, 6) / 1000));
    expect(event.time?.nanos).toBe(500_000_000);
    expect(stringExtension(event, "clustername")).toBe("c1");
  });

  it("lets ce- spec attributes set the spec fields", () => {
    const event = fromProto(pb({ attributes: { "ce-subject": { ce_string: "s1" }, "ce-id": { ce_string: "override" } } }));
    expect(event.subject).toBe("s1");
    expect(event.id).toBe("override");
  });
});

describe("extension readers (Go types.To* rules)", () => {
  const event = fromProto(pb({
    attributes: {
      "ce-n": { ce_integer: 7 },
      "ce-s": { ce_string: "12.9" },
      "ce-b": { ce_boolean: true },
      "ce-t": { ce_string: "2026-01-01T00:00:00Z" },
    },
  }));

  it("reads integers from int32 or numeric strings", () => {
    expect(integerExtension(event, "n")).toBe(7);
    expect(integerExtension(event, "s")).toBe(12);
    expect(codeOf(() => integerExtension(event, "b"))).toBe("invalid-attribute");
  });

  it("reads strings only from strings", () => {
    expect(codeOf(() => stringExtension(event, "n"))).toBe("invalid-attribute");
    expect(codeOf(() => stringExtension(event, "missing"))).toBe("missing-extension");
  });

  it("reads times from timestamps or RFC 3339 strings", () => {
    expect(timeExtension(event, "t").seconds).toBe(BigInt(Date.UTC(2026, 0, 1) / 1000));
  });
});
