/**
 * Finding from S3 (README "Findings" 1), kept as a failing reproduction outside CI
 * (DRILL_EXTENDED=1): a Publish over `max_receive_message_size` gets ResourceExhausted the first
 * time, but a second one on the same HTTP/2 connection ends the whole session with
 * ENHANCE_YOUR_CALM, so every other call in flight on that connection (for an sdk-go agent: its
 * Subscribe and its status publishes) fails with Internal. grpc-go refuses only the one stream.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CloudEventSchema } from "@ocm-conductor/protocol";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ConductorChild } from "@ocm-conductor/test-harness";
import { ceClient } from "./grpc.js";
import { allSpec, startAll, startWorld, stopWorld, type World } from "./world.js";

let w: World;
let conductor: ConductorChild;
beforeAll(async () => {
  w = await startWorld("oversize");
  conductor = await startAll(w, await allSpec(w, "all"));
}, 180_000);
afterAll(async () => {
  await stopWorld(w);
}, 120_000);

it("an oversize Publish is refused alone; the other calls on its connection are unaffected", async () => {
  const client = ceClient(conductor.grpcUrl);
  const bad = (n: number, bytes: number) => create(CloudEventSchema, { id: `o-${n}`, source: "x", specVersion: "1.0", type: "x", data: { case: "binaryData", value: new Uint8Array(bytes).fill(0x61) } });
  const call = (n: number, bytes: number) => client.publish({ event: bad(n, bytes) }, { timeoutMs: 30_000 }).then(() => "OK", (e: unknown) => Code[ConnectError.from(e).code]!);
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all([...Array.from({ length: 31 }, (_, i) => call(i, 2_000)), call(999, 5 * 1024 * 1024)]);
    expect(answers.at(-1), `round ${round}: the oversize call`).toBe("ResourceExhausted");
    expect(new Set(answers.slice(0, -1)), `round ${round}: the 31 small calls beside it`).toEqual(new Set(["InvalidArgument"]));
  }
}, 120_000);
