import { describe, expect, it } from "vitest";
import { MaestroResourceInputError, maestroPayload, readManifestBundle } from "./maestro-resource.js";

const cm = (name: string, extra: Record<string, unknown> = {}) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "default", ...extra } });

describe("readManifestBundle", () => {
  it("accepts one manifest, a list, or a bundle, in YAML or JSON, defaulting the delete option", () => {
    expect(readManifestBundle("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")).toEqual({
      manifests: [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "a" } }], deleteOption: { propagationPolicy: "Foreground" },
    });
    expect(readManifestBundle(JSON.stringify([cm("a"), cm("b")])).manifests).toHaveLength(2);
    const bundle = readManifestBundle(JSON.stringify({ manifests: [cm("a")], deleteOption: { propagationPolicy: "Orphan" }, manifestConfigs: [] }));
    expect(bundle).toMatchObject({ deleteOption: { propagationPolicy: "Orphan" }, manifestConfigs: [] });
  });

  it.each([
    ["not: [valid", /neither JSON nor YAML/],
    ["42", /must be a manifest, a list of manifests/],
    ["null", /must be a manifest, a list of manifests/],
    ["[]", /no manifests/],
    [JSON.stringify([7]), /manifests\[0\] is not an object/],
    [JSON.stringify([{ kind: "ConfigMap", metadata: { name: "a" } }]), /apiVersion is required/],
    [JSON.stringify({ manifests: [{ apiVersion: "v1", metadata: { name: "a" } }] }), /kind is required/],
    [JSON.stringify([{ apiVersion: "v1", kind: "ConfigMap", metadata: {} }]), /metadata.name is required/],
    [JSON.stringify([cm("a", { generateName: "x-" })]), /metadata.generateName is not allowed/],
    [JSON.stringify([cm("a", { resourceVersion: "5" })]), /metadata.resourceVersion is not allowed/],
    [JSON.stringify([cm("a", { deletionGracePeriodSeconds: 0 })]), /metadata.deletionGracePeriodSeconds is not allowed/],
    [JSON.stringify([cm("a"), cm("a")]), /manifests\[1\]: duplicate manifest v1\/ConfigMap\/default\/a/],
    ["a: 1\n---\nb: 2\n", /neither JSON nor YAML/],
  ])("refuses %s", (text, message) => {
    expect(() => readManifestBundle(text)).toThrow(MaestroResourceInputError);
    expect(() => readManifestBundle(text)).toThrow(message);
  });
});

describe("maestroPayload", () => {
  it("is the source's CloudEvent as Maestro stores it (maestro-db.md §3.6): metadata an object, resourceversion 0", () => {
    const p = maestroPayload("0b0e8a43-8f8a-4d1e-9b0a-6c3f7d3e9c11", "cluster1", "maestro-ctl", { manifests: [cm("a")] }, "create_request");
    expect(p).toMatchObject({
      specversion: "1.0", source: "maestro-ctl", type: "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request",
      datacontenttype: "application/json", resourceid: "0b0e8a43-8f8a-4d1e-9b0a-6c3f7d3e9c11", resourceversion: 0, clustername: "cluster1",
      metadata: { uid: "0b0e8a43-8f8a-4d1e-9b0a-6c3f7d3e9c11", name: "0b0e8a43-8f8a-4d1e-9b0a-6c3f7d3e9c11", namespace: "cluster1", resourceVersion: "0" },
      data: { manifests: [cm("a")] },
    });
    expect(typeof p.id).toBe("string");
  });
});
