/**
 * S3's generator: seeded (mulberry32), so a seed and a count reproduce the same events. Every event
 * carries at least one defect from a list that the protocol refuses outright (bad type, missing or
 * mistyped attributes, data that is not JSON or is truncated or too large, an unserved data type,
 * a wrong or empty cluster), plus random further edge values, so none can legitimately change the
 * database or a hub object.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CloudEventSchema, DataTypes, type PbCloudEvent } from "@ocm-conductor/protocol";

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzTargets {
  /** Clusters that exist (namespace + consumer), with real ids to aim at. */
  clusters: string[];
  resourceIds: string[];
  workUids: string[];
}

type Attr = NonNullable<PbCloudEvent["attributes"][string]>["attr"];
const str = (v: string): Attr => ({ case: "ceString", value: v });
const int = (v: number): Attr => ({ case: "ceInteger", value: v });
const bool = (v: boolean): Attr => ({ case: "ceBoolean", value: v });
const bytes = (v: Uint8Array): Attr => ({ case: "ceBytes", value: v });
const ts = (d: Date): Attr => ({ case: "ceTimestamp", value: timestampFromDate(d) });
const uri = (v: string): Attr => ({ case: "ceUri", value: v });

const DATA_TYPES = Object.values(DataTypes);
const ACTIONS = ["spec.create_request", "spec.update_request", "spec.delete_request", "spec.resync_request", "status.update_request", "status.resync_request", "status.delete_request", "spec.resync_response"];
export const DEFECTS = ["type", "no-cluster", "cluster-mistyped", "cluster-wrong", "data-not-json", "data-truncated", "data-huge", "unserved-type", "resourceversion-mistyped", "no-resourceid"] as const;
export type Defect = (typeof DEFECTS)[number];

