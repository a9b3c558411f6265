// Repro for the S3 finding: one Publish over max_receive_message_size (4 MiB) on an HTTP/2
// connection shared with other in-flight Publish calls. Usage: node scripts/repro-oversize-publish.mjs http://127.0.0.1:PORT
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CloudEventSchema, CloudEventService } from "@ocm-conductor/protocol";

const url = process.argv[2];
const client = createClient(CloudEventService, createGrpcTransport({ baseUrl: url }));
const bad = (n, bytes) => create(CloudEventSchema, { id: `r-${n}`, source: "x", specVersion: "1.0", type: "x", attributes: {}, data: { case: "binaryData", value: new Uint8Array(bytes).fill(0x61) } });
const codes = {};
const call = async (ev) => {
  try { await client.publish({ event: ev }, { timeoutMs: 30_000 }); return "OK"; } catch (e) { return Code[ConnectError.from(e).code] + ": " + ConnectError.from(e).rawMessage.slice(0, 120); }
};
for (let round = 0; round < Number(process.argv[3] ?? 5); round++) {
  const small = Array.from({ length: 31 }, (_, i) => call(bad(i, 2_000)));
  const huge = call(bad(999, 5 * 1024 * 1024));
  const all = await Promise.all([...small, huge]);
  for (const c of all) codes[c] = (codes[c] ?? 0) + 1;
  console.log(`round ${round}: huge -> ${all[31]}; small -> ${JSON.stringify(all.slice(0, 31).reduce((m, c) => ((m[c] = (m[c] ?? 0) + 1), m), {}))}`);
}
