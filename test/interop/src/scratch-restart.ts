import { Watch } from "@kubernetes/client-node";
import { startControlPlane } from "@ocm-conductor/test-harness";
const cp = await startControlPlane();
const t0 = Date.now();
const log = (...a: unknown[]) => console.log(((Date.now() - t0) / 1000).toFixed(1), ...a);
const w = new Watch(cp.kubeConfig);
for (let i = 0; i < 60; i++) {
  let failed = false;
  await w.watch("/apis/work.open-cluster-management.io/v1/manifestworks", { allowWatchBookmarks: "true", timeoutSeconds: "600" },
    (type, obj) => log(type, obj?.metadata?.resourceVersion), (err) => { log("done", String(err)); failed = true; });
  await new Promise((r) => setTimeout(r, 1000));
  if (!failed) break;
}
log("restarting");
log(JSON.stringify(await cp.restartApiServer({ graceMs: 120_000 })));
await cp.stop();