export class FuzzGen {
  private readonly r: () => number;
  readonly defects = new Map<Defect, number>();
  /** `hugeEvery`: every n-th event is over the 4 MiB limit (0: none). */
  constructor(seed: number, private readonly t: FuzzTargets, private readonly hugeEvery = 0) {
    this.r = mulberry32(seed);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.r() * xs.length)]!;
  }
  private chance(p: number): boolean {
    return this.r() < p;
  }
  private randStr(max: number): string {
    const n = Math.floor(this.r() * max);
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCodePoint(this.pick([0x20 + Math.floor(this.r() * 95), 0x80 + Math.floor(this.r() * 0x700), 0x1f600 + Math.floor(this.r() * 50), 0]));
    return s;
  }
  private junkJson(depth = 0): unknown {
    switch (Math.floor(this.r() * 7)) {
      case 0: return Math.floor(this.r() * 2 ** 53) * (this.chance(0.5) ? -1 : 1);
      case 1: return this.randStr(40);
      case 2: return null;
      case 3: return this.chance(0.5);
      case 4: return depth > 3 ? [] : Array.from({ length: Math.floor(this.r() * 4) }, () => this.junkJson(depth + 1));
      default: {
        if (depth > 3) return {};
        const o: Record<string, unknown> = {};
        // never a `metadata` key: nothing generated names an object a hub could create
        for (let i = Math.floor(this.r() * 4); i > 0; i--) o[this.pick(["conditions", "status", "spec", "resourceStatus", "manifests", "x", this.randStr(8)])] = this.junkJson(depth + 1);
        delete o["metadata"];
        return o;
      }
    }
  }

  /** The `n`-th event (call in order). */
  next(n: number): { event: PbCloudEvent; defect: Defect } {
    const defect: Defect = this.hugeEvery > 0 && n % this.hugeEvery === this.hugeEvery - 1 ? "data-huge" : this.pick(DEFECTS.filter((d) => d !== "data-huge"));
    this.defects.set(defect, (this.defects.get(defect) ?? 0) + 1);
    const dataType = defect === "unserved-type" ? this.pick(["example.com.v1.widgets", "a.b.c", "work.open-cluster-management.io.v1.manifestworks", "io.open-cluster-management.works.v1alpha1.manifestbundle"]) : this.pick(DATA_TYPES);
    let type = `${dataType}.${this.pick(ACTIONS)}`;
    if (defect === "type") type = this.pick(["", "x", "a.b", `${dataType}`, `${dataType}.spec`, `${dataType}.bogus.update_request`, `${dataType}.status.bogus`, this.randStr(300), `${dataType}.status.update_request.extra`]);
    const attributes: Record<string, { attr: Attr }> = {};
    const set = (k: string, a: Attr) => (attributes[k] = { attr: a });
    const cluster = this.pick(this.t.clusters);
    if (defect === "cluster-mistyped") set("clustername", this.pick([int(7), bool(true), bytes(new Uint8Array([1, 2])), ts(new Date()), uri("x:y")]));
    else if (defect === "cluster-wrong") set("clustername", str(this.pick(["", " ", "drill-nope", this.randStr(64), "../etc", "c".repeat(5_000)])));
    else if (defect !== "no-cluster") set("clustername", str(cluster));
    set("originalsource", str(this.pick(["kube", "maestro", "", "kube::x", "bogus", this.randStr(10)])));
    if (defect !== "no-resourceid" && this.chance(0.9)) {
      set("resourceid", this.chance(0.6) ? str(this.pick([...this.t.resourceIds, ...this.t.workUids])) : this.pick([str(this.randStr(40)), int(-1), str("")]));
    }
    if (defect === "resourceversion-mistyped") set("resourceversion", this.pick([str("abc"), str("1.5"), str(""), bool(false), ts(new Date()), str("99999999999999999999999")]));
    else if (this.chance(0.8)) set("resourceversion", this.pick([int(1), int(0), int(-5), int(2147483647), str("1")]));
    if (this.chance(0.7)) set("sequenceid", this.pick([str("1"), str(""), str("not-a-number"), str("18446744073709551616"), int(3)]));
    if (this.chance(0.5)) set("statushash", this.pick([str("0".repeat(64)), str(""), str(this.randStr(70))]));
    if (this.chance(0.3)) set("deletiontimestamp", this.pick([ts(new Date(0)), str("yesterday"), int(0)]));
    if (this.chance(0.2)) set("metadata", this.pick([str("{}"), str("{"), str(JSON.stringify({ name: "x" }))]));
    if (this.chance(0.1)) set(this.randStr(12).toLowerCase().replace(/[^a-z0-9]/g, "") || "x", str(this.randStr(20)));
    if (this.chance(0.5)) set("datacontenttype", str(this.pick(["application/json", "text/plain", "", "application/cloudevents+json"])));

    let data: PbCloudEvent["data"] = { case: undefined };
    const json = JSON.stringify(this.junkJson());
    switch (defect) {
      case "data-not-json": data = this.pick([{ case: "binaryData" as const, value: new Uint8Array([0xff, 0xfe, 0x00, 0x7b]) }, { case: "textData" as const, value: "{not json" }, { case: "binaryData" as const, value: new TextEncoder().encode("<xml/>") }]); break;
      case "data-truncated": { const full = JSON.stringify({ conditions: [{ type: "Applied", status: "True" }], resourceStatus: { manifests: [] } }); data = { case: "binaryData", value: new TextEncoder().encode(full.slice(0, 1 + Math.floor(this.r() * (full.length - 2)))) }; break; }
      case "data-huge": data = { case: "binaryData", value: new Uint8Array(5 * 1024 * 1024).fill(0x61) }; break;
      default: if (this.chance(0.85)) data = this.chance(0.8) ? { case: "binaryData", value: new TextEncoder().encode(json) } : { case: "textData", value: json };
    }
    const event = create(CloudEventSchema, {
      id: this.chance(0.98) ? `fuzz-${n}` : "",
      source: this.chance(0.9) ? `${cluster}-work-agent` : this.pick(["", this.randStr(30)]),
      specVersion: this.chance(0.9) ? "1.0" : this.pick(["0.3", ""]),
      type,
      attributes,
      data,
    });
    return { event, defect };
  }
}
